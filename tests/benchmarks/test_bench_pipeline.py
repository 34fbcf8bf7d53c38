"""The pipeline benchmark's synthetic CIFAR-10: the real format, read by the pipeline's own reader, learnable."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from components.example_gen import logic

# The script the `bench` fixture (conftest.py) imports.
SCRIPT = "bench_pipeline"


def test_synthetic_cifar10_is_read_by_the_pipeline_and_learnable(bench: ModuleType, tmp_path: Path) -> None:
    archive = bench.synthetic_cifar10(tmp_path, 0.01)
    assert archive.name == "cifar-10-python.tar.gz"
    logic.check_source("cifar10", str(archive))
    dataset = logic.load_cifar10(archive)
    by_split: dict[str, list] = {"train": [], "eval": []}
    for split, pixels, label in dataset.records():
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
        by_split[split].append((pixels.astype(np.float32).reshape(-1), label))
    assert (len(by_split["train"]), len(by_split["eval"])) == (500, 100)
    # Nearest class mean of the train split labels the eval split: the classes are separable.
    train_x = np.stack([x for x, _ in by_split["train"]])
    train_y = np.array([y for _, y in by_split["train"]])
    means = np.stack([train_x[train_y == k].mean(axis=0) for k in range(10)])
    eval_x = np.stack([x for x, _ in by_split["eval"]])
    predicted = np.argmin(((eval_x[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    assert (predicted == np.array([y for _, y in by_split["eval"]])).mean() > 0.9
    # Written once, then reused.
    assert bench.synthetic_cifar10(tmp_path, 0.01).stat().st_mtime_ns == archive.stat().st_mtime_ns


def test_scale_must_be_positive(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--scale 0: expected a positive share"):
        bench.write_synthetic_cifar10(tmp_path / "c.tar.gz", 0)
