"""Reading images with a pixel limit checked from the file header, before any decoding.

A small compressed file can decode to a huge image (a 2.6 MB PNG of 30000 x 30000 pixels
needs 2.7 GB as a BGR array, several times that in the tools). Like Pillow's
decompression-bomb guard, :func:`read_image` reads the width and height from the header
(PNG, JPEG, BMP, WebP, TIFF, GIF; parsed here, no Pillow) and refuses an image with more
pixels than the limit without decoding it. Files in other formats are refused too, as their
size cannot be known before decoding.

The limit: ``max_pixels`` argument, else the environment variable
``LOGOCAP_MAX_IMAGE_PIXELS``, else :data:`DEFAULT_MAX_PIXELS` (178,956,970 pixels,
Pillow's error threshold: e.g. 16384 x 10922). ``0`` switches the check off.
"""
import os
import struct
from typing import Optional, Tuple

import numpy as np

__all__ = ['DEFAULT_MAX_PIXELS', 'ENV_MAX_PIXELS', 'max_pixels', 'check_pixels',
           'image_size', 'read_image']

DEFAULT_MAX_PIXELS = 178_956_970
ENV_MAX_PIXELS = 'LOGOCAP_MAX_IMAGE_PIXELS'
_HEAD = 1 << 16  # bytes read for the formats whose size sits near the start


def max_pixels(value: Optional[int] = None) -> int:
    """The pixel limit in force (0: none): ``value``, else the environment, else default."""
    if value is None:
        env = os.environ.get(ENV_MAX_PIXELS, '').strip()
        if not env:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f'{ENV_MAX_PIXELS}={env!r} is not an integer') from None
    if int(value) < 0:
        raise ValueError(f'the pixel limit must be >= 0 (0: no limit), got {value}')
    return int(value)


def check_pixels(width: int, height: int, name: str, limit: Optional[int] = None) -> None:
    """Refuse a ``width x height`` image or frame over the limit (ValueError naming it)."""
    limit = max_pixels(limit)
    if limit and int(width) * int(height) > limit:
        raise ValueError(
            f'{name} is {width}x{height} = {int(width) * int(height):,} pixels, over the limit '
            f'of {limit:,} (a decompression bomb?); raise it with --max-pixels or '
            f'{ENV_MAX_PIXELS} if the image is genuine')


# ----------------------------------------------------------------------------- headers
def _png(h: bytes):
    if h[12:16] == b'IHDR' and len(h) >= 24:
        return struct.unpack('>II', h[16:24])
    return None


def _gif(h: bytes):
    return struct.unpack('<HH', h[6:10]) if len(h) >= 10 else None


def _bmp(h: bytes):
    if len(h) < 26:
        return None
    if struct.unpack('<I', h[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER
        return struct.unpack('<HH', h[18:22])
    w, hh = struct.unpack('<ii', h[18:26])
    return abs(w), abs(hh)


def _webp(h: bytes):
    kind = h[12:16]
    if kind == b'VP8 ' and len(h) >= 30:
        w, hh = struct.unpack('<HH', h[26:30])
        return w & 0x3FFF, hh & 0x3FFF
    if kind == b'VP8L' and len(h) >= 25:
        b = int.from_bytes(h[21:25], 'little')
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    if kind == b'VP8X' and len(h) >= 30:
        return (int.from_bytes(h[24:27], 'little') + 1, int.from_bytes(h[27:30], 'little') + 1)
    return None


def _jpeg(f) -> Optional[Tuple[int, int]]:
    f.seek(2)
    while True:
        b = f.read(1)
        while b and b != b'\xff':  # skip to a marker
            b = f.read(1)
        while b == b'\xff':
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            continue
        if marker == 0xD9:
            return None
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack('>H', seg)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            d = f.read(5)
            if len(d) < 5:
                return None
            hh, w = struct.unpack('>HH', d[1:5])
            return w, hh
        f.seek(length - 2, os.SEEK_CUR)


def _tiff(f, h: bytes) -> Optional[Tuple[int, int]]:
    e = '<' if h[:2] == b'II' else '>'
    big = struct.unpack(e + 'H', h[2:4])[0] == 43
    if big:
        f.seek(8)
        off = struct.unpack(e + 'Q', f.read(8))[0]
    else:
        off = struct.unpack(e + 'I', h[4:8])[0]
    f.seek(off)
    n_raw = f.read(8 if big else 2)
    if len(n_raw) < (8 if big else 2):
        return None
    n = struct.unpack(e + ('Q' if big else 'H'), n_raw)[0]
    size = 20 if big else 12
    ifd = f.read(min(n, 4096) * size)
    found = {}
    for i in range(len(ifd) // size):
        ent = ifd[i * size:(i + 1) * size]
        tag, typ = struct.unpack(e + 'HH', ent[:4])
        if tag in (256, 257):
            val = ent[12:] if big else ent[8:]
            fmt = {3: 'H', 4: 'I', 16: 'Q'}.get(typ)
            if fmt is None:
                return None
            found[tag] = struct.unpack(e + fmt, val[:struct.calcsize(fmt)])[0]
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def image_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of an image file from its header (nothing is decoded).

    Raises:
        ValueError: the file is missing, not a regular file, empty, or not a PNG, JPEG,
            BMP, WebP, TIFF or GIF file with a readable header.
    """
    if not os.path.isfile(path):
        raise ValueError(f'image {path} does not exist or is not a regular file')
    with open(path, 'rb') as f:
        h = f.read(_HEAD)
        size, fmt = None, None
        if h.startswith(b'\x89PNG\r\n\x1a\n'):
            fmt, size = 'PNG', _png(h)
        elif h.startswith(b'\xff\xd8'):
            fmt, size = 'JPEG', _jpeg(f)
        elif h.startswith(b'BM'):
            fmt, size = 'BMP', _bmp(h)
        elif h[:4] == b'RIFF' and h[8:12] == b'WEBP':
            fmt, size = 'WebP', _webp(h)
        elif h[:4] in (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+'):
            fmt, size = 'TIFF', _tiff(f, h)
        elif h[:6] in (b'GIF87a', b'GIF89a'):
            fmt, size = 'GIF', _gif(h)
    if not h:
        raise ValueError(f'image {path} is empty (0 bytes)')
    if fmt is None:
        raise ValueError(f'image {path} is not a PNG, JPEG, BMP, WebP, TIFF or GIF file '
                         '(its size cannot be checked before decoding)')
    if size is None:
        raise ValueError(f'image {path} cannot be decoded: its {fmt} header is truncated or '
                         'corrupt')
    return int(size[0]), int(size[1])


def read_image(path: str, limit: Optional[int] = None) -> np.ndarray:
    """(H, W, 3) uint8 BGR in the file's stored pixel frame (EXIF orientation ignored, as
    the configs' ``LoadImage(color_type='color_ignore_orientation')``), after the header
    check of :func:`image_size` / :func:`check_pixels`.

    Raises:
        ValueError: refused by the checks, or the file does not decode (truncated, corrupt).
    """
    import cv2
    w, h = image_size(path)
    check_pixels(w, h, f'image {path}', limit)
    try:
        img = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error as e:
        raise ValueError(f'image {path} cannot be decoded (OpenCV: '
                         f'{str(e).strip().splitlines()[-1]})') from None
    if img is None:
        raise ValueError(f'image {path}: the file exists but cannot be decoded as an image '
                         '(truncated or corrupt?)')
    return img
