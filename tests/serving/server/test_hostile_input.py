"""Property-based hostile input over REST and gRPC of one running `python -m serving.server`.

Hypothesis draws random JSON, wrong shapes and dtypes, invalid b64, odd paths and names, random
TensorProtos and raw bytes; slow and truncated clients are played by hand. Every REST answer is
200 (the input happened to be valid) or a 4xx whose JSON body has an `error` string, never a
5xx; every gRPC error is a client-side status (INVALID_ARGUMENT, NOT_FOUND, ...), never
INTERNAL or UNKNOWN from our code; and the server is alive and answers a good request after each.
Example counts keep the module near a minute on a 2-core machine.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from pathlib import Path

import grpc
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

MAX_BODY = 1 << 20
HOSTILE = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
CLIENT_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNIMPLEMENTED,
}

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
# Keys the server reads, so random bodies reach the conversion code, not just the first check.
request_keys = st.sampled_from(["instances", "inputs", "signature_name", "examples", "context", "b64", "x", "a", "b"])
request_bodies = st.dictionaries(request_keys | st.text(max_size=8), json_values, max_size=4)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory, serve, half_plus_two_model: Path, bytes_model: Path):
    import shutil

    base = tmp_path_factory.mktemp("hostile")
    entries = []
    for name, model in (("half_plus_two", half_plus_two_model), ("bytes_model", bytes_model)):
        shutil.copytree(model, base / name / "1")
        entries.append(f'config {{ name: "{name}" base_path: "{base / name}" model_platform: "tensorflow" }}')
    config = base / "models.config"
    config.write_text("model_config_list {\n  " + "\n  ".join(entries) + "\n}\n")
    with serve(config_file=config, args=[f"--rest_api_max_body_bytes={MAX_BODY}"]) as server:
        yield server


def _still_serving(server) -> None:
    assert server.is_alive(), server.logs()[-3000:]
    response = requests.post(
        f"{server.rest_endpoint}/v1/models/half_plus_two:predict", json={"instances": [2.0]}, timeout=30
    )
    assert response.status_code == 200 and response.json() == {"predictions": [3.0]}


def _assert_rest_answer(response: requests.Response) -> None:
    assert response.status_code == 200 or 400 <= response.status_code < 500, (
        response.status_code, response.text[:500])
    if response.status_code != 200:
        error = response.json()["error"]
        assert isinstance(error, str) and error, response.text[:500]


def _post(server, path: str, body: bytes) -> requests.Response:
    return requests.post(f"{server.rest_endpoint}{path}", data=body, timeout=30,
                         headers={"Content-Type": "application/json"})


# ---- REST ------------------------------------------------------------------------------------


@HOSTILE
@given(body=request_bodies, api=st.sampled_from([":predict", ":classify", ":regress"]),
       signature=st.sampled_from([None, "serving_default", "two_inputs", "classify_x_to_y", "regress_x_to_y"]))
def test_random_json_gets_200_or_a_4xx_json_error(hostile_server, body, api, signature):
    if signature is not None:
        body = {**body, "signature_name": signature}
    _assert_rest_answer(_post(hostile_server, f"/v1/models/half_plus_two{api}", json.dumps(body).encode()))


shapes = st.lists(st.integers(0, 4), min_size=0, max_size=4)
scalars_of_any_type = st.one_of(st.floats(), st.integers(-(2**64), 2**64), st.booleans(), st.text(max_size=5), st.none())


def _nest(shape: list[int], leaf):
    return leaf if not shape else [_nest(shape[1:], leaf) for _ in range(shape[0])]


@HOSTILE
@given(shape=shapes, leaf=scalars_of_any_type, columnar=st.booleans(),
       signature=st.sampled_from(["serving_default", "two_inputs"]), name=st.sampled_from(["x", "a", "b", "y"]))
def test_wrong_shapes_and_dtypes_get_4xx(hostile_server, shape, leaf, columnar, signature, name):
    tensor = _nest(shape, leaf)
    if columnar:
        body = {"signature_name": signature, "inputs": {name: tensor}}
    else:
        body = {"signature_name": signature, "instances": tensor if signature == "serving_default" else [{name: tensor}]}
    _assert_rest_answer(_post(hostile_server, "/v1/models/half_plus_two:predict", json.dumps(body, allow_nan=True).encode()))


@HOSTILE
@given(payload=st.text(max_size=40) | st.binary(max_size=30).map(lambda b: b.hex()) | json_scalars)
@example(payload="00000_")  # web-safe alphabet, unpadded: served (once failed the round-trip check)
@example(payload="not base64!")
def test_invalid_b64_gets_400(hostile_server, payload):
    body = {"instances": [{"b64": payload}]}
    response = _post(hostile_server, "/v1/models/bytes_model:predict", json.dumps(body).encode())
    _assert_rest_answer(response)
    if response.status_code == 200:  # valid (padding optional, as absl's decoder): it round-trips
        import base64

        echoed = response.json()["predictions"][0]["echo_bytes"]["b64"]
        # absl::Base64Unescape also takes the web-safe alphabet ('-' and '_' for '+' and '/'), so the
        # expected bytes are the payload read in that alphabet when it uses it (hypothesis found '00000_').
        standard = payload.translate(str.maketrans("-_", "+/"))
        assert base64.b64decode(echoed) == base64.b64decode(standard + "=" * (-len(standard) % 4))


segments = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


@HOSTILE
@given(parts=st.lists(segments, min_size=1, max_size=5), method=st.sampled_from(["GET", "POST"]),
       suffix=st.sampled_from(["", ":predict", ":classify", "/metadata", ":bogus", "/versions/x"]))
def test_odd_paths_and_names_get_4xx_json(hostile_server, parts, method, suffix):
    path = "/v1/models/" + "/".join(urllib.parse.quote(p, safe="") for p in parts) + suffix
    response = requests.request(method, f"{hostile_server.rest_endpoint}{path}", data=b"{}", timeout=30)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:300])
    assert response.json()["error"]


def test_huge_and_deeply_nested_bodies_get_4xx(hostile_server):
    for body in (b"[" * 200_000 + b"]" * 200_000,
                 b'{"instances": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}",
                 b'{"instances": [' + b"1.0," * (MAX_BODY // 4) + b"1.0]}"):
        _assert_rest_answer(_post(hostile_server, "/v1/models/half_plus_two:predict", body))
    response = _post(hostile_server, "/v1/models/half_plus_two:predict", b"[" * (MAX_BODY + 1))
    assert response.status_code == 413 and "rest_api_max_body_bytes" in response.json()["error"]
    _still_serving(hostile_server)


def _raw_socket(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=10)
    sock.settimeout(10)
    return sock


def test_slow_and_truncated_clients_do_not_stop_the_server(hostile_server):
    """Stalled clients hold their own connections only: others are answered meanwhile; clients
    that vanish mid-body leave nothing behind. Bounded: each socket waits at most 10 s."""
    stalled = []
    for _ in range(20):  # headers started, never finished
        sock = _raw_socket(hostile_server)
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Le")
        stalled.append(sock)
    for _ in range(20):  # a body promised, a few bytes sent, then silence
        sock = _raw_socket(hostile_server)
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 100000\r\n\r\n{\"instances\": [")
        stalled.append(sock)
    begin = time.monotonic()
    _still_serving(hostile_server)
    for _ in range(20):  # truncated: the body is cut short and the socket closed
        sock = _raw_socket(hostile_server)
        sock.sendall(b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 5000\r\n\r\n{\"instances\": [1.0, 2")
        sock.close()
    for _ in range(10):  # a byte at a time, slowly, then complete: answered correctly
        sock = _raw_socket(hostile_server)
        request = (b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n"
                   b"Connection: close\r\n\r\n{\"instances\": [2.0]}")
        for index in range(0, len(request), 16):
            sock.sendall(request[index:index + 16])
            time.sleep(0.005)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"predictions": [3.0]}'), answer[-200:]
    for sock in stalled:
        sock.close()
    _still_serving(hostile_server)
    assert time.monotonic() - begin < 120  # bounded test, not a speed goal


# ---- gRPC ------------------------------------------------------------------------------------

dtypes = st.sampled_from([t for t in types_pb2.DataType.values() if t != types_pb2.DT_INVALID] + [999])
# What a TensorProto's typed value fields may hold, per field.
typed_values = {"float_val": st.floats(width=32), "int_val": st.integers(-(2**31), 2**31 - 1),
                "string_val": st.binary(max_size=8), "bool_val": st.booleans()}


@st.composite
def tensor_protos(draw) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(dtype=draw(dtypes))
    # Small dims, or dims whose product is far beyond any request (a broadcast must not allocate it).
    for size in draw(st.lists(st.integers(-2, 6) | st.sampled_from([2**31, 2**40, 2**62]), max_size=4)):
        tensor.tensor_shape.dim.append(tensor_shape_pb2.TensorShapeProto.Dim(size=size))
    tensor.tensor_shape.unknown_rank = draw(st.booleans()) and draw(st.booleans())
    which = draw(st.sampled_from(["tensor_content", *typed_values, "none"]))
    if which == "tensor_content":
        tensor.tensor_content = draw(st.binary(max_size=64))
    elif which in typed_values:
        getattr(tensor, which).extend(draw(st.lists(typed_values[which], max_size=8)))
    return tensor


@pytest.fixture(scope="module")
def grpc_channel(hostile_server):
    with grpc.insecure_channel(hostile_server.grpc_endpoint) as channel:
        yield channel


@HOSTILE
@given(model=st.sampled_from(["half_plus_two", "bytes_model"]) | st.text(max_size=10),
       signature=st.sampled_from(["", "serving_default", "two_inputs", "classify_x_to_y"]) | st.text(max_size=6),
       inputs=st.dictionaries(st.sampled_from(["x", "a", "b", "image_bytes"]) | st.text(max_size=4),
                              tensor_protos(), max_size=3),
       version=st.none() | st.integers(-5, 2**62), label=st.none() | st.text(max_size=6))
def test_random_predict_requests_get_client_statuses(hostile_server, grpc_channel, model, signature, inputs,
                                                     version, label):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    elif label is not None:
        request.model_spec.version_label = label
    for key, tensor in inputs.items():
        request.inputs[key].CopyFrom(tensor)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc_channel)
    try:
        stub.Predict(request, timeout=30)
    except grpc.RpcError as error:
        assert error.code() in CLIENT_ERRORS, (error.code(), error.details(), request)
        assert error.details()


@HOSTILE
@given(payload=st.binary(max_size=200), method=st.sampled_from(["Predict", "Classify", "Regress",
                                                                 "GetModelMetadata", "MultiInference"]))
def test_random_bytes_as_a_grpc_message_leave_the_server_up(hostile_server, grpc_channel, payload, method):
    call = grpc_channel.unary_unary(f"/tensorflow.serving.PredictionService/{method}",
                                    request_serializer=None, response_deserializer=None)
    try:
        call(payload, timeout=30)
    except grpc.RpcError as error:
        # Bytes that do not parse are INVALID_ARGUMENT naming the method; bytes that parse
        # reach the core and get its client status.
        assert error.code() in CLIENT_ERRORS, (error.code(), error.details())
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT and "Malformed request" in error.details():
            assert f"/tensorflow.serving.PredictionService/{method}" in error.details()


def test_server_survived_the_module(hostile_server):
    _still_serving(hostile_server)
    log = hostile_server.logs()
    assert "Traceback" not in log, log[-4000:]
