"""The pure JSON/proto <-> array conversions against TF Serving's documented behaviour."""

from __future__ import annotations

import base64
import math

import numpy as np
import orjson
import pytest
from tensorflow.core.framework import types_pb2

from serving import protocol
from serving.protocol import Code, InputSpec, RequestFormat, ServingError

FLOAT = {"x": InputSpec(types_pb2.DT_FLOAT)}


def _error(call, *args):
    with pytest.raises(ServingError) as info:
        call(*args)
    return info.value


@pytest.mark.parametrize(
    "value, text",
    [
        (3.0, "3.0"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (np.float32(np.pi), "3.14159274"),  # %g does not round-trip: max_digits10
        (1e6, "1e+06"),  # sci notation: no ".0"
        (0.00003, "3e-05"),
        (-7.0, "-7.0"),
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_format_float_matches_tf_serving_write_decimal(value, text):
    assert protocol.format_float(float(value)) == text


def test_float_arrays_format_like_single_values():
    values = np.array([3.0, 0.1, np.pi, 1e6, np.nan, -np.inf, 1435774380], dtype=np.float32)
    body = protocol.predict_response_json({"y": values}, RequestFormat.COLUMNAR)
    assert body == (
        b'{"outputs": [3.0, 0.1, 3.14159274, 1e+06, NaN, -Infinity, 1.43577434e+09]}'
    )
    # float64 keeps 17 significant digits when %g is not enough.
    body = protocol.predict_response_json({"y": np.array([0.1 + 0.2])}, RequestFormat.COLUMNAR)
    assert body == b'{"outputs": [0.30000000000000004]}'


def test_parse_accepts_nan_and_infinity_tokens():
    doc = protocol.parse_json_body(b'{"instances": [NaN, Infinity, -Infinity, 1e3]}')
    values = doc["instances"]
    assert np.isnan(values[0]) and values[1] == np.inf and values[2] == -np.inf and values[3] == 1000


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "JSON Parse error: The document is empty"),
        (b"[1, 2]", "Is not object"),
        (b'{"instances": [1, 2}', "JSON Parse error"),
    ],
)
def test_parse_errors(body, message):
    error = _error(protocol.parse_json_body, body)
    assert error.code == Code.INVALID_ARGUMENT and message in error.message
    assert error.http_status == 400


def test_row_format_single_input_and_response():
    inputs, fmt = protocol.predict_inputs_from_json({"instances": [1.0, 2.0, 5.0]}, FLOAT, "")
    assert fmt is RequestFormat.ROW
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [1.0, 2.0, 5.0]
    body = protocol.predict_response_json({"y": np.array([2.5, 3.0, 4.5], np.float32)}, fmt)
    assert orjson.loads(body) == {"predictions": [2.5, 3.0, 4.5]}


def test_row_format_named_inputs_and_multiple_outputs():
    specs = {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_INT64)}
    doc = {"instances": [{"a": [1, 2], "b": 3}, {"a": [4, 5], "b": 6}]}
    inputs, fmt = protocol.predict_inputs_from_json(doc, specs, "")
    assert inputs["a"].shape == (2, 2) and inputs["b"].dtype == np.int64
    body = protocol.predict_response_json(
        {"sum": np.array([6, 15], np.int64), "doubled": inputs["a"] * 2}, fmt
    )
    assert orjson.loads(body) == {
        "predictions": [{"doubled": [2.0, 4.0], "sum": 6}, {"doubled": [8.0, 10.0], "sum": 15}]
    }


def test_columnar_format_named_inputs_may_differ_in_batch():
    specs = {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)}
    inputs, fmt = protocol.predict_inputs_from_json({"inputs": {"a": [[1, 2]], "b": 7}}, specs, "")
    assert fmt is RequestFormat.COLUMNAR
    assert inputs["a"].shape == (1, 2) and inputs["b"].shape == ()
    body = protocol.predict_response_json(
        {"p": np.array([[1.5]], np.float32), "q": np.array(2, np.int32)}, fmt
    )
    assert orjson.loads(body) == {"outputs": {"p": [[1.5]], "q": 2}}


@pytest.mark.parametrize(
    "doc, specs, message",
    [
        ({"instances": [1], "inputs": [1]}, FLOAT, "expecting only one of 'inputs' or 'instances'"),
        ({"instances": 1}, FLOAT, "Excepting 'instances' to be an list/array"),
        ({"instances": []}, FLOAT, "No values in 'instances' array"),
        ({"signature_name": "x"}, FLOAT, "Missing 'inputs' or 'instances' key"),
        ({"instances": [1]}, {}, "Failed to get input map for signature: DEFAULT"),
        (
            {"instances": [1, 2]},
            {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)},
            "instances is a plain list, but expecting list of objects as multiple input tensors",
        ),
        (
            {"inputs": [1, 2]},
            {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)},
            "inputs is a plain value/list, but expecting an object",
        ),
        ({"instances": ["a"]}, FLOAT, 'JSON Value: "a" Type: String is not of expected type: float'),
        ({"inputs": [[1, 2], [3]]}, FLOAT, "Encountered list at unexpected size: 1 at level: 1"),
        (
            {"instances": [[1, 2], [3]]},
            FLOAT,
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [2] but got: [1]",
        ),
        ({"instances": [1.5]}, {"x": InputSpec(types_pb2.DT_INT32)}, "is not of expected type: int32"),
        ({"instances": [16777217]}, FLOAT, "Cannot convert JSON value: 16777217 to float without loss"),
        ({"instances": [1.0, 1e39]}, FLOAT, "Cannot convert JSON value: 1e+39 to float without loss"),
        ({"instances": [True]}, FLOAT, "JSON Value: true Type: True is not of expected type: float"),
        ({"instances": [2**40]}, {"x": InputSpec(types_pb2.DT_INT32)}, "is not of expected type: int32"),
        ({"instances": [{"a": 1}]}, {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)}, "keys must be equal to: a,b"),
        ({"inputs": {"a": 1}}, {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)}, "Missing named input: b in 'inputs' object."),
    ],
)
def test_predict_request_errors(doc, specs, message):
    error = _error(protocol.predict_inputs_from_json, doc, specs, "")
    assert error.code == Code.INVALID_ARGUMENT
    assert message in error.message


def test_error_messages_do_not_echo_huge_payloads():
    doc = {"instances": [1.0] * 100000, "inputs": [1.0]}
    error = _error(protocol.predict_inputs_from_json, doc, FLOAT, "")
    assert len(error.message) < 400


def test_b64_values_in_and_bytes_outputs_out():
    raw = bytes(range(256))
    encoded = base64.b64encode(raw).decode()
    specs = {"image_bytes": InputSpec(types_pb2.DT_STRING)}
    inputs, fmt = protocol.predict_inputs_from_json(
        {"instances": [{"b64": encoded}, "plain"]}, specs, ""
    )
    assert inputs["image_bytes"].tolist() == [raw, b"plain"]
    body = protocol.predict_response_json(
        {"echo_bytes": inputs["image_bytes"], "text": np.array([b"a", b"b"], dtype=object)}, fmt
    )
    predictions = orjson.loads(body)["predictions"]
    assert predictions[0] == {"echo_bytes": {"b64": encoded}, "text": "a"}
    assert predictions[1] == {"echo_bytes": {"b64": base64.b64encode(b"plain").decode()}, "text": "b"}


def test_bad_base64_is_invalid_argument():
    specs = {"s": InputSpec(types_pb2.DT_STRING)}
    error = _error(protocol.predict_inputs_from_json, {"instances": [{"b64": "!!!"}]}, specs, "")
    assert "Unable to base64 decode" in error.message


def test_examples_and_context_become_tf_examples():
    doc = {
        "context": {"country": "ch", "weights": [1.5, 2.0]},
        "examples": [{"x": 1.0, "id": 7, "flag": True, "blob": {"b64": "AAE="}}, {"x": [2.0, 3.0]}],
    }
    examples, context = protocol.examples_from_json(doc, "classify")
    assert context.features.feature["country"].bytes_list.value == [b"ch"]
    assert list(context.features.feature["weights"].float_list.value) == [1.5, 2.0]
    first = examples[0].features.feature
    assert first["x"].float_list.value == [1.0]
    assert first["id"].int64_list.value == [7]
    assert first["flag"].int64_list.value == [1]
    assert first["blob"].bytes_list.value == [b"\x00\x01"]
    assert list(examples[1].features.feature["x"].float_list.value) == [2.0, 3.0]


@pytest.mark.parametrize(
    "doc, message",
    [
        ({}, "When method is classify, key 'examples' is expected and was not found"),
        ({"examples": {}}, "Expecting 'examples' value to be an list/array"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": [1]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [{"x": [1.0, "a"]}]}, "Unexpected element type in feature: x expecting type: float"),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
    ],
)
def test_examples_errors(doc, message):
    error = _error(protocol.examples_from_json, doc, "classify")
    assert message in error.message


def test_classify_and_regress_result_json():
    body = protocol.classify_response_json([[("", 3.5)], [("cat", 0.25), ("dog", 0.75)]])
    assert orjson.loads(body) == {"results": [[["", 3.5]], [["cat", 0.25], ["dog", 0.75]]]}
    assert protocol.regress_response_json([3.5, 2.0]) == b'{"results": [3.5, 2.0]}'


def test_error_body_and_http_codes():
    assert orjson.loads(protocol.error_json('bad "thing"')) == {"error": 'bad "thing"'}
    assert ServingError(Code.NOT_FOUND, "x").http_status == 404
    assert ServingError(Code.RESOURCE_EXHAUSTED, "x").http_status == 429
    assert ServingError(Code.DEADLINE_EXCEEDED, "x").http_status == 504
    assert ServingError(Code.FAILED_PRECONDITION, "x").http_status == 400
    assert ServingError(Code.UNAVAILABLE, "x").http_status == 503


def test_tensor_proto_round_trip_uses_typed_fields():
    import tensorflow as tf

    array = np.array([[1.5, 2.0]], np.float32)
    proto = protocol.ndarray_to_tensor_proto(array)
    assert list(proto.float_val) == [1.5, 2.0] and not proto.tensor_content
    assert protocol.tensor_proto_to_ndarray(proto).tolist() == array.tolist()
    # tensor_content (what tf.make_tensor_proto writes) and string tensors read back too.
    packed = tf.make_tensor_proto(np.arange(6, dtype=np.int64).reshape(2, 3))
    assert protocol.tensor_proto_to_ndarray(packed).tolist() == [[0, 1, 2], [3, 4, 5]]
    strings = tf.make_tensor_proto([b"a", b"bc"])
    assert protocol.tensor_proto_to_ndarray(strings).tolist() == [b"a", b"bc"]
    # a single value fills the shape, as in tf.make_ndarray
    scalar_fill = tf.make_tensor_proto(7.0, shape=[2, 2])
    assert protocol.tensor_proto_to_ndarray(scalar_fill).tolist() == [[7.0, 7.0], [7.0, 7.0]]


def test_big_bodies_parse_with_the_gc_paused_and_restored():
    import gc

    from serving.protocol import _NO_GC_BODY_BYTES, parse_json_body

    rows = [[float(i)] * 100 for i in range(_NO_GC_BODY_BYTES // 300)]
    body = orjson.dumps({"instances": rows})
    assert len(body) >= _NO_GC_BODY_BYTES
    assert gc.isenabled()
    assert parse_json_body(body)["instances"] == rows
    assert gc.isenabled()
    # NaN still takes the tolerant path, and a collector turned off by someone else stays off.
    gc.disable()
    try:
        doc = parse_json_body(body[:-2] + b",[NaN]]}")
        assert math.isnan(doc["instances"][-1][0]) and not gc.isenabled()
    finally:
        gc.enable()
