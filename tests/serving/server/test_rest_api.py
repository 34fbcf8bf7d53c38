"""TF Serving's documented REST request/response pairs against a real server process."""

from __future__ import annotations

import base64
import gzip
import http.client
import json

import pytest


def call(server, method: str, path: str, body=None, headers=None):
    """One raw HTTP request (seed style); returns (status, content type, parsed JSON or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=30)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    content_type = response.getheader("Content-Type", "")
    try:
        data = json.loads(raw)
    except ValueError:
        data = raw.decode(errors="replace")
    return response.status, content_type, data


def test_model_status_all_versions(half_plus_two_server):
    status, content_type, data = call(half_plus_two_server, "GET", "/v1/models/half_plus_two")
    assert status == 200 and content_type.startswith("application/json")
    assert data == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_model_status_one_version_and_unknowns(half_plus_two_server):
    status, _, data = call(half_plus_two_server, "GET", "/v1/models/half_plus_two/versions/1")
    assert status == 200 and data["model_version_status"][0]["version"] == "1"
    status, _, data = call(half_plus_two_server, "GET", "/v1/models/half_plus_two/versions/7")
    assert (status, data) == (404, {"error": "Could not find version 7 of model half_plus_two"})
    status, _, data = call(half_plus_two_server, "GET", "/v1/models/half")
    assert (status, data) == (404, {"error": "Could not find any versions of model half"})
    status, _, data = call(half_plus_two_server, "GET", "/v1/models")
    assert (status, data) == (400, {"error": "Missing model name in request."})
    status, _, data = call(half_plus_two_server, "GET", "/v1/models/half_plus_two/labels/stable")
    assert (status, data) == (400, {"error": "Unrecognized servable version label: stable"})


def test_metadata_is_the_signature_def_map(half_plus_two_server):
    status, _, data = call(half_plus_two_server, "GET", "/v1/models/half_plus_two/metadata")
    assert status == 200
    assert data["model_spec"] == {"name": "half_plus_two", "signature_name": "", "version": "1"}
    signatures = data["metadata"]["signature_def"]["signature_def"]
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert signatures["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    assert signatures["regress_x_to_y"]["method_name"] == "tensorflow/serving/regress"
    status, _, data = call(half_plus_two_server, "GET", "/v1/models/half/metadata")
    assert (status, data) == (404, {"error": "Servable not found for request: Latest(half)"})


def test_predict_row_and_columnar(half_plus_two_server):
    path = "/v1/models/half_plus_two:predict"
    status, _, data = call(half_plus_two_server, "POST", path, {"instances": [1.0, 2.0, 5.0]})
    assert (status, data) == (200, {"predictions": [2.5, 3.0, 4.5]})
    status, _, data = call(half_plus_two_server, "POST", path, {"inputs": [1.0, 2.0, 5.0]})
    assert (status, data) == (200, {"outputs": [2.5, 3.0, 4.5]})
    status, _, data = call(
        half_plus_two_server, "POST", "/v1/models/half_plus_two/versions/1:predict", {"instances": [0]}
    )
    assert (status, data) == (200, {"predictions": [2.0]})


def test_predict_whole_numbers_keep_their_decimal_point(half_plus_two_server):
    connection = http.client.HTTPConnection("127.0.0.1", half_plus_two_server.rest_port, timeout=30)
    connection.request("POST", "/v1/models/half_plus_two:predict", body=b'{"instances": [2, 1.9999996e7, 2e7]}')
    raw = connection.getresponse().read()
    connection.close()
    assert raw == b'{"predictions": [3.0, 1e+07, 10000002.0]}'


def test_predict_named_inputs_multiple_outputs(half_plus_two_server):
    path = "/v1/models/half_plus_two:predict"
    body = {"signature_name": "two_inputs", "instances": [{"a": [1, 2], "b": 3}, {"a": [0.5, 0.25], "b": 0}]}
    status, _, data = call(half_plus_two_server, "POST", path, body)
    assert status == 200
    assert data == {
        "predictions": [{"doubled": [2.0, 4.0], "sum": 6.0}, {"doubled": [1.0, 0.5], "sum": 0.75}]
    }
    body = {"signature_name": "two_inputs", "inputs": {"a": [[1, 2]], "b": [3]}}
    status, _, data = call(half_plus_two_server, "POST", path, body)
    assert (status, data) == (200, {"outputs": {"doubled": [[2.0, 4.0]], "sum": [6.0]}})


def test_predict_nan_and_infinity(half_plus_two_server):
    status, _, data = call(
        half_plus_two_server,
        "POST",
        "/v1/models/half_plus_two:predict",
        '{"instances": [NaN, Infinity, -Infinity]}',
    )
    assert status == 200
    values = data["predictions"]
    assert values[0] != values[0] and values[1] == float("inf") and values[2] == float("-inf")


def test_classify_and_regress(half_plus_two_server):
    status, _, data = call(
        half_plus_two_server,
        "POST",
        "/v1/models/half_plus_two:classify",
        {"signature_name": "classify_x_to_y", "examples": [{"x": 3.0}, {"x": 1.0}]},
    )
    assert (status, data) == (200, {"results": [[["", 3.5]], [["", 2.5]]]})
    status, _, data = call(
        half_plus_two_server,
        "POST",
        "/v1/models/half_plus_two:regress",
        {"signature_name": "regress_x_to_y2", "context": {"x": 1.0}, "examples": [{}, {"x": 4.0}]},
    )
    assert (status, data) == (200, {"results": [3.5, 5.0]})


def test_classify_on_a_predict_signature_is_rejected(half_plus_two_server):
    status, _, data = call(
        half_plus_two_server, "POST", "/v1/models/half_plus_two:classify", {"examples": [{"x": 1.0}]}
    )
    assert status == 400
    assert data == {
        "error": "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    }


@pytest.mark.parametrize(
    "method, path, body, code, message",
    [
        ("POST", "/v1/models/half:predict", {"instances": [1]}, 404, "Servable not found for request: Latest(half)"),
        ("POST", "/v1/models/half_plus_two/versions/9:predict", {"instances": [1]}, 404,
         "Servable not found for request: Specific(half_plus_two, 9)"),
        ("POST", "/v1/models/half_plus_two/labels/canary:predict", {"instances": [1]}, 400,
         "Unrecognized servable version label: canary"),
        ("POST", "/v1/models/half_plus_two:predict", {"signature_name": "nope", "instances": [1]}, 400,
         "Failed to get input map for signature: nope"),
        ("POST", "/v1/models/half_plus_two:predict", {"instances": [[1.0]]}, 400, "has shape [1, 1]"),
        ("POST", "/v1/models/half_plus_two:predict", {"instances": ["a"]}, 400, "is not of expected type: float"),
        ("POST", "/v1/models/half_plus_two:predict", "not json", 400, "JSON Parse error"),
        ("POST", "/v1/models/half_plus_two:predict", "", 400, "JSON Parse error: The document is empty"),
        ("POST", "/v1/models/half_plus_two:explain", {"instances": [1]}, 400,
         "Malformed request: POST /v1/models/half_plus_two:explain"),
        ("PUT", "/v1/models/half_plus_two", None, 400, "Malformed request: PUT /v1/models/half_plus_two"),
        ("GET", "/v1/models/half_plus_two/versions/abc", None, 400, "Malformed request"),
        ("POST", "/v1/models/half_plus_two:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 1}]},
         400, "Data types don't match"),
    ],
)
def test_error_bodies_and_codes(half_plus_two_server, method, path, body, code, message):
    status, content_type, data = call(half_plus_two_server, method, path, body)
    assert status == code
    assert content_type.startswith("application/json")
    assert message in data["error"]


def test_paths_outside_v1_are_plain_404(half_plus_two_server):
    status, _, data = call(half_plus_two_server, "GET", "/models/half_plus_two")
    assert status == 404 and not isinstance(data, dict)


def test_api_paths_are_case_insensitive_and_names_url_decoded(half_plus_two_server):
    status, _, data = call(half_plus_two_server, "POST", "/V1/MODELS/half%5Fplus%5Ftwo:PREDICT", {"instances": [1]})
    assert (status, data) == (200, {"predictions": [2.5]})


def test_gzip_request_body(half_plus_two_server):
    body = gzip.compress(json.dumps({"instances": [4.0]}).encode())
    status, _, data = call(
        half_plus_two_server,
        "POST",
        "/v1/models/half_plus_two:predict",
        body,
        {"Content-Encoding": "gzip"},
    )
    assert (status, data) == (200, {"predictions": [4.0]})


def test_bytes_model_b64_in_and_out(serve, bytes_model_dir):
    raw = b"\x89PNG\r\n\x1a\n\x00\xff"
    encoded = base64.b64encode(raw).decode()
    with serve(bytes_model_dir, model_name="bytes_model") as server:
        status, _, data = call(
            server, "POST", "/v1/models/bytes_model:predict", {"instances": [{"b64": encoded}, "hi"]}
        )
        assert status == 200
        first, second = data["predictions"]
        # `echo_bytes` ends in _bytes: base64 out; `text` is a plain string output.
        assert first["echo_bytes"] == {"b64": encoded} and first["length"] == len(raw)
        assert second == {"echo_bytes": {"b64": base64.b64encode(b"hi").decode()}, "length": 2, "text": "hi!"}
        status, _, data = call(
            server, "POST", "/v1/models/bytes_model:predict", {"inputs": {"b64": encoded}}
        )
        assert status == 400 and "has shape []" in data["error"]
