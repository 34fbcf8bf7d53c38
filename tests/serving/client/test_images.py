"""serving.client.images: image files for a classifier's signature."""

from __future__ import annotations

import pytest

from serving.client import ClientError, SignatureSpec, TensorSpec
from serving.client.images import encoded_image, image_input, load_image


def test_image_input_refuses_unknown_image_size():
    spec = TensorSpec("image", "DT_FLOAT", (-1, -1, -1, 3))
    signature = SignatureSpec("serving_default", "", {"image": spec}, {})
    with pytest.raises(ClientError, match="height, width and channels must be fixed"):
        image_input(signature)


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ClientError, match=r"cannot read image .*notes.png.*expected a PNG or JPEG"):
        load_image(bad, 4, 4, 1)
    with pytest.raises(ClientError, match=r"notes.png is not a PNG or JPEG file"):
        encoded_image(bad)
