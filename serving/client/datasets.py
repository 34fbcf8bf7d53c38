"""Labelled image sets for `evaluate`: scikit-learn's digits, an .npz file, or a folder of class folders.

The digits are made here as the pipeline's ExampleGen makes them (pixels 0-16 scaled to 0-255 and
rounded; a row is in the eval split when crc32("digits:<index>") % 100 < eval_percent), read
straight from scikit-learn so the client needs nothing of the pipeline (a test holds the two to
the same rows).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Literal

import numpy as np

from serving.client.images import load_image
from serving.client.types import ClientError
from serving.images import IMAGE_SUFFIXES


def load_digits_set(
    split: Literal["eval", "all"] = "eval", eval_percent: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as raw pixels 0-255 [N, 8, 8, 1] float32 and integer
    labels. "eval" keeps only the pipeline's held-out split (same `eval_percent`), "all" all 1797."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.clip(np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)), 0, 255)
    keep = [
        index for index in range(len(bunch.target))
        if split == "all" or zlib.crc32(f"digits:{index}".encode("utf-8")) % 100 < eval_percent
    ]
    images = pixels.astype(np.uint8)[keep][..., np.newaxis].astype(np.float32)
    return images, np.asarray(bunch.target, dtype=np.int64)[keep]


def load_npz_set(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """An .npz holding images (`images`, `x` or `x_test`) and labels (`labels`, `y` or `y_test`)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            image_key = next((k for k in ("images", "x", "x_test") if k in keys), None)
            label_key = next((k for k in ("labels", "y", "y_test") if k in keys), None)
            if image_key is None or label_key is None:
                raise ClientError(
                    f"{path} holds arrays {sorted(keys)}; expected images as 'images', 'x' or 'x_test' "
                    "and labels as 'labels', 'y' or 'y_test'",
                    code="INVALID_ARGUMENT",
                )
            images, labels = data[image_key], data[label_key].reshape(-1)
    except (OSError, ValueError) as err:
        message = f"cannot read {path} as an .npz file: {err}"
        raise ClientError(message, code="INVALID_ARGUMENT") from err
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32), labels


def load_folder_set(
    folder: str | os.PathLike[str], height: int, width: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """A folder with one sub-folder per class name holding PNG/JPEG files; labels are the names."""
    root = Path(folder)
    images, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                images.append(load_image(file, height, width, channels))
                labels.append(class_dir.name)
    if not images:
        raise ClientError(
            f"{folder} has no PNG/JPEG files in class sub-folders "
            f"(expected {folder}/<class>/<image>.png)",
            code="INVALID_ARGUMENT",
        )
    return np.stack(images), np.asarray(labels)
