"""Encoded images as arrays: PNG/JPEG bytes checked and decoded to resized pixels (client and server share it)."""

from __future__ import annotations

import io

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


class ImageError(ValueError):
    """Bytes that are not a readable PNG/JPEG image of the expected channels; the message says why."""


def is_encoded_image(data: bytes) -> bool:
    """True when `data` starts like a PNG or a JPEG file."""
    return data.startswith(_MAGIC)


def check_encoded_image(data: bytes, name: str) -> bytes:
    """`data` itself when it starts like a PNG or JPEG file, else ImageError naming `name`."""
    if not is_encoded_image(data):
        raise ImageError(f"{name} is not a PNG or JPEG file (its first bytes are {data[:8]!r})")
    return data


def decode_image(data: bytes, height: int, width: int, channels: int, name: str) -> np.ndarray:
    """PNG/JPEG bytes -> float32 [H, W, C] raw pixels 0-255, resized (bilinear) to fit."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as err:
        raise ImageError(f"cannot read image {name}: {err}; expected a PNG or JPEG file") from err
    if channels == 1:
        array = array[..., None]
    if array.shape[-1] != channels:
        raise ImageError(f"image {name} has {array.shape[-1]} channels, the model expects {channels}")
    return array
