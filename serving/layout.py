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
import functools
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

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


def find_version(model_dir: str | os.PathLike[str], version: int | None = None) -> tuple[int, Path]:
    """`version` (default: the latest) under `model_dir` and its directory, found by number (`007`
    is version 7); LayoutError naming the versions there are when it is absent."""
    path = Path(model_dir)
    versions = list_versions(path)
    if version is None and not versions:
        raise LayoutError(f"no versions under {path}")
    version = versions[-1] if version is None else version
    if version not in versions:
        raise LayoutError(f"version {version} of {path.name!r} is not in {path}; it has {versions or 'no versions'}")
    return version, next(c for c in sorted(path.iterdir()) if parse_version(c.name) == version and c.is_dir())


# Ops that hold variables in a GraphDef (TF1 ref and resource variables, TF2 resource handles).
_VARIABLE_OPS = frozenset({"Variable", "VariableV2", "VarHandleOp", "_VarHandlesOp", "AutoReloadVariable"})
_DATA_SHARD_RE = re.compile(r"^variables\.data-(\d{5})-of-(\d{5})$")


# Cached by path, size and mtime: pollers ask every second about the same saved_model.pb.
@functools.lru_cache(maxsize=4096)
def _graph_expects_checkpoint(graph_file: Path, _size: int, _mtime_ns: int) -> bool | None:
    """Whether the SavedModel's MetaGraphs restore variables from `variables/`: a saver, variable
    ops or variable objects. None when the file cannot be parsed (the loader will say why)."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    try:
        if graph_file.suffix == ".pbtxt":
            text_format.Parse(graph_file.read_text(), saved_model)
        else:
            with warnings.catch_warnings():  # garbage may parse partly, with a RuntimeWarning
                warnings.simplefilter("ignore", RuntimeWarning)
                saved_model.ParseFromString(graph_file.read_bytes())
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError, OSError):
        return None
    for meta_graph in saved_model.meta_graphs:
        if meta_graph.saver_def.restore_op_name:
            return True
        graph = meta_graph.graph_def
        nodes = [*graph.node, *(n for f in graph.library.function for n in f.node_def)]
        if any(node.op in _VARIABLE_OPS for node in nodes):
            return True
        if any(obj.WhichOneof("kind") == "variable" for obj in meta_graph.object_graph_def.nodes):
            return True
    return False


def _checkpoint_problem(variables: Path) -> str | None:
    """Why `variables/` does not hold a whole checkpoint (index and every data shard)."""
    if not (variables / "variables.index").is_file():
        if variables.is_dir() and not any(variables.iterdir()):
            return "its variables/ directory is empty but the graph has variables (a copy still in progress?)"
        return "variables/variables.index is missing (an incomplete copy?)"
    shards = [m for m in map(_DATA_SHARD_RE.match, (p.name for p in variables.iterdir())) if m]
    if not shards:
        return "variables/ has an index but no variables.data-* shard (an incomplete copy?)"
    total = int(shards[0].group(2))
    missing = sorted(set(range(total)) - {int(m.group(1)) for m in shards if int(m.group(2)) == total})
    if missing:
        return f"variables/ lacks data shard {missing[0]:05d} of {total:05d} (an incomplete copy?)"
    return None


def saved_model_problem(version_dir: str | os.PathLike[str]) -> str | None:
    """Why a directory is not a complete SavedModel, or None when it is one.

    Complete means a graph file and, when the graph has variables (a saver, variable ops or
    variable objects in its MetaGraph), the checkpoint in `variables/`: the index and every data
    shard. A graph without variables needs none (a TF1 SavedModelBuilder export leaves an empty
    `variables/`; TF Serving serves it). A graph file that does not parse is left to the loader,
    which reports it (so a broken model ends as a failed version, as in TF Serving)."""
    path = Path(version_dir)
    graph_file = next((path / n for n in ("saved_model.pb", "saved_model.pbtxt") if (path / n).is_file()), None)
    if graph_file is None:
        return "it has no saved_model.pb (or saved_model.pbtxt)"
    variables = path / "variables"
    try:
        stat = graph_file.stat()
        expects = _graph_expects_checkpoint(graph_file, stat.st_size, stat.st_mtime_ns)
    except OSError as error:  # vanished while we looked: a copy or a delete in progress
        return f"its graph file cannot be read ({error.strerror})"
    if expects is None:
        expects = variables.is_dir()
    return _checkpoint_problem(variables) if expects else None


def is_complete_saved_model(version_dir: str | os.PathLike[str]) -> bool:
    """True when the directory holds a SavedModel graph and the variables its graph needs."""
    return saved_model_problem(version_dir) is None


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Holds an exclusive flock on `lock_file` (created with its directory): serialises the
    publishers of one model (two pipelines or a pipeline and `push`) and the writers of a config."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary handle on a hidden temporary file beside `path`, renamed to `path` when the block
    ends without error (after fsync), removed otherwise: readers see the old file or the whole new one."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide the file from a server run as another user
        with os.fdopen(handle, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


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
    problem = saved_model_problem(source_path)
    if problem is not None:
        raise LayoutError(f"{source_path} is not a complete SavedModel: {problem}")
    model_dir = Path(serving_dir) / model_name
    copy = copy_tree or (lambda src, dst: shutil.copytree(src, dst))
    with locked(model_dir / LOCK_NAME):
        existing = list_versions(model_dir)
        version = (existing[-1] + 1) if existing else 1
        staging = model_dir / f"{STAGING_PREFIX}{version}"
        final = model_dir / str(version)
        # Under the lock no publisher is copying, so a staging dir is what a killed one left.
        for leftover in model_dir.glob(f"{STAGING_PREFIX}*"):
            logger.warning("removing %s, left by a publish that did not finish", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            copy(str(source_path), str(staging))
            problem = saved_model_problem(staging)
            if problem is not None:
                raise LayoutError(f"copy of {source_path} to {staging} is incomplete: {problem}")
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info("published %s as version %d at %s", source_path, version, final)
    return Published(version=version, path=str(final))
