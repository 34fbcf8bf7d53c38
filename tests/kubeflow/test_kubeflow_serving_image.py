"""The embedded server image's contract, without Docker: its entrypoint, started with the very
arguments and config of the Kubernetes manifests (paths moved into tmp_path), serves the models
volume, answers the readiness probe, serves the stable and canary labels, and picks up a version
that `python -m kubeflow publish` (the publish Job's command) puts on the volume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kubeflow.__main__ import main

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "kubeflow" / "manifests" / "base"


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """y = 0.5 x + 2 as a SavedModel with a serving_default signature (TF Serving's half_plus_two)."""
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": self.a * x + self.b}

    path = tmp_path_factory.mktemp("model") / "half_plus_two"
    module = HalfPlusTwo()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def manifest(name: str) -> dict:
    return yaml.safe_load((BASE / name).read_text())


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def server_from_manifests(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen, Path]]:
    """The serving entrypoint run as the Deployment runs it, on the manifests' config."""
    models = tmp_path / "models"
    config_dir = tmp_path / "config"
    models.mkdir()
    config_dir.mkdir()
    for key, text in manifest("models-config.yaml")["data"].items():
        (config_dir / key).write_text(text.replace('"/models/', f'"{models}/'))
    container = manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    args = [arg.replace("=/config/", f"={config_dir}/") for arg in container["args"]]
    ready = tmp_path / "ready.json"
    process_env = {
        **os.environ,
        "MODEL_NAME": env["MODEL_NAME"],
        "MODEL_BASE_PATH": str(models),
        # `python` in the entrypoint is the test's interpreter, as it is the image's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # The image's ports 8500/8501 may be taken on a shared machine: let the OS pick, as the
    # appended arguments override the entrypoint's, exactly as they do for tensorflow/serving.
    process = subprocess.Popen(
        ["sh", str(REPO / "kubeflow" / "serving_entrypoint.sh"), *args, "--pick_unused_ports", f"--ready_file={ready}"],
        env=process_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        yield env["MODEL_NAME"], models, process, ready
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def publish(capsys: pytest.CaptureFixture[str], source: Path, models: Path, model_name: str) -> str:
    code = main(["publish", "--source", str(source), "--serving-dir", str(models), "--model-name", model_name])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.e2e
def test_entrypoint_with_the_manifests_serves_labels_and_hot_loads_a_published_version(
    server_from_manifests, saved_model: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model_name, models, process, ready = server_from_manifests
    # Version 1 reaches the volume the way the publish Job puts it there.
    assert f"published version 1 of '{model_name}'" in publish(capsys, saved_model, models, model_name)

    wait_until(lambda: ready.exists() or process.poll() is not None, 180, "the server to be ready")
    assert process.poll() is None, process.stdout.read()
    rest = f"http://127.0.0.1:{json.loads(ready.read_text())['rest_port']}"
    probe = manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]

    wait_until(lambda: http("GET", rest + probe)[0] == 200, 60, "the readiness probe to pass")

    def versions() -> list[tuple[str, str]]:
        return [(v["version"], v["state"]) for v in http("GET", rest + probe)[1]["model_version_status"]]

    # The status route answers 200 from LOADING on, as TF Serving's does (docs/kubeflow.md).
    wait_until(lambda: versions() == [("1", "AVAILABLE")], 60, "version 1 to be AVAILABLE")
    status, body = http("POST", f"{rest}/v1/models/{model_name}/labels/stable:predict", {"instances": [[1.0], [4.0]]})
    assert (status, body) == (200, {"predictions": [[2.5], [4.0]]})
    status, metrics = http("GET", rest + "/monitoring/prometheus/metrics")
    assert status == 200 and ":tensorflow:serving:" in metrics

    # Version 2, from a Trainer-style artifact (SavedModel under Format-Serving/), is the canary.
    artifact = tmp_path / "Trainer" / "model" / "7"
    (artifact).mkdir(parents=True)
    os.symlink(saved_model, artifact / "Format-Serving")
    assert f"published version 2 of '{model_name}'" in publish(capsys, artifact, models, model_name)

    def canary_answers() -> bool:
        return http("POST", f"{rest}/v1/models/{model_name}/labels/canary:predict", {"instances": [[0.0]]})[0] == 200

    wait_until(canary_answers, 60, "version 2 to load and the canary label to serve it")
    status, body = http("GET", f"{rest}/v1/models/{model_name}/versions/2")
    assert body["model_version_status"][0]["state"] == "AVAILABLE"


def test_publish_refuses_what_is_not_a_saved_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "empty").mkdir()

    code = main(["publish", "--source", str(tmp_path / "empty"), "--serving-dir", str(tmp_path / "models"), "--model-name", "digits"])

    err = capsys.readouterr().err
    assert code == 1
    assert "holds no SavedModel: expected saved_model.pb in it or in Format-Serving/" in err
    assert list((tmp_path / "models").iterdir()) == []


def test_publish_needs_the_mounted_volume(capsys: pytest.CaptureFixture[str], saved_model: Path, tmp_path: Path) -> None:
    code = main(["publish", "--source", str(saved_model), "--serving-dir", str(tmp_path / "absent"), "--model-name", "digits"])

    assert code == 1
    assert "does not exist: expected the mounted models volume" in capsys.readouterr().err
