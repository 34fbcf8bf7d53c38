"""End-to-end runs of `python -m pipeline run` (slow; still run in CI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import configs
from serving import layout

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = [
    "ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "Evaluator", "InfraValidator", "Pusher",
]
# Inputs unchanged on a rerun, so ML Metadata's cache supplies their outputs.
CACHED_ON_RERUN = ["ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "InfraValidator"]


def _run(tmp_path: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--pipeline-root", str(tmp_path / "root"),
         "--serving-dir", str(tmp_path / "serving"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def _progress(stdout: str) -> dict[str, str]:
    """component id -> 'done' | 'cached' from the progress lines."""
    return {m["node"]: m["state"] for m in re.finditer(r"^\[\d+/\d+\] (?P<node>\S+)\s+(?P<state>done|cached)\s", stdout, re.M)}


def _mlmd_executions(metadata_path: Path) -> dict[str, list[int]]:
    """node id -> states of its executions, from the SQLite ML Metadata store."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata_path)
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(connection)
    result = {}
    for context in store.get_contexts_by_type("node"):
        node = context.name.split(".", 1)[1]
        result[node] = [e.last_known_state for e in sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)]
    return result


@pytest.mark.e2e
def test_digits_with_beam_pushes_two_versions_then_caches_everything(tmp_path: Path) -> None:
    from ml_metadata.proto import metadata_store_pb2

    first = _run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert _progress(first.stdout) == {**{c: "done" for c in COMPONENTS}, "latest_blessed_model_resolver": "done"}
    accuracy = float(re.search(r"eval accuracy (\d\.\d+)", first.stdout)[1])
    assert accuracy >= 0.95, first.stdout
    assert "model BLESSED" in first.stdout
    assert f"pushed version 1 to {tmp_path / 'serving' / 'digits' / '1'}" in first.stdout
    # The InfraValidator ran the model in a real server process and queried it.
    assert re.search(r"InfraValidator: blessed \(LOAD_AND_QUERY\) by embedded server .* \d+ request\(s\) answered", first.stdout), first.stdout
    # A server started with the run hot-loaded the pushed version 1; the live check found it
    # AVAILABLE on both protocols, named the endpoints, and its answers matched the model.
    assert re.search(r"^live check on embedded server .* started with this run: grpc 127\.0\.0\.1:\d+", first.stdout, re.M)
    live = re.search(r"^live check passed: 'digits' version 1\b.*$", first.stdout, re.M)
    assert live, first.stdout
    assert re.search(r"grpc 127\.0\.0\.1:\d+: AVAILABLE .* 16/16 answers match", live[0]), live[0]
    assert re.search(r"rest 127\.0\.0\.1:\d+: AVAILABLE .* 16/16 answers match", live[0]), live[0]
    # Quiet by default: no TF/absl/Beam log lines.
    assert "WARNING" not in first.stdout + first.stderr and "absl" not in first.stderr, first.stderr[-2000:]

    second = _run(tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    states = _progress(second.stdout)
    for cached in CACHED_ON_RERUN:
        assert states[cached] == "cached", second.stdout
    # The baseline is new (the first run's blessed model), so evaluation and push run again.
    assert states["Evaluator"] == "done" and states["Pusher"] == "done"
    assert re.search(r"baseline \d\.\d+", second.stdout), second.stdout
    assert f"pushed version 2 to {tmp_path / 'serving' / 'digits' / '2'}" in second.stdout
    assert "live check passed: 'digits' version 2" in second.stdout, second.stdout

    model_dir = tmp_path / "serving" / "digits"
    assert layout.list_versions(model_dir) == [1, 2]
    assert all(layout.is_complete_saved_model(model_dir / str(v)) for v in (1, 2))
    assert (model_dir / "2" / "assets" / "class_names.txt").read_text().split() == [str(i) for i in range(10)]
    # The InfraValidator's requests travel with the pushed model as TF Serving warmup records.
    assert (model_dir / "1" / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0

    executions = _mlmd_executions(tmp_path / "root" / "metadata.sqlite")
    for component in COMPONENTS:
        assert len(executions[component]) == 2, (component, executions)
        assert executions[component][0] == metadata_store_pb2.Execution.COMPLETE
    for component in CACHED_ON_RERUN:
        assert executions[component][1] == metadata_store_pb2.Execution.CACHED
    assert executions["Pusher"][1] == metadata_store_pb2.Execution.COMPLETE

    # Nothing changed since the second run: everything is cached and no third version appears.
    third = _run(tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert set(_progress(third.stdout)[c] for c in COMPONENTS) == {"cached"}, third.stdout
    assert "nothing new to push" in third.stdout and "as version 2" in third.stdout
    assert layout.list_versions(model_dir) == [1, 2]


@pytest.mark.e2e
def test_csv_with_the_local_runner(tmp_path: Path, iris_csv: Path) -> None:
    result = _run(
        tmp_path, "--data", f"csv:{iris_csv}", "--runner", "local", "--model-name", "iris",
        "--epochs", "20", "--learning-rate", "0.05", "--patience", "20", "--accuracy-threshold", "0.8",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(_progress(result.stdout)) >= set(COMPONENTS), result.stdout
    assert "model BLESSED" in result.stdout, result.stdout
    assert layout.list_versions(tmp_path / "serving" / "iris") == [1]


@pytest.mark.e2e
def test_a_failing_component_stops_the_run_and_leaves_serving_untouched(tmp_path: Path) -> None:
    """The CIFAR batch files are all there (the up-front check passes) but hold garbage."""
    batches = tmp_path / "cifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (batches / name).write_bytes(b"garbage")
    bad = batches / "data_batch_1"
    result = _run(tmp_path, "--data", f"cifar10:{tmp_path / 'cifar'}", "--runner", "local")
    assert result.returncode == 1
    assert f"error: {configs.EXAMPLE_GEN_ID} failed:" in result.stderr
    assert f"{bad}: not a CIFAR-10 python batch" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "serving").exists()


@pytest.mark.e2e
def test_image_folder_with_the_local_runner(tmp_path: Path) -> None:
    """A folder of PNG/JPEG sub-folders, resized to --image-size; the model serves class names."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    for class_id, name in enumerate(("night", "day")):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(20):
            value = 20 + 200 * class_id + i
            suffix = "png" if i % 2 else "jpg"
            Image.new("RGB", (24, 18), (value, value, value)).save(tmp_path / "pics" / name / f"{i}.{suffix}")
    result = _run(
        tmp_path, "--data", f"images:{tmp_path / 'pics'}", "--image-size", "12x12", "--runner", "local",
        "--model-name", "daylight", "--epochs", "15", "--patience", "15", "--learning-rate", "0.01",
        "--accuracy-threshold", "0.8", "--eval-percent", "30",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model BLESSED" in result.stdout, result.stdout
    version = tmp_path / "serving" / "daylight" / "1"
    assert (version / "assets" / "class_names.txt").read_text() == "day\nnight\n"
    served = tf.saved_model.load(str(version)).signatures["serving_default"]
    bright = served(image=tf.constant(np.full((1, 12, 12, 3), 230.0, np.float32)))
    assert bright["class_name"].numpy().tolist() == [b"day"]
