"""`ModelServer` in this process: start() serves both transports, stop() closes them."""

from __future__ import annotations

import json
import socket
import urllib.request

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.server.flags import build_parser
from serving.server.model_server import ModelServer, StartError


def _args(*argv: str):
    return build_parser().parse_args(["--pick_unused_ports", "--file_system_poll_wait_seconds=1", *argv])


def test_model_server_starts_serves_both_transports_and_stops(half_plus_two_dir, predict_request):
    server = ModelServer(_args("--model_name=half_plus_two", f"--model_base_path={half_plus_two_dir}"))
    server.start()
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.rest_port}/v1/models/half_plus_two:predict",
            data=json.dumps({"instances": [1.0, 2.0]}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"predictions": [2.5, 3.0]}
        grpc_request = predict_request("half_plus_two", x=np.array([4.0], np.float32))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(grpc_request, timeout=30)
        assert list(answer.outputs["y"].float_val) == [4.0]
        assert answer.model_spec.version.value == 1
    finally:
        server.stop()
    for port in (server.rest_port, server.grpc_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    server.stop()  # a second stop is harmless


def test_model_server_refuses_bad_flags_with_exit_status_2(tmp_path):
    with pytest.raises(StartError, match="Both --model_base_path and --model_config_file are empty") as info:
        ModelServer(_args()).start()
    assert info.value.exit_code == 2
