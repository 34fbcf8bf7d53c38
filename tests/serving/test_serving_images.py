"""serving.images (serving/images.py; test_images.py is the client's): PNG/JPEG bytes checked and decoded to resized pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serving.images import ImageError, check_encoded_image, decode_image, is_encoded_image


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_png_decodes_to_its_pixels_and_is_resized_to_fit():
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    png = _encode(pixels, "PNG")
    assert is_encoded_image(png) and check_encoded_image(png, "p.png") is png
    decoded = decode_image(png, 3, 4, 1, "p.png")
    assert decoded.dtype == np.float32 and decoded.shape == (3, 4, 1)
    np.testing.assert_array_equal(decoded[..., 0], pixels)
    assert decode_image(png, 6, 8, 3, "p.png").shape == (6, 8, 3)  # grey -> RGB, twice the size
    jpeg = _encode(np.full((5, 5, 3), 200, np.uint8), "JPEG")
    assert is_encoded_image(jpeg)
    assert abs(decode_image(jpeg, 5, 5, 3, "j.jpg").mean() - 200) < 2


def test_bad_bytes_name_what_was_expected():
    with pytest.raises(ImageError, match=r"body is not a PNG or JPEG file \(its first bytes are b'GIF89a..'\)"):
        check_encoded_image(b"GIF89a....", "body")
    with pytest.raises(ImageError, match="cannot read image x.png: .*expected a PNG or JPEG file"):
        decode_image(b"\x89PNG\r\n\x1a\nbroken", 2, 2, 1, "x.png")
