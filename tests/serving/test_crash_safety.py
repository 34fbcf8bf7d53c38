"""Real `kill -9` of `python -m serving.push` mid-copy and of the server mid-load.

A killed push leaves no integer version behind (only a dot-named staging dir, which servers
ignore and the next publish removes), and the next push works; a server killed while it loads
a new version comes back on restart and serves the newest good version.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import layout

REPO = Path(__file__).resolve().parents[2]
# Asset files added to the pushed model, so the publish copy takes long enough to be caught.
SLOW_COPY_FILES = 2000


def _model_states(rest_url: str, name: str) -> dict[int, str]:
    response = requests.get(f"{rest_url}/v1/models/{name}", timeout=10)
    if response.status_code != 200:
        return {}
    return {int(v["version"]): v["state"] for v in response.json()["model_version_status"]}


def _wait_for_state(rest_url: str, name: str, version: int, state: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        states = _model_states(rest_url, name)
        if states.get(version) == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"version {version} of {name} never {state}; last states {states}")


def _predict_y(rest_url: str, name: str, x: float) -> float:
    response = requests.post(f"{rest_url}/v1/models/{name}:predict", json={"instances": [x]}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]


@pytest.mark.e2e
def test_push_killed_mid_copy_leaves_no_version_and_the_next_push_works(
    tmp_path: Path, half_plus_two_model: Path, half_plus_three_model: Path, serve
):
    model = tmp_path / "many_assets"
    shutil.copytree(half_plus_three_model, model)
    (model / "assets").mkdir(exist_ok=True)
    for index in range(SLOW_COPY_FILES):
        (model / "assets" / f"part-{index:05d}.txt").write_bytes(b"x" * 512)
    serving_dir = tmp_path / "serving"
    model_dir = serving_dir / "m"
    layout.publish(half_plus_two_model, serving_dir, "m")
    command = [sys.executable, "-m", "serving.push", str(model), "--serving-dir", str(serving_dir),
               "--model-name", "m", "--server", "embedded"]

    with serve(model_dir, model_name="m") as server:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not any(model_dir.glob(f"{layout.STAGING_PREFIX}*")):
                assert process.poll() is None, process.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "push never started copying"
                time.sleep(0.002)
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL

        # Killed mid-copy: a staging dir is left, no new integer version.
        assert [p.name for p in model_dir.glob(f"{layout.STAGING_PREFIX}*")] == [f"{layout.STAGING_PREFIX}2"]
        assert layout.list_versions(model_dir) == [1]
        time.sleep(2.5)  # two polls of the running server
        assert _model_states(server.rest_endpoint, "m") == {1: "AVAILABLE"}
        assert _predict_y(server.rest_endpoint, "m", 4.0) == 4.0

        # The next push works, clears the leftover, and the server moves to it.
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "as version 2 of 'm'" in done.stdout
        assert layout.list_versions(model_dir) == [1, 2]
        assert not list(model_dir.glob(f"{layout.STAGING_PREFIX}*"))
        assert len(list((model_dir / "2" / "assets").iterdir())) == SLOW_COPY_FILES
        _wait_for_state(server.rest_endpoint, "m", 2, "AVAILABLE")
        assert _predict_y(server.rest_endpoint, "m", 4.0) == 5.0
        assert "not loading" not in server.logs() and "failed" not in server.logs().lower()


@pytest.mark.e2e
def test_server_killed_while_loading_restarts_and_serves_the_newest_good_version(
    tmp_path: Path, half_plus_two_model: Path, slow_model: Path, serve, warmup_writer, predict_request
):
    slow_loading = tmp_path / "slow_loading"
    shutil.copytree(slow_model, slow_loading)
    # One warmup record of 60,000 matmul rounds: the version stays LOADING for seconds.
    warmup_writer(slow_loading, [predict_request("m", n=np.array([60_000], np.int32))])
    serving_dir = tmp_path / "serving"
    model_dir = serving_dir / "m"
    layout.publish(half_plus_two_model, serving_dir, "m")

    with serve(model_dir, model_name="m") as server:
        assert _predict_y(server.rest_endpoint, "m", 2.0) == 3.0
        layout.publish(slow_loading, serving_dir, "m")
        _wait_for_state(server.rest_endpoint, "m", 2, "LOADING")
        # Version 1 keeps serving while version 2 loads ...
        assert _predict_y(server.rest_endpoint, "m", 2.0) == 3.0
        assert _model_states(server.rest_endpoint, "m")[2] == "LOADING"
        # ... and the server dies in the middle of that load.
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        assert server.process.returncode == -signal.SIGKILL

    with serve(model_dir, model_name="m") as restarted:
        # Ready means the initial load is over: the newest complete version, loaded afresh.
        assert _model_states(restarted.rest_endpoint, "m") == {2: "AVAILABLE"}
        with grpc.insecure_channel(restarted.grpc_endpoint) as channel:
            request = predict_request("m", n=np.array([0, 3], np.int32))
            reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert reply.model_spec.version.value == 2
        assert tf.make_ndarray(reply.outputs["y"]).tolist() == [0, 3]
        assert "failed" not in restarted.logs().lower()
