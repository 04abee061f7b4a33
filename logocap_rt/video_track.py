"""Video options shared by the tools: ``--camera``, ``--track``, ``--smooth``,
``--max-frames``, and the progress line (numpy/OpenCV; the tracker needs scipy).

:func:`add_arguments` declares the options, :func:`check_arguments` checks them, and one
:class:`VideoOptions` per video gives :func:`.video.process_video` its frame source
(``opener``: stops after ``--max-frames``), its ``progress`` callback (a progress line for
files, frames per second for cameras and streams, on stderr) and, per frame,
:meth:`VideoOptions.track` (``track_id`` on every instance, smoothed keypoints with
``--smooth``) and :meth:`VideoOptions.draw` (colour and id per track).
"""
import sys
import time

from . import video


def add_arguments(parser):
    g = parser.add_argument_group('video and live input')
    g.add_argument('--camera', type=int, default=None, metavar='N',
                   help='read camera N (OpenCV device index) instead of an input file')
    g.add_argument('--track', action='store_true',
                   help='videos: give poses identities across frames ("track_id" in the '
                        'JSON, -1 = not tracked; drawings coloured by id, the id written)')
    g.add_argument('--smooth', action='store_true',
                   help='videos: One-Euro smoothing of the tracked keypoints (implies '
                        '--track; the detected ones kept as "keypoints_raw")')
    g.add_argument('--max-frames', type=int, default=None, metavar='N',
                   help='stop a video, camera or stream after N frames (outputs written)')


def check_arguments(args):
    """ValueError naming the option for a bad value; ``--smooth`` turns ``--track`` on."""
    if args.camera is not None and args.camera < 0:
        raise ValueError(f'--camera must be a device index >= 0, got {args.camera}')
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f'--max-frames must be >= 1, got {args.max_frames}')
    if args.smooth:
        args.track = True
    return args


def is_live(src):
    """A camera index or a URL (no frame count, frames come in real time)."""
    return str(src).isdigit() or '://' in str(src)


def _limited(base, max_frames):
    """A subclass of the frame source ``base`` that stops after ``max_frames`` frames."""
    class Limited(base):
        def __init__(self, src, max_pixels=None):
            super().__init__(src, max_pixels)
            if max_frames and self.frame_count:
                self.frame_count = min(self.frame_count, max_frames)

        def __iter__(self):
            for i, frame in enumerate(super().__iter__()):
                yield frame
                if max_frames and i + 1 >= max_frames:
                    return
    return Limited


class VideoOptions:
    """The per-video state of the options (see the module docstring).

    Args:
        args: the parsed options (``track``, ``smooth``, ``max_frames``, ``pose_thr``,
            ``kpt_thr``).
        src (str): the video file, camera index or URL.
        sigmas: the model's keypoint OKS sigmas (default: COCO's for 17 keypoints, 0.08
            for other keypoint counts).
        stream: where the progress line goes (default stderr; None: no line).
    """

    def __init__(self, args, src, sigmas=None, stream='stderr'):
        self.args, self.src = args, src
        self.stream = sys.stderr if stream == 'stderr' else stream
        self.sigmas = tuple(float(v) for v in sigmas) if sigmas is not None else None
        self.live = is_live(src)
        self.source = None
        self.tracker = None
        self._t0 = self._last = self._clock = self._last_t = self._shown = None
        self._done = (0, 0)

    # -- frame source ---------------------------------------------------------------------
    def opener(self, src, max_pixels=None):
        """``source_cls`` for :func:`.video.process_video`."""
        self.source = _limited(video.FrameSource, self.args.max_frames)(src, max_pixels)
        return self.source

    # -- tracking -------------------------------------------------------------------------
    def track(self, instances):
        """``instances`` (this frame's dicts) with ``track_id`` (and smoothed keypoints);
        unchanged without ``--track``."""
        if not self.args.track:
            return instances
        if self.tracker is None and not instances and self.sigmas is None:
            return instances  # the keypoint count is not known yet
        if self.tracker is None:
            from .tracking import COCO_SIGMAS, PoseTracker, TrackerConfig
            fps = getattr(self.source, 'fps', None) or 25.0
            k = len(instances[0]['keypoints']) if instances else len(COCO_SIGMAS)
            sigmas = self.sigmas or (COCO_SIGMAS if k == len(COCO_SIGMAS) else (0.08, ) * k)
            self.tracker = PoseTracker(TrackerConfig(
                pose_thr=self.args.pose_thr, kpt_thr=self.args.kpt_thr,
                smooth=self.args.smooth, fps=fps, sigmas=sigmas))
            self._clock = time.monotonic()
        # cameras and streams: real time stamps for the smoothing; files: frame / fps
        t = time.monotonic() - self._clock if self.live else None
        if t is not None and self.tracker.frame >= 0:
            t = max(t, self._last_t + 1e-3)
        self._last_t = t
        return self.tracker.update_instances(instances, t=t)

    def draw(self, frame, instances, skeleton, kpt_thr):
        """Drawing of this frame's (tracked) instances: colour and id per track."""
        from .track_draw import draw_tracks
        return draw_tracks(frame, instances, skeleton, kpt_thr)

    # -- progress -------------------------------------------------------------------------
    def progress(self, done, total):
        """``progress`` callback: ``[done/total] pct fps`` for files, ``done frames, fps``
        for live sources; at most 4 updates a second."""
        if self.stream is None:
            return
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._done = (done, total)
        if self._last is not None and now - self._last < 0.25 and done != total:
            return
        self._last, self._shown = now, done
        fps = (done - 1) / (now - self._t0) if done > 1 and now > self._t0 else 0.0
        if total and not self.live:
            line = f'\r[{done}/{total}] {100 * done // total:3d}%  {fps:5.1f} frames/s'
        else:
            line = f'\r{done} frames  {fps:5.1f} frames/s'
        self.stream.write(line)
        self.stream.flush()

    def close(self):
        """End the progress line."""
        if self.stream is not None and self._t0 is not None:
            if self._shown != self._done[0]:  # the last count was throttled: show it
                self._last = None
                self.progress(*self._done)
            self.stream.write('\n')
            self.stream.flush()
