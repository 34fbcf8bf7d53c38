"""Fixtures for the component tests (tiny data in tmp_path; helpers live in pl_fixture_data.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from pl_fixture_data import write_cifar_dir, write_image_folder  # noqa: E402


@pytest.fixture
def cifar_dir(tmp_path: Path):
    return tmp_path, write_cifar_dir(tmp_path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "pictures")
