"""serving.client.datasets: the labelled sets `evaluate` reads."""

from __future__ import annotations

import numpy as np
import pytest

from serving.client import ClientError
from serving.client.datasets import load_digits_set, load_folder_set, load_npz_set


def test_digits_set_is_the_pipelines_eval_split_and_scaling():
    from sklearn.datasets import load_digits

    from components.example_gen.logic import EVAL, digits_pixels
    from components.example_gen.logic import load_digits as pipeline_digits

    images, labels = load_digits_set("all")
    digits = load_digits()
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    np.testing.assert_array_equal(images, digits_pixels(digits.images).astype(np.float32))
    np.testing.assert_array_equal(labels, digits.target)
    eval_images, eval_labels = load_digits_set("eval")
    assert 0.1 * 1797 < len(eval_images) < 0.3 * 1797
    # The client reads scikit-learn itself; its eval rows are exactly ExampleGen's.
    held_out = [(pixels, label) for split, pixels, label in pipeline_digits().records() if split == EVAL]
    np.testing.assert_array_equal(eval_images, np.stack([p for p, _ in held_out]).astype(np.float32))
    np.testing.assert_array_equal(eval_labels, [label for _, label in held_out])


def test_npz_and_folder_sets(tmp_path):
    from PIL import Image

    np.savez(tmp_path / "set.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 1]))
    images, labels = load_npz_set(tmp_path / "set.npz")
    assert images.shape == (3, 4, 4, 1) and labels.tolist() == [0, 1, 1]
    np.savez(tmp_path / "bad.npz", pixels=np.zeros(3))
    with pytest.raises(ClientError, match=r"holds arrays \['pixels'\]; expected images"):
        load_npz_set(tmp_path / "bad.npz")
    for name, value in (("cat", 10), ("dog", 200)):
        (tmp_path / "folder" / name).mkdir(parents=True)
        Image.fromarray(np.full((9, 9, 3), value, np.uint8)).save(tmp_path / "folder" / name / "a.png")
    images, labels = load_folder_set(tmp_path / "folder", 4, 4, 1)
    assert images.shape == (2, 4, 4, 1) and labels.tolist() == ["cat", "dog"]
    assert images[1].min() == pytest.approx(200, abs=1)
    with pytest.raises(ClientError, match="has no PNG/JPEG files"):
        load_folder_set(tmp_path / "folder" / "cat", 4, 4, 1)
