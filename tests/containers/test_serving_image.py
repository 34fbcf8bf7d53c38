"""The serving image as a drop-in for tensorflow/serving, run by a real Docker engine.

The seeds' commands, with only the image changed and the host port ephemeral:
  docker run -p 8501:8501 --mount type=bind,source=$PWD/runs/serving/digits,target=/models/digits \
      -e MODEL_NAME=digits -t IMAGE
and the same with -p 8500:8500, called from the host over REST and gRPC, with memory and CPU
limits; a version copied into the mounted directory while the container runs is hot-loaded, and
`docker stop` (SIGTERM) ends the server cleanly.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from container_models import FEATURES, expected_scores, save_scores_model
from container_helpers import (
    LABEL,
    PIPELINE_IMAGE,
    SERVING_IMAGE,
    docker,
    host_port,
    http,
    inspect,
    wait_until,
)

LIMITS = ("--memory", "1g", "--cpus", "1")


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("saved_models")
    return {version: save_scores_model(root / str(version), version) for version in (1, 2)}


@pytest.fixture
def serving_digits(tmp_path: Path, saved_models: dict[int, Path]) -> Path:
    """runs/serving/digits as the Pusher leaves it: version 1 only."""
    digits = tmp_path / "runs" / "serving" / "digits"
    digits.mkdir(parents=True)
    shutil.copytree(saved_models[1], digits / "1")
    return digits


def run_seed_command(digits: Path, port: int, containers: list[str], *extra_args: str, user: str = "") -> str:
    """The seed's `docker run`, detached, host port ephemeral on loopback, with resource limits."""
    name = f"tsk-serving-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    docker(
        "run", "-d", "--name", name, "--label", LABEL, *LIMITS, *(["--user", user] if user else []),
        "-p", f"127.0.0.1::{port}",
        "--mount", f"type=bind,source={digits},target=/models/digits",
        "-e", "MODEL_NAME=digits", "-t", SERVING_IMAGE, *extra_args,
    )
    return name


def stop_cleanly(name: str) -> float:
    """`docker stop` (SIGTERM, SIGKILL only after 10 s): the server must exit 0 on SIGTERM."""
    started = time.monotonic()
    docker("stop", "-t", "10", name)
    seconds = time.monotonic() - started
    state = inspect(name)["State"]
    logs = docker("logs", name).stdout
    assert (state["ExitCode"], state["OOMKilled"]) == (0, False), f"unclean exit {state}; logs:\n{logs[-2000:]}"
    print(f"docker stop took {seconds:.1f} s")
    return seconds


def version_states(url: str) -> dict[str, str]:
    status, body = http("GET", url, timeout=3)
    if status != 200:
        return {}
    return {item["version"]: item["state"] for item in body.get("model_version_status", [])}


def test_serving_image_hygiene() -> None:
    config = inspect(SERVING_IMAGE)["Config"]

    assert config["User"] == "10001:10001"
    assert set(config["ExposedPorts"]) == {"8500/tcp", "8501/tcp"}
    assert "MODEL_BASE_PATH=/models" in config["Env"] and "MODEL_NAME=model" in config["Env"]
    assert config["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    # Ready only when every configured model has an AVAILABLE version (not merely "process up").
    assert "127.0.0.1:8501/readyz" in " ".join(config["Healthcheck"]["Test"])


@pytest.mark.parametrize("image", [SERVING_IMAGE, PIPELINE_IMAGE])
def test_no_compiler_is_left(image: str) -> None:
    found = docker(
        "run", "--rm", "--label", LABEL, "--entrypoint", "sh", image, "-c",
        "for tool in gcc g++ cc c++ clang make; do command -v $tool; done; true",
    ).stdout.split()

    assert found == []


@pytest.mark.e2e
def test_rest_seed_command_serves_hot_loads_and_stops(serving_digits: Path, saved_models: dict[int, Path],
                                                      containers: list[str]) -> None:
    name = run_seed_command(serving_digits, 8501, containers)
    base = f"http://127.0.0.1:{host_port(name, 8501)}/v1/models/digits"
    wait_until(lambda: version_states(base) == {"1": "AVAILABLE"}, 120, f"version 1 AVAILABLE at {base}")
    rows = np.random.default_rng(0).uniform(0, 16, size=(3, FEATURES)).astype(np.float32)

    status, body = http("POST", f"{base}:predict", {"instances": rows.tolist()})

    assert status == 200, body
    np.testing.assert_allclose(np.array(body["predictions"]), expected_scores(1, rows), rtol=1e-4, atol=1e-3)

    # Hot load: copied aside, renamed into place (as the Pusher publishes), while it serves.
    staging = serving_digits / ".staging-2"
    shutil.copytree(saved_models[2], staging)
    staging.rename(serving_digits / "2")
    wait_until(lambda: version_states(base).get("2") == "AVAILABLE", 120, "version 2 hot-loaded")

    status, body = http("POST", f"{base}/versions/2:predict", {"instances": rows.tolist()})
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["predictions"]), expected_scores(2, rows), rtol=1e-4, atol=1e-3)
    status, body = http("POST", f"{base}:predict", {"instances": rows.tolist()})
    np.testing.assert_allclose(np.array(body["predictions"]), expected_scores(2, rows), rtol=1e-4, atol=1e-3)

    # The image's HEALTHCHECK runs inside the container, as the non-root user.
    wait_until(lambda: inspect(name)["State"]["Health"]["Status"] == "healthy", 90, "the HEALTHCHECK to pass")
    assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
    stop_cleanly(name)


@pytest.mark.e2e
def test_grpc_seed_command_with_appended_flags(serving_digits: Path, containers: list[str]) -> None:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    # Extra arguments are appended to the server's flags, as in tensorflow/serving: here REST off.
    name = run_seed_command(serving_digits, 8500, containers, "--rest_api_port=0")
    channel = grpc.insecure_channel(f"127.0.0.1:{host_port(name, 8500)}")
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "digits"

    def available() -> bool:
        try:
            reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, timeout=3)
        except grpc.RpcError:
            return False
        return [(s.version, s.state) for s in reply.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        ]

    wait_until(available, 120, "version 1 AVAILABLE over gRPC")
    rows = np.random.default_rng(1).uniform(0, 16, size=(2, FEATURES)).astype(np.float32)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    request.model_spec.signature_name = "serving_default"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(rows))

    reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=10)

    assert reply.model_spec.version.value == 1
    np.testing.assert_allclose(tf.make_ndarray(reply.outputs["scores"]), expected_scores(1, rows), rtol=1e-4, atol=1e-3)
    channel.close()
    assert "rest=disabled" in docker("logs", name).stdout
    stop_cleanly(name)


@pytest.mark.e2e
def test_models_only_their_owner_can_read_are_served_with_docker_run_user(serving_digits: Path,
                                                                       containers: list[str]) -> None:
    # A restrictive umask leaves files the image's user (10001) cannot read; `--user` of the owner fixes it.
    owner = 12345
    for path in [serving_digits, *serving_digits.rglob("*")]:
        os.chown(path, owner, owner)
        path.chmod(0o700 if path.is_dir() else 0o600)

    name = run_seed_command(serving_digits, 8501, containers, user=f"{owner}:{owner}")
    base = f"http://127.0.0.1:{host_port(name, 8501)}/v1/models/digits"

    wait_until(lambda: version_states(base) == {"1": "AVAILABLE"}, 120, f"version 1 AVAILABLE at {base}")
    stop_cleanly(name)
