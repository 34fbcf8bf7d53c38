"""`--num_server_processes=N`: N server processes share the gRPC and REST ports; the
supervisor forwards SIGTERM and stops everything when one of them dies."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

pytestmark = pytest.mark.e2e


def _predict_by_pid(url: str, want_pids: set[int], x: float, timeout: float = 30.0) -> dict[int, float]:
    """Predictions on fresh connections until every pid in `want_pids` has answered."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while not want_pids <= seen.keys() and time.monotonic() < deadline:
        # A new connection each time (no session): the kernel picks a process per connection.
        response = requests.post(url, json={"instances": [x]}, timeout=30)
        assert response.status_code == 200, response.text
        seen[int(response.headers["X-Serving-Pid"])] = response.json()["predictions"][0]
    return seen


def test_two_processes_serve_reload_and_stop_on_sigterm(
    tmp_path: Path, half_plus_two_model: Path, half_plus_three_model: Path, serve, still_running
):
    base = tmp_path / "half_plus_two"
    shutil.copytree(half_plus_two_model, base / "1")
    with serve(base, args=["--num_server_processes=2", "--enable_batching"]) as server:
        workers = server.ready["worker_pids"]
        assert server.ready["pid"] == server.process.pid and len(workers) == 2
        assert server.process.pid not in workers and still_running(workers) == workers
        url = f"{server.rest_endpoint}/v1/models/half_plus_two:predict"

        # Both processes answer on the one REST port.
        seen = _predict_by_pid(url, set(workers), 2.0)
        assert set(seen) == set(workers), seen
        assert all(value == 3.0 for value in seen.values())

        # gRPC on the shared port too (one channel reaches one of them).
        with grpc.insecure_channel(server.grpc_endpoint) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "half_plus_two"
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([4.0], np.float32)))
            reply = stub.Predict(request, timeout=30)
        assert tf.make_ndarray(reply.outputs["y"]).tolist() == [4.0]

        # Hot reload happens in every process.
        shutil.copytree(half_plus_three_model, base / "2")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = _predict_by_pid(url, set(workers), 2.0)
            if all(value == 4.0 for value in seen.values()):
                break
            time.sleep(0.3)
        assert set(seen) == set(workers) and all(value == 4.0 for value in seen.values()), seen

        # One SIGTERM to the supervisor stops all of them, cleanly.
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0, server.logs()[-3000:]
        assert not still_running(workers, 30), "server processes still running"
        log = server.logs()
        assert log.count("SERVING grpc=") == 3  # the supervisor's line and the copies' (on stderr)
        assert "stopped (exit statuses [0, 0])" in log


def test_supervisor_stops_everything_when_one_process_dies(tmp_path: Path, half_plus_two_model: Path, serve, still_running):
    base = tmp_path / "half_plus_two"
    shutil.copytree(half_plus_two_model, base / "1")
    with serve(base, args=["--num_server_processes=2"]) as server:
        workers = server.ready["worker_pids"]
        os.kill(workers[0], signal.SIGKILL)
        assert server.process.wait(timeout=30) == 1
        assert not still_running(workers, 30), "server processes still running"
        assert f"server process {workers[0]} exited with -9; stopping the others" in server.logs()


def test_port_taken_is_an_error_before_any_process_starts(tmp_path: Path, half_plus_two_model: Path):
    import socket
    import subprocess
    import sys

    repo_root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    base = tmp_path / "half_plus_two"
    shutil.copytree(half_plus_two_model, base / "1")
    with socket.socket() as taken:
        # Even a socket that allows SO_REUSEPORT sharing must not be joined by accident.
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "serving.server", f"--port={port}", "--rest_api_port=0",
             f"--model_base_path={base}", "--num_server_processes=2"],
            cwd=repo_root, env=env, capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot use port {port} on 127.0.0.1" in result.stderr
    assert "started 2 server processes" not in result.stderr


def test_no_flags_serve_from_one_batching_process_per_usable_core(tmp_path: Path, half_plus_two_model: Path, serve):
    """The defaults that differ from TF Serving's: batching on (no added wait) and one process
    per usable core (at most 4), each with its share of the cores as batch threads."""
    from serving.server.cpus import default_process_count, share_per_process, usable_cpus

    cores = usable_cpus()
    expected = default_process_count(cores)
    base = tmp_path / "half_plus_two"
    shutil.copytree(half_plus_two_model, base / "1")
    with serve(base, timeout=180, server_defaults=True) as server:
        workers = server.ready.get("worker_pids", [server.ready["pid"]])
        assert len(workers) == expected, server.ready
        url = f"{server.rest_endpoint}/v1/models/half_plus_two:predict"
        if expected > 1:
            seen = _predict_by_pid(url, set(workers), 2.0)
            assert set(seen) == set(workers) and all(value == 3.0 for value in seen.values()), seen
        else:
            assert requests.post(url, json={"instances": [2.0]}, timeout=30).json() == {"predictions": [3.0]}
        batching = [line for line in server.logs().splitlines() if "dynamic batching on" in line]
        assert len(batching) == expected, batching
        threads = share_per_process(cores, expected)
        assert all("batch_timeout_micros=0" in line and f"num_batch_threads={threads}," in line for line in batching)
    assert server.process.returncode == 0, server.logs()[-3000:]
