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

from serving import layout, push
from serving.client import ServingClient

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
        stable = ServingClient(server.rest_url, "rest", MODEL, label="stable")
        _wait_for(stable, 1)
        assert stable.predict({"x": np.array([4.0], np.float32)})["y"].tolist() == [4.0]

        assert push.main([str(half_plus_two_model), *common, "--label", "canary"]) == 0
        assert f"as version 2 of '{MODEL}'" in capsys.readouterr().out
        assert layout.list_versions(serving_dir / MODEL) == [1, 2]
        entry = _config(config).model_config_list.config[0]
        assert dict(entry.version_labels) == {"stable": 1, "canary": 2}
        assert list(entry.model_version_policy.specific.versions) == [1, 2]

        # The running server (same process) loads version 2 and the canary label from the config.
        canary = ServingClient(server.grpc_target, "grpc", MODEL, label="canary")
        _wait_for(canary, 2)
        assert canary.predict({"x": np.array([2.0], np.float32)})["y"].tolist() == [3.0]
        assert [s.version for s in stable.status()] == [1]

        # Roll the canary back by pointing it at version 1.
        assert push.main(["rollback", "--serving-dir", str(serving_dir), "--model-name", MODEL,
                          "--to", "1", "--label", "canary"]) == 0
        assert "now points at version 1" in capsys.readouterr().out
        _wait_for(canary, 1)
        assert server.alive()


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
    with pytest.raises(push.PushError, match="cannot label version 5"):
        push.update_model_config(config, serving_dir, MODEL, set_labels={"stable": 5})
    assert not list(serving_dir.glob(".models.config.*[!k]"))  # no temp files left behind
