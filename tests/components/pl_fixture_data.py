"""Tiny fixture datasets in the real formats, written by the tests themselves (no downloads).

CIFAR-10 python batches are pickled dicts with b"data" [N, 3072] channel-first and b"labels";
IDX files carry the 0x0000 08 NN magic and big-endian dimensions; image folders hold real
PNG/JPEG files written by Pillow.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np

CIFAR_DIR = "cifar-10-batches-py"


def cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """(pickle bytes, images [N,32,32,3] HWC, labels) of a CIFAR-10 python batch."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n)
    data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # channel-first rows, as CIFAR stores them
    payload = pickle.dumps({b"batch_label": b"test", b"labels": labels.tolist(), b"data": data, b"filenames": []})
    return payload, images, labels


def write_cifar_dir(root: Path, n: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An extracted cifar-10-batches-py directory; returns {batch name: (images, labels)}."""
    base = root / CIFAR_DIR
    base.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        payload, images, labels = cifar_batch(n, seed)
        (base / name).write_bytes(payload)
        written[name] = (images, labels)
    (base / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}))
    return written


def write_cifar_tar(root: Path, n: int = 3) -> tuple[Path, dict]:
    extracted = root / "extracted"
    written = write_cifar_dir(extracted, n)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(extracted / CIFAR_DIR, arcname=CIFAR_DIR)
    return archive, written


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(root: Path, *, gz: bool, n_train: int = 6, n_test: int = 4, dotted: bool = False) -> dict:
    """The four MNIST-format files; `dotted` uses the `train-images.idx3-ubyte` spelling."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test),
    }
    for name, array in arrays.items():
        data = idx_bytes(array)
        if dotted:
            name = name.replace("-idx", ".idx")
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)
    return arrays


def write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 6, size=(10, 12)) -> Path:
    """DIR/<class>/*.png|jpg: class 0 dark, class 1 bright, so a model can tell them apart."""
    from PIL import Image

    for class_id, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            value = 30 + 180 * class_id + i
            image = Image.new("RGB", (size[1], size[0]), (value, value // 2, 255 - value))
            suffix = ".png" if i % 2 == 0 else ".jpg"
            image.save(folder / f"img{i}{suffix}")
    return root
