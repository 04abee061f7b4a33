"""Image sizes from file headers and the pixel limit (checked before decoding)."""
import os

import cv2
import numpy as np
import pytest

from logocap_rt.images import (DEFAULT_MAX_PIXELS, ENV_MAX_PIXELS, image_size, max_pixels,
                               read_image)
from logocap_rt.model import read_image as model_read_image

from .helpers import png_header_only


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp', '.webp', '.tif'])
@pytest.mark.parametrize('wh', [(37, 21), (300, 1), (1, 513)])
def test_header_size_equals_decoded_size(tmp_path, ext, wh):
    img = np.random.default_rng(0).integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8)
    path = str(tmp_path / f'x{ext}')
    assert cv2.imwrite(path, img)
    assert image_size(path) == wh
    assert read_image(path).shape == (wh[1], wh[0], 3)


def test_header_size_of_gif_and_lossless_webp(tmp_path):
    gif = tmp_path / 'x.gif'
    gif.write_bytes(b'GIF89a' + (321).to_bytes(2, 'little') + (123).to_bytes(2, 'little')
                    + b'\x00' * 20)
    assert image_size(str(gif)) == (321, 123)
    img = np.zeros((17, 45, 3), np.uint8)
    ok, buf = cv2.imencode('.webp', img, [cv2.IMWRITE_WEBP_QUALITY, 101])  # VP8L
    (tmp_path / 'l.webp').write_bytes(buf.tobytes())
    assert image_size(str(tmp_path / 'l.webp')) == (45, 17)


def test_bomb_is_refused_before_decoding(tmp_path):
    path = png_header_only(tmp_path / 'bomb.png', 30000, 30000)
    assert os.path.getsize(path) < 100
    assert image_size(path) == (30000, 30000)
    with pytest.raises(ValueError, match=r'30000x30000 = 900,000,000 pixels, over the limit'):
        read_image(path)
    with pytest.raises(ValueError, match='over the limit'):
        model_read_image(path)  # the runtime's public name is the same reader


def test_limit_is_configurable(tmp_path, monkeypatch):
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.zeros((20, 30, 3), np.uint8))
    assert max_pixels() == DEFAULT_MAX_PIXELS
    with pytest.raises(ValueError, match='600 pixels, over the limit of 599'):
        read_image(path, 599)
    assert read_image(path, 600).shape == (20, 30, 3)
    monkeypatch.setenv(ENV_MAX_PIXELS, '100')
    with pytest.raises(ValueError, match='over the limit of 100'):
        read_image(path)
    assert read_image(path, 0).shape == (20, 30, 3)  # 0: no limit
    monkeypatch.setenv(ENV_MAX_PIXELS, 'lots')
    with pytest.raises(ValueError, match='not an integer'):
        max_pixels()
    with pytest.raises(ValueError, match='>= 0'):
        max_pixels(-1)


def test_unknown_empty_truncated_and_corrupt_files(tmp_path):
    (tmp_path / 'e.jpg').write_bytes(b'')
    (tmp_path / 't.txt').write_text('hello')
    (tmp_path / 'h.png').write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00')
    with pytest.raises(ValueError, match='empty'):
        read_image(str(tmp_path / 'e.jpg'))
    with pytest.raises(ValueError, match='not a PNG, JPEG, BMP, WebP, TIFF or GIF'):
        read_image(str(tmp_path / 't.txt'))
    with pytest.raises(ValueError, match='header is truncated'):
        read_image(str(tmp_path / 'h.png'))
    good = str(tmp_path / 'g.jpg')
    cv2.imwrite(good, np.full((64, 64, 3), 100, np.uint8))
    with open(good, 'rb') as f:
        (tmp_path / 'cut.jpg').write_bytes(f.read()[:300])
    with pytest.raises(ValueError, match='cannot be decoded'):
        read_image(str(tmp_path / 'cut.jpg'))
    with pytest.raises(ValueError, match='does not exist'):
        read_image(str(tmp_path / 'missing.jpg'))
