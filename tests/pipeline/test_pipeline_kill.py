"""`python -m pipeline run` killed with SIGKILL during training and during the push, then rerun.

The rerun completes and pushes; ML Metadata stays consistent (the killed execution stays
non-final and produced no LIVE artifact, every finished execution's outputs exist, the Pusher's
recorded version is the complete directory on disk); and no incomplete integer version is ever
visible in the serving directory, so no server can load half a model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serving import layout

REPO = Path(__file__).resolve().parents[2]
MODEL = "digits"


class VersionWatcher:
    """Polls the model's serving directory until stopped; records any incomplete integer version."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.incomplete: list[str] = []
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for version in layout.list_versions(self.model_dir):
                problem = layout.saved_model_problem(self.model_dir / str(version))
                if problem is not None and (self.model_dir / str(version)).exists():
                    self.incomplete.append(f"{version}: {problem}")
                self.seen.add(version)
            time.sleep(0.005)

    def __enter__(self) -> "VersionWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _command(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "run", "--pipeline-root", str(tmp_path / "root"),
            "--serving-dir", str(tmp_path / "serving"), *extra]


def _run_and_kill_when(tmp_path: Path, marker: Path, timeout: float = 600) -> None:
    """Starts a run and SIGKILLs its whole process group as soon as `marker` exists."""
    process = subprocess.Popen(_command(tmp_path, "--no-live-check"), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert process.poll() is None, f"run ended before {marker} appeared: {process.stderr.read()[-3000:]!r}"
            assert time.monotonic() < deadline, f"{marker} did not appear in {timeout} s"
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _store(metadata_path: Path):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata_path)
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def _executions_by_node(store) -> dict[str, list]:
    result = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.split(".", 1)[1]
        result[node] = sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)
    return result


def _assert_consistent(store, killed_node: str) -> None:
    """Finished executions' outputs are LIVE and on disk; unfinished ones produced nothing LIVE."""
    from ml_metadata.proto import metadata_store_pb2

    execution_pb, artifact_pb = metadata_store_pb2.Execution, metadata_store_pb2.Artifact
    finished = (execution_pb.COMPLETE, execution_pb.CACHED)
    executions = _executions_by_node(store)
    killed = [e for e in executions[killed_node] if e.last_known_state not in finished]
    assert len(killed) == 1 and killed[0].last_known_state == execution_pb.RUNNING, executions[killed_node]
    assert executions[killed_node][-1].last_known_state == execution_pb.COMPLETE
    for node, runs in executions.items():
        for execution in runs:
            events = store.get_events_by_execution_ids([execution.id])
            outputs = store.get_artifacts_by_id([e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT])
            if execution.last_known_state in finished:
                for artifact in outputs:
                    assert artifact.state == artifact_pb.LIVE, (node, artifact)
                    assert Path(artifact.uri).exists(), (node, artifact.uri)
            else:
                assert execution.id == killed[0].id, (node, execution)
                assert all(a.state != artifact_pb.LIVE for a in outputs), (node, outputs)


def _pushed_versions(store) -> list[int]:
    """Versions the LIVE PushedModel artifacts record (their pushed_version custom property)."""
    from ml_metadata.proto import metadata_store_pb2

    return sorted(
        int(a.custom_properties["pushed_version"].string_value)
        for a in store.get_artifacts_by_type("PushedModel")
        if a.state == metadata_store_pb2.Artifact.LIVE and "pushed_version" in a.custom_properties
    )


def _rerun_and_check(tmp_path: Path, watcher: VersionWatcher, killed_node: str) -> None:
    rerun = subprocess.run(_command(tmp_path), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    model_dir = tmp_path / "serving" / MODEL
    versions = layout.list_versions(model_dir)
    assert f"pushed version {versions[-1]} to {model_dir / str(versions[-1])}" in rerun.stdout, rerun.stdout
    assert f"live check passed: '{MODEL}' version {versions[-1]}" in rerun.stdout, rerun.stdout
    assert not list(model_dir.glob(f"{layout.STAGING_PREFIX}*"))
    assert all(layout.is_complete_saved_model(model_dir / str(v)) for v in versions)
    store = _store(tmp_path / "root" / "metadata.sqlite")
    _assert_consistent(store, killed_node)
    assert _pushed_versions(store) == [versions[-1]]
    assert watcher.incomplete == []


@pytest.mark.e2e
def test_killed_during_training_then_rerun_completes(tmp_path: Path) -> None:
    model_dir = tmp_path / "serving" / MODEL
    with VersionWatcher(model_dir) as watcher:
        # The Trainer's output directories appear once its execution is registered as RUNNING.
        _run_and_kill_when(tmp_path, tmp_path / "root" / "Trainer")
        assert layout.list_versions(model_dir) == []
        _rerun_and_check(tmp_path, watcher, "Trainer")
    assert layout.list_versions(model_dir) == [1]


@pytest.mark.e2e
def test_killed_during_the_push_then_rerun_completes(tmp_path: Path) -> None:
    model_dir = tmp_path / "serving" / MODEL
    with VersionWatcher(model_dir) as watcher:
        _run_and_kill_when(tmp_path, tmp_path / "root" / "Pusher")
        # The kill may land before or after the rename, never in between.
        assert layout.list_versions(model_dir) in ([], [1])
        _rerun_and_check(tmp_path, watcher, "Pusher")
