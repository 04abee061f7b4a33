"""The video loop shared by the tools: frames in, per-frame predictions and a drawn video out.

* :class:`FrameSource`: BGR uint8 frames of a video file, a camera (``'0'``) or a URL, with
  the frame size checked against the pixel limit (:mod:`.images`) before the first frame
  is decoded.
* :class:`VideoSink`: the drawn video, written into a temporary file next to the target and
  renamed over it when complete (the rules of :mod:`.outputs`). A size the encoder refuses
  (e.g. 1x1) is reported, never announced as saved.
* :func:`process_video`: runs ``infer(frame) -> (predictions, drawing)`` on every frame.
  Ctrl-C (``KeyboardInterrupt``) stops the loop: the frames done are still written (video
  and JSON) under the ``.partial`` names of :func:`.outputs.partial_name`, so a complete
  earlier result is not replaced, and the result says ``interrupted`` (the tools then
  exit with status 130).

The JSON file is MMPose's video format: ``[{"frame_id": i, "instances": [...]}, ...]``.
"""
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

from .images import check_pixels
from .outputs import (InputSet, atomic_write, check_output, json_text, partial_name, publish,
                      temp_path)

__all__ = ['VIDEO_EXTS', 'DEFAULT_FPS', 'FrameSource', 'VideoSink', 'VideoRun',
           'is_video', 'drawn_video_name', 'process_video']

VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')
#: containers the drawn video keeps (others get ``.mp4`` appended), and their codec
_FOURCC = {'.mp4': 'mp4v', '.mov': 'mp4v', '.mkv': 'mp4v', '.avi': 'MJPG'}
DEFAULT_FPS = 25.0


def is_video(src: str) -> bool:
    """A video file (by extension), a camera index or a URL."""
    return src.lower().endswith(VIDEO_EXTS) or src.isdigit() or '://' in src


def drawn_video_name(name: str) -> str:
    """``clip.mp4`` -> ``clip.mp4``; ``clip.webm`` -> ``clip.webm.mp4`` (written as MPEG-4)."""
    return name if osp.splitext(name)[1].lower() in _FOURCC else name + '.mp4'


class FrameSource:
    """Frames of ``src`` (a video file, a camera index such as ``'0'``, or a URL).

    Attributes:
        fps (float): frames per second (``DEFAULT_FPS`` where the source does not say).
        size (tuple): ``(width, height)`` as announced (``(0, 0)`` if unknown).
        frame_count (int): announced number of frames (0 if unknown: cameras, streams).

    Raises:
        ValueError: the source does not open, or its frame size is over the pixel limit.
    """

    def __init__(self, src: str, max_pixels: Optional[int] = None):
        import cv2
        self.src, self.max_pixels = src, max_pixels
        if not (src.isdigit() or '://' in src) and not osp.isfile(src):
            raise ValueError(f'video {src} does not exist or is not a regular file')
        self.cap = cv2.VideoCapture(int(src) if src.isdigit() else src)
        if not self.cap.isOpened():
            self.cap.release()
            raise ValueError(f'cannot open video {src} (not a video, or no decoder for it)')
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS
        self.size = (int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self.frame_count = max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        if min(self.size) > 0:
            try:
                check_pixels(*self.size, f'video {src} (frame size)', max_pixels)
            except ValueError:
                self.cap.release()
                raise

    def __iter__(self):
        while True:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                return
            if frame.shape[:2] != self.size[::-1]:
                check_pixels(frame.shape[1], frame.shape[0], f'video {self.src} (frame)',
                             self.max_pixels)
            yield frame

    def close(self) -> None:
        self.cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class VideoSink:
    """The drawn video at ``path``, opened at the first frame with that frame's size.

    Frames go to a temporary file next to ``path``; :meth:`finish` renames it over ``path``
    (or another name, e.g. the partial one), :meth:`abort` removes it. ``error`` holds why
    the video could not be written (the encoder refused the size), else None.
    """

    def __init__(self, path: str, fps: float, inputs: Optional[InputSet] = None):
        ext = osp.splitext(path)[1].lower()
        if ext not in _FOURCC:
            raise ValueError(f'drawn video {path}: use one of {", ".join(_FOURCC)}')
        check_output(path, inputs, 'drawn video')
        self.path, self.fps, self.inputs, self.ext = path, float(fps), inputs, ext
        self.tmp: Optional[str] = None
        self.writer = None
        self.error: Optional[str] = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 BGR frame (ignored once the writer has failed)."""
        if self.error is not None:
            return
        if self.writer is None:
            self._open(frame.shape[1], frame.shape[0])
            if self.error is not None:
                return
        self.writer.write(np.ascontiguousarray(frame, dtype=np.uint8))
        self.frames += 1

    def _open(self, w: int, h: int) -> None:
        import cv2
        self.tmp = temp_path(self.path, self.ext)
        fourcc = cv2.VideoWriter_fourcc(*_FOURCC[self.ext])
        self.writer = cv2.VideoWriter(self.tmp, fourcc, self.fps, (w, h))
        if not self.writer.isOpened():
            self.error = f'the video encoder refused frames of {w}x{h}'

    def finish(self, path: Optional[str] = None) -> Optional[str]:
        """Close the video and rename it to ``path`` (default: the target); returns the path
        written, or None (and sets ``error``) if there is no usable video."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.error is None and self.frames == 0:
            self.error = 'no frame to write'
        if self.error is None and (self.tmp is None or osp.getsize(self.tmp) == 0):
            self.error = 'the video encoder wrote nothing'
        if self.error is not None:
            self.abort()
            return None
        out = publish(self.tmp, path or self.path, self.inputs)
        self.tmp = None
        return out

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.tmp is not None and osp.exists(self.tmp):
            os.unlink(self.tmp)
        self.tmp = None


@dataclass
class VideoRun:
    """What :func:`process_video` did: per-frame predictions, the files written (None if not
    written), whether Ctrl-C stopped it, and the problems to report."""
    frames: List = field(default_factory=list)
    json_path: Optional[str] = None
    video_path: Optional[str] = None
    interrupted: bool = False
    errors: List[str] = field(default_factory=list)
    total: int = 0  # announced frame count (0: unknown)


def process_video(src: str, infer: Callable[[np.ndarray], Tuple[list, Optional[np.ndarray]]],
                  json_path: str, video_path: Optional[str] = None,
                  inputs: Optional[InputSet] = None, max_pixels: Optional[int] = None,
                  progress: Optional[Callable[[int, int], None]] = None,
                  source_cls=None) -> VideoRun:
    """Run ``infer`` on every frame of ``src``; write the predictions (``json_path``) and the
    drawings (``video_path``, if given and ``infer`` returns drawings).

    Args:
        infer: frame (H, W, 3) uint8 BGR -> (list of instance dicts, drawn BGR frame or None).
        progress: called as ``progress(frames_done, announced_total)`` after each frame.
        source_cls: the frame source class (default :class:`FrameSource`).

    Returns:
        :class:`VideoRun`. Outputs are checked (:mod:`.outputs`) before the first frame.

    Raises:
        ValueError: the source does not open, or an output is refused.
    """
    check_output(json_path, inputs, 'predictions')
    source = (source_cls or FrameSource)(src, max_pixels)
    run = VideoRun(total=source.frame_count)
    sink = VideoSink(video_path, source.fps, inputs) if video_path else None
    try:
        for frame in source:
            preds, drawn = infer(frame)
            run.frames.append(preds)
            if sink is not None and drawn is not None:
                sink.write(drawn)
            if progress is not None:
                progress(len(run.frames), run.total)
    except KeyboardInterrupt:
        run.interrupted = True
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        source.close()
    if not run.frames:
        if sink is not None:
            sink.abort()
        if run.interrupted:
            return run
        raise ValueError(f'video {src} has no readable frames')
    name = partial_name if run.interrupted else (lambda p: p)
    data = [dict(frame_id=i, instances=p) for i, p in enumerate(run.frames)]
    run.json_path = atomic_write(name(json_path), json_text(data), inputs)
    if sink is not None:
        run.video_path = sink.finish(name(video_path))
        if run.video_path is None:
            run.errors.append(f'drawn video {video_path} not written: {sink.error}')
    return run
