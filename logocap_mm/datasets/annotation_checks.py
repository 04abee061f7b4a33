"""Value checks of COCO annotations before they reach pycocotools / xtcocotools.

The COCO mask C code trusts its input: ``decode`` writes every run of an RLE into an
``H * W`` buffer without a bound check (runs adding up to more than ``H * W``, or a negative
run read as a huge unsigned one, write past the buffer: a segmentation fault; runs adding up
to less leave the rest of the mask uninitialised), the compressed-string reader reads past the
end of a string whose last character announces another one, and the polygon rasteriser
allocates memory in proportion to the polygon's edge lengths (NaN or huge coordinates: a hang
or a crash). :func:`check_segmentation` refuses all of these with a ``ValueError`` so that
nothing unchecked is handed to that code.

Segmentations (all in the original image frame **O**, ``(H, W)`` the image size):

* uncompressed RLE ``{"size": [H, W], "counts": [r0, r1, ...]}``: integer run lengths
  ``>= 0`` (column-major, starting with a background run) adding up to ``H * W``;
* compressed RLE ``{"size": [H, W], "counts": "..."}`` (str or bytes, COCO's 6-bit
  variable-length format): decoded here (:func:`rle_string_counts`), with the same rules;
* polygons ``[[x0, y0, x1, y1, ...], ...]``: an even number of finite coordinates, each
  within one image size of the image (``-W <= x <= 2W``, ``-H <= y <= 2H``), with a summed edge
  length (max-norm) of at most ``MAX_POLYGON_PERIMETER * (H + W)``. Polygons with fewer than
  3 points enclose nothing and are ignored.
"""
from typing import List, Tuple

import numpy as np

__all__ = ['check_segmentation', 'rle_string_counts', 'MAX_POLYGON_PERIMETER']

# summed max-norm edge length of a polygon, in units of (H + W) (bounds the rasteriser's work)
MAX_POLYGON_PERIMETER = 100
# characters of one value in a compressed RLE string: 6 hold 30 bits with the sign, i.e.
# runs below 2**29 pixels; longer values overflow the int shifts of the C reader
_MAX_CHARS_PER_VALUE = 6


def rle_string_counts(counts, size: Tuple[int, int]) -> np.ndarray:
    """Run lengths ``(M,)`` int64 of a COCO compressed RLE string, checked.

    The format (COCO ``rleToString``): each value is written in 5-bit groups, least
    significant first, as characters ``48 + group`` with bit 0x20 set on all groups but the
    last; bit 0x10 of the last group is the sign. From the fourth value on, a value is the
    difference to the run two places before.

    Args:
        counts: the ``counts`` string (str or bytes).
        size: ``(H, W)`` of the mask.

    Raises:
        ValueError: a character outside ``'0'``-``'o'``, a value cut off at the end of the
            string or longer than 6 characters, a negative run, or runs not adding up to
            ``H * W``.
    """
    if isinstance(counts, str):
        try:
            counts = counts.encode('ascii')
        except UnicodeEncodeError:
            raise ValueError('compressed RLE counts must be ASCII characters "0" to "o"')
    data = np.frombuffer(bytes(counts), dtype=np.uint8).astype(np.int64) - 48
    if data.size and (data.min() < 0 or data.max() > 63):
        bad = int(np.nonzero((data < 0) | (data > 63))[0][0])
        raise ValueError(f'compressed RLE counts has a character outside "0".."o" '
                         f'(byte {int(data[bad]) + 48} at position {bad})')
    last = np.nonzero((data & 0x20) == 0)[0]  # the last character of every value
    if data.size and (last.size == 0 or last[-1] != data.size - 1):
        raise ValueError('compressed RLE counts ends inside a value (its last character '
                         'announces another one)')
    starts = np.concatenate([[0], last[:-1] + 1]) if last.size else last
    lengths = last - starts + 1
    if lengths.size and lengths.max() > _MAX_CHARS_PER_VALUE:
        raise ValueError(f'compressed RLE counts has a value of {int(lengths.max())} '
                         f'characters (at most {_MAX_CHARS_PER_VALUE})')
    runs: List[int] = []
    for s, n in zip(starts.tolist(), lengths.tolist()):
        x = 0
        for k in range(n):
            x |= (int(data[s + k]) & 0x1f) << (5 * k)
        if data[s + n - 1] & 0x10:
            x -= 1 << (5 * n)  # sign extension of the last group
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    out = np.asarray(runs, dtype=np.int64)
    _check_runs(out, size)
    return out


def _check_runs(runs: np.ndarray, size: Tuple[int, int]) -> None:
    h, w = size
    if runs.size and runs.min() < 0:
        raise ValueError(f'RLE counts has a negative run length ({int(runs.min())})')
    if runs.size and runs.max() > h * w:
        raise ValueError(f'RLE counts has a run of {int(runs.max())} pixels, more than the '
                         f'{h} x {w} = {h * w} pixels of the image')
    total = int(runs.sum())
    if total != h * w:
        raise ValueError(f'RLE counts add up to {total} pixels, but size {[h, w]} has '
                         f'{h * w}')


def _uncompressed_runs(counts) -> np.ndarray:
    try:
        arr = np.asarray(counts)
    except (ValueError, TypeError, OverflowError):
        arr = np.asarray(counts, dtype=object)
    if arr.ndim != 1:
        raise ValueError('uncompressed RLE counts must be a flat list of run lengths, got '
                         f'shape {arr.shape}')
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype.kind in 'iu':
        if arr.dtype == np.uint64 and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f'RLE counts has an absurd run length ({int(arr.max())})')
        return arr.astype(np.int64)
    if arr.dtype.kind == 'f':
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError('RLE counts must be integers; got non-integer or non-finite '
                             'values')
        if np.abs(arr).max() > 2.0 ** 62:
            raise ValueError(f'RLE counts has an absurd run length ({np.abs(arr).max():g})')
        return arr.astype(np.int64)
    if arr.dtype.kind == 'O' and all(isinstance(v, (int, np.integer)) and
                                     not isinstance(v, (bool, np.bool_)) for v in arr):
        big = max(abs(int(v)) for v in arr)
        raise ValueError(f'RLE counts has an absurd run length ({big})')
    kinds = sorted({type(v).__name__ for v in arr.tolist()})
    raise ValueError(f'RLE counts must be integers, got values of type {", ".join(kinds)}')


def _check_size(size, img_hw: Tuple[int, int]) -> None:
    try:
        ok = len(size) == 2 and all(int(v) == v for v in size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"RLE 'size' must be [height, width], got {size!r}")
    if [int(v) for v in size] != list(img_hw):
        raise ValueError(f'RLE segmentation size {list(size)} does not match the image '
                         f'(h, w) = {list(img_hw)}')


def _check_polygons(seg, img_hw: Tuple[int, int]) -> None:
    h, w = img_hw
    for i, poly in enumerate(seg):
        if not isinstance(poly, (list, tuple, np.ndarray)):
            raise ValueError(f'polygon {i} must be a list of coordinates [x0, y0, x1, y1, ...], '
                             f'got {type(poly).__name__}')
        try:
            p = np.asarray(poly, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f'polygon {i} must hold numbers only')
        if p.ndim != 1:
            raise ValueError(f'polygon {i} must be a flat list [x0, y0, x1, y1, ...], got '
                             f'shape {p.shape}')
        if p.size % 2:
            raise ValueError(f'polygon {i} has an odd number of coordinates ({p.size}); it '
                             'needs (x, y) pairs')
        if not np.isfinite(p).all():
            raise ValueError(f'polygon {i} has NaN or infinite coordinates')
        if p.size < 6:
            continue  # fewer than 3 points: encloses nothing, ignored
        x, y = p[0::2], p[1::2]
        if x.min() < -w or x.max() > 2 * w or y.min() < -h or y.max() > 2 * h:
            raise ValueError(
                f'polygon {i} has coordinates in x [{x.min():g}, {x.max():g}], y '
                f'[{y.min():g}, {y.max():g}], more than one image size outside the '
                f'{w} x {h} (w x h) image')
        edges = np.maximum(np.abs(np.diff(x, append=x[:1])), np.abs(np.diff(y, append=y[:1])))
        limit = MAX_POLYGON_PERIMETER * (h + w)
        if edges.sum() > limit:
            raise ValueError(f'polygon {i} has edges of {edges.sum():.0f} px in all, more than '
                             f'{MAX_POLYGON_PERIMETER} x (h + w) = {limit} px')


def check_segmentation(seg, img_hw: Tuple[int, int]) -> None:
    """Refuse a COCO segmentation that the COCO mask code cannot rasterise safely.

    Args:
        seg: polygons (a list of ``[x0, y0, x1, y1, ...]`` lists, O px) or an RLE dict with
            ``size = [H, W]`` and ``counts`` (a list: uncompressed; str / bytes: compressed);
            ``None`` (no segmentation) passes.
        img_hw: ``(H, W)`` of the O image.

    Raises:
        ValueError: describing the problem (see the module docstring for the rules).
    """
    h, w = int(img_hw[0]), int(img_hw[1])
    if seg is None:
        return
    if isinstance(seg, dict):
        size, counts = seg.get('size'), seg.get('counts')
        if size is None or counts is None:
            raise ValueError("an RLE segmentation needs 'size' and 'counts', got keys "
                             f'{sorted(seg)}')
        _check_size(size, (h, w))
        if isinstance(counts, (str, bytes)):
            rle_string_counts(counts, (h, w))
        elif isinstance(counts, (list, tuple, np.ndarray)):
            _check_runs(_uncompressed_runs(counts), (h, w))
        else:
            raise ValueError("RLE 'counts' must be a list of run lengths or a string, got "
                             f'{type(counts).__name__}')
        return
    if isinstance(seg, (list, tuple)):
        _check_polygons(seg, (h, w))
        return
    raise ValueError(f'a segmentation must be a list of polygons or an RLE dict, got '
                     f'{type(seg).__name__}')
