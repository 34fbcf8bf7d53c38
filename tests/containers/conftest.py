"""Fixtures for the container tests: the Docker engine and the images `bin/docker-setup` builds.

These tests run real containers, so they need a running engine and both images; they are not in
the default test paths (`bin/test`), and `bin/test-containers` sets everything up first. Without
the engine or an image, every test here fails with one line saying to run `bin/docker-setup`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Iterator

import pytest

# Project decision: tf_keras everywhere, set before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from container_helpers import DOCKER, LABEL, PIPELINE_IMAGE, SERVING_IMAGE, docker  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def engine_and_images() -> Iterator[None]:
    """The engine answers and both images exist; leftover test containers go at the end."""
    if shutil.which(DOCKER) is None or subprocess.run([DOCKER, "info"], capture_output=True).returncode != 0:
        pytest.fail("no running Docker engine: run bin/docker-setup (or bin/test-containers)", pytrace=False)
    for image in (PIPELINE_IMAGE, SERVING_IMAGE):
        if subprocess.run([DOCKER, "image", "inspect", image], capture_output=True).returncode != 0:
            pytest.fail(f"image {image} is missing: run bin/docker-setup", pytrace=False)
    yield
    leftovers = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    if leftovers:
        docker("rm", "-f", *leftovers, check=False)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Names of containers the test starts; removed (forcibly) afterwards whatever happened."""
    started: list[str] = []
    yield started
    for name in started:
        docker("rm", "-f", name, check=False)
