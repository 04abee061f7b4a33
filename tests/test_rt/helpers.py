"""Small generated inputs for the runtime's tool tests (no model, no network)."""
import struct
import zlib

import numpy as np


def png_header_only(path, width, height):
    """A PNG whose header announces ``width x height`` (8-bit RGB) with almost no pixel data:
    what a decompression bomb looks like before decoding."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    data = (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
            + chunk(b'IDAT', zlib.compress(b'\x00' * 16)) + chunk(b'IEND', b''))
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def write_image(path, h=40, w=60, seed=0):
    import cv2
    img = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), img)
    return str(path)


def write_video(path, n=4, size=(32, 24), fourcc='mp4v'):
    """An ``n``-frame video of ``size`` (w, h); returns its path."""
    import cv2
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 5, size)
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), 40 * i, np.uint8))
    w.release()
    return str(path)


def count_frames(path):
    """Number of frames OpenCV can read from the video file ``path``."""
    import cv2
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n
