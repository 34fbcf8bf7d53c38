"""`python -m serving.push`: validate, publish the next version, labels and rollback.

Broken models refused by push are tested with the InfraValidator's in
tests/components/infra_validator/test_broken_models.py (one zoo for both).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import convert, layout, push
from serving.client import ServingClient
from serving.errors import PushError

MODEL = "half_plus_two"


def _config(path: Path) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())


def _wait_for(client: ServingClient, want_version: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = client.status()
            if any(s.version == want_version and s.state == "AVAILABLE" for s in last):
                return
        except Exception as error:  # noqa: BLE001 - label not assigned yet, keep polling
            last = error
        time.sleep(0.3)
    raise AssertionError(f"version {want_version} not AVAILABLE via {client!r}: {last}")


@pytest.mark.e2e
def test_push_with_labels_is_served_without_restart_and_rolls_back(
    tmp_path: Path, half_plus_two_model: Path, serve, capsys: pytest.CaptureFixture[str]
):
    serving_dir = tmp_path / "serving"
    config = serving_dir / "models.config"
    common = ["--serving-dir", str(serving_dir), "--model-name", MODEL, "--server", "embedded"]

    assert push.main([str(half_plus_two_model), *common, "--label", "stable"]) == 0
    out = capsys.readouterr().out
    assert "validated: servable" in out and f"as version 1 of '{MODEL}'" in out
    entry = _config(config).model_config_list.config[0]
    assert entry.name == MODEL and entry.base_path == str((serving_dir / MODEL).resolve())
    assert dict(entry.version_labels) == {"stable": 1}
    assert list(entry.model_version_policy.specific.versions) == [1]

    args = ["--model_config_file_poll_wait_seconds=1"]
    with serve(config_file=config, args=args) as server:
        stable = ServingClient(server.rest_endpoint, "rest", MODEL, label="stable")
        _wait_for(stable, 1)
        assert stable.predict({"x": np.array([4.0], np.float32)})["y"].tolist() == [4.0]

        assert push.main([str(half_plus_two_model), *common, "--label", "canary"]) == 0
        assert f"as version 2 of '{MODEL}'" in capsys.readouterr().out
        assert layout.list_versions(serving_dir / MODEL) == [1, 2]
        entry = _config(config).model_config_list.config[0]
        assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
        assert list(entry.model_version_policy.specific.versions) == [1, 2]

        # The running server (same process) loads version 2 and the canary label from the config.
        canary = ServingClient(server.grpc_endpoint, "grpc", MODEL, label="canary")
        _wait_for(canary, 2)
        assert canary.predict({"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]
        assert [s.version for s in stable.status()] == [1]

        # Roll the canary back by pointing it at version 1.
        assert push.main(["rollback", "--serving-dir", str(serving_dir), "--model-name", MODEL,
                          "--to", "1", "--label", "canary"]) == 0
        assert "now points at version 1" in capsys.readouterr().out
        _wait_for(canary, 1)
        assert server.is_alive()


@pytest.mark.e2e
def test_push_converts_keras_h5_and_keras_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import tf_keras

    model = tf_keras.Sequential([tf_keras.layers.Input(shape=(3,), name="features"), tf_keras.layers.Dense(2)])
    model.save(tmp_path / "model.h5")
    model.save(tmp_path / "model.keras")
    serving_dir = tmp_path / "serving"
    for index, name in enumerate(("model.h5", "model.keras"), start=1):
        code = push.main([str(tmp_path / name), "--serving-dir", str(serving_dir), "--model-name", "k",
                          "--server", "embedded"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert f"as version {index} of 'k'" in out
        assert "1 request(s) answered" in out
        assert layout.is_complete_saved_model(serving_dir / "k" / str(index))
    assert not (serving_dir / "models.config").exists()  # no labels, no config file


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root, "is a directory but not a SavedModel"),
        (lambda root: (root / "notes.txt").write_text("x") and root / "notes.txt", "is not a SavedModel directory"),
        (lambda root: (root / "bad.h5").write_bytes(b"not hdf5") and root / "bad.h5", "could not be loaded as a Keras model"),
    ],
)
def test_push_refuses_what_is_not_a_model(tmp_path: Path, make, message, capsys: pytest.CaptureFixture[str]):
    root = tmp_path / "src"
    root.mkdir()
    source = make(root)
    serving_dir = tmp_path / "serving"
    code = push.main([str(source), "--serving-dir", str(serving_dir), "--model-name", "m"])
    assert code == push.EXIT_REFUSED
    assert message in capsys.readouterr().err
    assert not serving_dir.exists()


def test_rollback_without_label_republishes_the_version(tmp_path: Path, half_plus_two_model: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    serving_dir = tmp_path / "serving"
    for _ in range(2):
        layout.publish(half_plus_two_model, serving_dir, MODEL)
    (serving_dir / MODEL / "2" / "marker").write_text("v2")

    code = push.main(["rollback", "--serving-dir", str(serving_dir), "--model-name", MODEL, "--to", "1"])

    assert code == 0
    assert "version 1 of 'half_plus_two' re-published as version 3" in capsys.readouterr().out
    assert layout.list_versions(serving_dir / MODEL) == [1, 2, 3]
    assert not (serving_dir / MODEL / "3" / "marker").exists()
    assert (serving_dir / MODEL / "3" / "saved_model.pb").read_bytes() == (
        serving_dir / MODEL / "1" / "saved_model.pb"
    ).read_bytes()


def test_rollback_to_a_missing_version_is_refused(tmp_path: Path, half_plus_two_model: Path,
                                                  capsys: pytest.CaptureFixture[str]):
    serving_dir = tmp_path / "serving"
    layout.publish(half_plus_two_model, serving_dir, MODEL)
    code = push.main(["rollback", "--serving-dir", str(serving_dir), "--model-name", MODEL, "--to", "7"])
    assert code == push.EXIT_REFUSED
    assert "version 7 of 'half_plus_two' is not in" in capsys.readouterr().err
    assert layout.list_versions(serving_dir / MODEL) == [1]


def test_model_config_update_keeps_other_models_and_drops_stale_labels(tmp_path: Path, half_plus_two_model: Path):
    serving_dir = tmp_path / "serving"
    config = serving_dir / "models.config"
    for _ in range(3):
        layout.publish(half_plus_two_model, serving_dir, MODEL)
    serving_dir.mkdir(exist_ok=True)
    config.write_text(
        'model_config_list { config { name: "other" base_path: "/models/other" model_platform: "tensorflow" } '
        f'config {{ name: "{MODEL}" base_path: "/x" version_labels {{ key: "stable" value: 9 }} }} }}'
    )

    assert push.update_model_config(config, serving_dir, MODEL, set_labels={"canary": 2})

    parsed = _config(config)
    other, ours = parsed.model_config_list.config
    assert other.name == "other" and other.base_path == "/models/other"
    assert dict(ours.version_labels) == {"canary": 2}  # stable pointed at a version that is gone
    assert list(ours.model_version_policy.specific.versions) == [2, 3]
    with pytest.raises(PushError, match="cannot label version 5"):
        push.update_model_config(config, serving_dir, MODEL, set_labels={"stable": 5})
    assert not list(serving_dir.glob(".models.config.*[!k]"))  # no temp files left behind


# --------------------------------------------------------------------------------------------
# TF1 frozen graphs and export


def _run_frozen_graph(path: Path, x: np.ndarray) -> np.ndarray:
    """What the frozen graph computes for `x`, in a TF1 Session on the GraphDef itself."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run("probs:0", {"input/x:0": x})


@pytest.mark.e2e
def test_frozen_graph_is_pushed_and_served_over_rest(
    tmp_path: Path, frozen_graph: Path, serve, capsys: pytest.CaptureFixture[str]
):
    import requests

    serving_dir = tmp_path / "serving"
    # Tensor names guessed by inspect (Placeholder in, the one sink out).
    assert push.main([str(frozen_graph), "--serving-dir", str(serving_dir), "--model-name", "legacy",
                      "--server", "embedded"]) == 0
    assert "as version 1 of 'legacy'" in capsys.readouterr().out
    version_dir = serving_dir / "legacy" / "1"
    assert layout.is_complete_saved_model(version_dir)
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], np.float32)
    want = _run_frozen_graph(frozen_graph, x)
    with serve(serving_dir / "legacy", model_name="legacy") as server:
        response = requests.post(f"{server.rest_endpoint}/v1/models/legacy:predict",
                                 json={"inputs": {"input_x": x.tolist()}}, timeout=30)
        assert response.status_code == 200, response.text
        np.testing.assert_allclose(response.json()["outputs"], want, rtol=1e-6)
        metadata = requests.get(f"{server.rest_endpoint}/v1/models/legacy/metadata", timeout=30).json()
        signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert signature["inputs"]["input_x"]["name"] == "input/x:0"
        assert signature["outputs"]["probs"]["name"] == "probs:0"


def test_frozen_graph_with_two_sinks_needs_output_tensors(
    tmp_path: Path, frozen_graph_two_sinks: Path, capsys: pytest.CaptureFixture[str]
):
    serving_dir = tmp_path / "serving"
    common = ["--serving-dir", str(serving_dir), "--model-name", "legacy"]
    assert push.main([str(frozen_graph_two_sinks), *common]) == push.EXIT_REFUSED
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "cannot guess the graph's output tensors (candidates: probs:0, total:0): pass --output-tensors" in line
    assert push.main([str(frozen_graph_two_sinks), *common, "--output-tensors", "nope:0"]) == push.EXIT_REFUSED
    assert "output tensor 'nope:0' is not in the graph" in capsys.readouterr().err
    assert not serving_dir.exists()


def test_frozen_graph_wraps_the_named_tensors(tmp_path: Path, frozen_graph_two_sinks: Path):
    from serving.saved_model import read_signature_defs

    with convert.saved_model_dir(frozen_graph_two_sinks, input_tensors=["input/x"], output_tensors=["probs", "total:0"]) as out:
        (signature,) = read_signature_defs(out).values()
        assert signature.method_name == "tensorflow/serving/predict"
        assert dict(signature.inputs)["input_x"].name == "input/x:0"
        assert {k: v.name for k, v in signature.outputs.items()} == {"probs": "probs:0", "total": "total:0"}
    with pytest.raises(PushError, match="apply to a frozen GraphDef .pb file only"):
        with convert.saved_model_dir(tmp_path, input_tensors=["x:0"]):
            pass


def test_export_writes_the_tf_serving_layout_atomically(tmp_path: Path, half_plus_two_model: Path, capsys):
    import tarfile

    serving_dir = tmp_path / "serving"
    layout.publish(half_plus_two_model, serving_dir, MODEL)
    layout.publish(half_plus_two_model, serving_dir, MODEL)
    out = tmp_path / "out" / "model.tar.gz"
    common = ["export", "--serving-dir", str(serving_dir), "--model-name", MODEL, "--output", str(out)]
    assert push.main(common) == 0
    assert f"exported version 2 of '{MODEL}' to {out}" in capsys.readouterr().out
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert {m.uid for m in tar.getmembers()} == {0}
        extracted = tmp_path / "extracted"
        tar.extractall(extracted)
    source = sorted(p.relative_to(half_plus_two_model).as_posix() for p in half_plus_two_model.rglob("*"))
    assert sorted(n for n in names if n != f"{MODEL}/2") == [f"{MODEL}/2/{p}" for p in source]
    assert f"{MODEL}/2/saved_model.pb" in names and f"{MODEL}/2/variables/variables.index" in names
    assert (extracted / MODEL / "2" / "saved_model.pb").read_bytes() == (half_plus_two_model / "saved_model.pb").read_bytes()
    assert layout.list_versions(extracted / MODEL) == [2]
    assert [p.name for p in out.parent.iterdir()] == ["model.tar.gz"]  # no temporary file left

    assert push.main([*common, "--version", "1"]) == 0
    with tarfile.open(out) as tar:
        assert all(n.startswith(f"{MODEL}/1") for n in tar.getnames())
    before = out.read_bytes()
    assert push.main([*common, "--version", "9"]) == push.EXIT_REFUSED
    assert "version 9 of 'half_plus_two' is not in" in capsys.readouterr().err
    assert out.read_bytes() == before and [p.name for p in out.parent.iterdir()] == ["model.tar.gz"]
