"""Fixtures for the pipeline tests: tf_keras before TF loads, and small input files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    """scikit-learn's bundled iris as a CSV with an integer `label` column."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    path = tmp_path / "iris.csv"
    lines = ["sepal_length,sepal_width,petal_length,petal_width,label"]
    lines += [",".join(f"{v:g}" for v in row) + f",{label}" for row, label in zip(iris.data, iris.target)]
    path.write_text("\n".join(lines) + "\n")
    return path
