"""Health for orchestrators: REST /healthz and /readyz, and grpc.health.v1 with the flag."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from serving import layout

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _check(server, service: str = ""):
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def _poll(fetch, done, timeout: float):
    """Health follows model events: `fetch()` until `done` says yes or `timeout` s pass; the last answer."""
    deadline = time.monotonic() + timeout
    while not done(seen := fetch()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return seen


def test_not_ready_until_a_version_is_available_then_ready_on_both_protocols(
    tmp_path: Path, half_plus_two_model: Path, broken_model: Path, serve
):
    base = tmp_path / "models" / "m"
    base.mkdir(parents=True)
    with serve(base, model_name="m", args=["--enable_grpc_healthcheck_service"]) as server:
        live = requests.get(f"{server.rest_endpoint}/healthz", timeout=10)
        assert live.status_code == 200 and live.json() == {"status": "alive"}
        ready = requests.get(f"{server.rest_endpoint}/readyz", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["error"] == "not ready: model 'm' has no version yet (none found under its base path)"
        assert _check(server) == NOT_SERVING
        assert _check(server, "tensorflow.serving.PredictionService") == NOT_SERVING

        # A version that fails to load: still not ready, and the reason says why.
        layout.publish(broken_model, tmp_path / "models", "m")
        readyz = functools.partial(requests.get, f"{server.rest_endpoint}/readyz", timeout=10)
        reason = _poll(lambda: readyz().json()["error"], lambda reason: "END" in reason, 60)
        assert reason.startswith("not ready: model 'm' has no AVAILABLE version (version 1 END: ")

        layout.publish(half_plus_two_model, tmp_path / "models", "m")
        ready = _poll(readyz, lambda response: response.status_code == 200, 90)
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert _poll(lambda: _check(server), lambda status: status == SERVING, 30) == SERVING
        assert _check(server, "tensorflow.serving.PredictionService") == SERVING
        # Unknown services are NOT_FOUND, as the standard servicer answers.
        with pytest.raises(grpc.RpcError) as raised:
            _check(server, "no.such.Service")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_health_is_off_without_the_flag_and_rest_health_is_always_on(half_plus_two_server):
    with pytest.raises(grpc.RpcError) as raised:
        _check(half_plus_two_server)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert requests.get(f"{half_plus_two_server.rest_endpoint}/readyz", timeout=10).json() == {"status": "ready"}
    assert requests.head(f"{half_plus_two_server.rest_endpoint}/healthz", timeout=10).status_code == 200
