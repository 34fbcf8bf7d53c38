"""The serving directory layout shared by the server, the Pusher and `serving.push`.

`<serving_dir>/<model_name>/<version>/` where version is an integer, exactly as TF Serving's
FileSystemStoragePathSource reads it: a child directory whose whole name parses as a
non-negative int64 is a version (`00000123` is 123); anything else (`v1`, `0.1`, `.tmp-...`)
is ignored. Publishing writes the copy aside under a dot-name the server ignores, then
renames it into place, so a polling server never sees a half-written version.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

logger = logging.getLogger(__name__)

_INT64_MAX = 2**63 - 1
_VERSION_RE = re.compile(r"^[0-9]+$")
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
STAGING_PREFIX = ".staging-"
LOCK_NAME = ".publish.lock"


class LayoutError(ValueError):
    """A serving directory, model name or model that does not fit the layout."""


def parse_version(name: str) -> int | None:
    """Returns the version a directory name stands for, or None when TF Serving ignores it."""
    if not _VERSION_RE.match(name):
        return None
    value = int(name)
    return value if value <= _INT64_MAX else None


def check_model_name(name: str) -> str:
    """Returns `name` if it is a safe single path component, else raises LayoutError."""
    if not _MODEL_NAME_RE.match(name) or name in (".", ".."):
        raise LayoutError(
            f"model name {name!r} is not allowed: expected letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (it becomes a directory under the serving dir)"
        )
    return name


def list_versions(model_dir: str | os.PathLike[str]) -> list[int]:
    """Integer versions present under `model_dir`, ascending; [] when it does not exist."""
    path = Path(model_dir)
    if not path.is_dir():
        return []
    versions = set()
    for child in path.iterdir():
        version = parse_version(child.name)
        if version is not None and child.is_dir():
            if version in versions:
                logger.warning("duplicate version %d under %s (names differ only by zeros)", version, path)
            versions.add(version)
    return sorted(versions)


def is_complete_saved_model(version_dir: str | os.PathLike[str]) -> bool:
    """True when the directory holds a SavedModel graph (and its variables if it has any)."""
    path = Path(version_dir)
    if not ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()):
        return False
    variables = path / "variables"
    if variables.is_dir():
        return (variables / "variables.index").is_file()
    return True


@contextlib.contextmanager
def _publish_lock(model_dir: Path) -> Iterator[None]:
    """Serialises publishers of one model (two pipelines or a pipeline and `push`)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with open(model_dir / LOCK_NAME, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Published:
    version: int
    path: str


def publish(
    source: str | os.PathLike[str],
    serving_dir: str | os.PathLike[str],
    model_name: str,
    *,
    copy_tree: Callable[[str, str], None] | None = None,
) -> Published:
    """Copies the SavedModel at `source` into the next integer version of `model_name`, atomically.

    The next version is one more than the highest present (1 for a new model). The copy goes to
    `<model_dir>/.staging-<version>` and is renamed into place only when complete, so a server
    polling the directory sees either nothing or the whole model. On any failure the staging
    copy is removed and the serving directory is as it was.
    """
    check_model_name(model_name)
    source_path = Path(source)
    if not is_complete_saved_model(source_path):
        raise LayoutError(
            f"{source_path} is not a complete SavedModel: expected saved_model.pb "
            "(and variables/variables.index when the model has variables)"
        )
    model_dir = Path(serving_dir) / model_name
    copy = copy_tree or (lambda src, dst: shutil.copytree(src, dst))
    with _publish_lock(model_dir):
        existing = list_versions(model_dir)
        version = (existing[-1] + 1) if existing else 1
        staging = model_dir / f"{STAGING_PREFIX}{version}"
        final = model_dir / str(version)
        if staging.exists():
            shutil.rmtree(staging)
        try:
            copy(str(source_path), str(staging))
            if not is_complete_saved_model(staging):
                raise LayoutError(f"copy of {source_path} to {staging} is incomplete")
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info("published %s as version %d at %s", source_path, version, final)
    return Published(version=version, path=str(final))
