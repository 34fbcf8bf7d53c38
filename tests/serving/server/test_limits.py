"""Malformed and oversized requests, deadlines and hostile names: 4xx answers, never a crash."""

from __future__ import annotations

import http.client
import json
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc


def raw_post(server, path: str, body: bytes, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


GARBAGE = [
    b"{",
    b"\xff\xfe\x00garbage",
    b"[]",
    b"null",
    b'{"instances": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}',
    b"[" * 100000,
    b'{"instances": [1e999999]}',
    b'{"instances": [true, false]}',
    b'{"instances": [{"b64": 5}]}',
    b'{"instances": [null]}',
    b'{"inputs": {"x": [1.0]}, "signature_name": 7}',
    b'{"instances": [1.0], "signature_name": "two_inputs"}',
    b'{"instances": [{"a": [1, 2, 3], "b": 1}], "signature_name": "two_inputs"}',
    b'{"instances": [{"a": [1, 2], "b": [1, 2]}], "signature_name": "two_inputs"}',
    b'{"instances": [{"a": [1, 2], "b": 1}, {"a": [1, 2]}], "signature_name": "two_inputs"}',
    b'{"examples": "x"}',
]


@pytest.mark.parametrize("body", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_predict_bodies_get_400(half_plus_two_server, body):
    status, raw = raw_post(half_plus_two_server, "/v1/models/half_plus_two:predict", body)
    assert 400 <= status < 500, raw[:300]
    assert "error" in json.loads(raw)
    assert half_plus_two_server.is_alive()


@pytest.mark.parametrize("api", ["classify", "regress"])
@pytest.mark.parametrize(
    "body",
    [b"{}", b'{"examples": [{"x": [[1]]}]}', b'{"examples": [{"x": {"y": 1}}]}', b'{"examples": [1]}',
     b'{"signature_name": "regress_x_to_y", "examples": [{"x": "a"}]}'],
)
def test_garbage_classify_regress_bodies_get_400(half_plus_two_server, api, body):
    status, raw = raw_post(half_plus_two_server, f"/v1/models/half_plus_two:{api}", body)
    assert 400 <= status < 500, raw[:300]
    assert half_plus_two_server.is_alive()


def test_broken_http_does_not_hurt_the_server(half_plus_two_server):
    with socket.create_connection(("127.0.0.1", half_plus_two_server.rest_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{\"inst")
    with socket.create_connection(("127.0.0.1", half_plus_two_server.rest_port), timeout=10) as sock:
        sock.sendall(b"\x00\x01\x02 not http at all\r\n\r\n")
        sock.recv(1024)
    with socket.create_connection(("127.0.0.1", half_plus_two_server.rest_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nnotgz")
        response = sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 4"), response[:200]
    status, raw = raw_post(half_plus_two_server, "/v1/models/half_plus_two:predict", b'{"instances": [2.0]}')
    assert (status, json.loads(raw)) == (200, {"predictions": [3.0]})


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..%2F..%2Fetc%2Fpasswd:predict",
        "/v1/models/%2E%2E:predict",
        "/v1/models/half_plus_two/labels/..%2F..%2F1:predict",
        "/v1/models/half_plus_two/../half_plus_two:predict",
    ],
)
def test_names_and_labels_cannot_reach_outside_the_base_path(half_plus_two_server, path):
    status, raw = raw_post(half_plus_two_server, path, b'{"instances": [1.0]}')
    assert status in (400, 404), raw
    assert half_plus_two_server.is_alive()


def test_body_over_the_limit_gets_413_and_server_lives_on(serve, half_plus_two_dir):
    with serve(half_plus_two_dir, args=["--rest_api_max_body_bytes=1000"]) as server:
        body = json.dumps({"instances": [1.0] * 1000}).encode()
        status, raw = raw_post(server, "/v1/models/half_plus_two:predict", body)
        assert status == 413
        assert "larger than the server's limit of 1000 bytes" in json.loads(raw)["error"]
        status, raw = raw_post(server, "/v1/models/half_plus_two:predict", b'{"instances": [1.0]}')
        assert (status, json.loads(raw)) == (200, {"predictions": [2.5]})


def test_grpc_message_over_the_limit_is_resource_exhausted(serve, half_plus_two_dir, predict_request):
    with serve(half_plus_two_dir, args=["--grpc_max_message_bytes=4096"]) as server:
        with grpc.insecure_channel(server.grpc_endpoint) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_request("half_plus_two", x=np.ones(10000, np.float32))
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(request, 10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones(3, np.float32)))
            assert list(stub.Predict(request, 10).outputs["y"].float_val) == [2.5, 2.5, 2.5]


def test_large_grpc_messages_are_allowed_by_default(half_plus_two_server, predict_request):
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(half_plus_two_server.grpc_endpoint, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("half_plus_two", x=np.ones(2_000_000, np.float32)), 60)  # 8 MB
        assert len(response.outputs["y"].float_val) == 2_000_000


@pytest.mark.parametrize("batching", [[], ["--enable_batching"]], ids=["direct", "batching"])
def test_rest_deadline_gives_504(serve, slow_model_dir, batching):
    import time

    args = ["--rest_api_timeout_in_ms=300", "--rest_api_workers=1", *batching]
    with serve(slow_model_dir, model_name="slow_model", args=args) as server:
        status, raw = raw_post(server, "/v1/models/slow_model:predict", b'{"instances": [30000]}')
        assert (status, json.loads(raw)) == (504, {"error": "Deadline Exceeded"})
        # The only worker is still busy with that call; status does not wait for it.
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
        connection.request("GET", "/v1/models/slow_model")
        assert connection.getresponse().status == 200
        connection.close()
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, raw = raw_post(server, "/v1/models/slow_model:predict", b'{"instances": [0]}')
            if status == 200:
                break
            assert status == 504
            time.sleep(0.5)
        assert (status, json.loads(raw)) == (200, {"predictions": [0]})


def test_gzip_bomb_is_cut_at_the_body_limit(serve, half_plus_two_dir):
    import gzip

    with serve(half_plus_two_dir, args=["--rest_api_max_body_bytes=100000"]) as server:
        bomb = gzip.compress(b'{"instances": [' + b"0," * 5_000_000 + b"0]}")
        assert len(bomb) < 100000
        status, raw = raw_post(
            server, "/v1/models/half_plus_two:predict", bomb, {"Content-Encoding": "gzip"}
        )
        assert status == 413, raw[:200]
        assert server.is_alive()
