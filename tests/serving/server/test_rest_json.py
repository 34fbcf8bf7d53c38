"""The pure REST JSON <-> array conversions against TF Serving's documented behaviour."""

from __future__ import annotations

import base64
import math

import numpy as np
import orjson
import pytest
from tensorflow.core.framework import types_pb2

from serving.errors import Code, ServingError
from serving.saved_model import InputSpec
from serving.server import rest_json
from serving.server.rest_json import RequestFormat

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
    assert rest_json.format_float(float(value)) == text


def test_float_arrays_format_like_single_values():
    values = np.array([3.0, 0.1, np.pi, 1e6, np.nan, -np.inf, 1435774380], dtype=np.float32)
    body = rest_json.predict_response_json({"y": values}, RequestFormat.COLUMNAR)
    assert body == (
        b'{"outputs": [3.0, 0.1, 3.14159274, 1e+06, NaN, -Infinity, 1.43577434e+09]}'
    )
    # float64 keeps 17 significant digits when %g is not enough.
    body = rest_json.predict_response_json({"y": np.array([0.1 + 0.2])}, RequestFormat.COLUMNAR)
    assert body == b'{"outputs": [0.30000000000000004]}'


# Values around the edges of %g, with TF Serving's text for each.
TRICKY_FLOAT32 = [
    (float(np.finfo(np.float32).max), "3.40282347e+38"),
    (float(np.finfo(np.float32).tiny), "1.17549435e-38"),  # smallest normal
    (float(np.float32(1.4e-45)), "1.4013e-45"),  # smallest subnormal: %g round-trips
    (16777216.0, "16777216.0"),  # %g does not round-trip; full precision still gets ".0"
    (1234567.0, "1234567.0"),
    (100000.0, "100000.0"),
    (1e6, "1e+06"),
    (-0.0, "-0.0"),
    (float(np.float32(1 / 3)), "0.333333343"),
    (float(np.float32(2.5e-7)), "2.5e-07"),
    (float("nan"), "NaN"),
    (float("inf"), "Infinity"),
    (float("-inf"), "-Infinity"),
]
TRICKY_FLOAT64 = [
    (0.1 + 0.2, "0.30000000000000004"),
    (1 / 3, "0.33333333333333331"),
    (2.0**60, "1.152921504606847e+18"),
    (5e-324, "4.94066e-324"),  # smallest subnormal double
    (1e300, "1e+300"),
    (1234567.0, "1234567.0"),
    (-0.0, "-0.0"),
    (float("nan"), "NaN"),
]


@pytest.mark.parametrize(
    "dtype, cases", [(np.float32, TRICKY_FLOAT32), (np.float64, TRICKY_FLOAT64)]
)
@pytest.mark.parametrize("repeat", [1, 20])  # a few values, and enough for the numpy check
def test_tricky_floats_format_the_same_alone_and_in_arrays(dtype, cases, repeat):
    texts = [text for _, text in cases]
    body = rest_json.predict_response_json(
        {"y": np.array([value for value, _ in cases] * repeat, dtype)}, RequestFormat.COLUMNAR
    )
    assert body == ('{"outputs": [' + ", ".join(texts * repeat) + "]}").encode()
    double = dtype is np.float64
    assert [rest_json.format_float(value, double) for value, _ in cases] == texts


def test_float_results_check_the_round_trip_in_float32_but_write_the_double():
    # 0.123456789012 is no float32: %g's 0.123457 is a different float32 than it, so TF writes
    # 9 digits of the double itself, not of its float32 (0.123456791).
    assert rest_json.format_float(0.123456789012) == "0.123456789"
    # And 0.100000003 is the float32 of 0.1, so %g's 0.1 round-trips: alone or among many.
    assert rest_json.format_float(0.100000003) == "0.1"
    many = [0.100000003, 0.123456789012] * 100
    texts = b", ".join([b"0.1", b"0.123456789"] * 100)
    assert rest_json.regress_response_json(many) == b'{"results": [' + texts + b"]}"
    third = float(np.float32(1 / 3))
    assert rest_json.regress_response_json([0.1, 16777216.0, third, 0.123456789012]) == (
        b'{"results": [0.1, 16777216.0, 0.333333343, 0.123456789]}'
    )
    assert rest_json.classify_response_json([[("a", third), ("b", 1.0)], [("c", float("nan"))]]) == (
        b'{"results": [[["a", 0.333333343], ["b", 1.0]], [["c", NaN]]]}'
    )


def test_image_like_nests_convert_exactly():
    pixels = np.arange(2 * 4 * 5 * 3).reshape(2, 4, 5, 3) % 256  # ints in short channel lists
    inputs, _ = rest_json.predict_inputs_from_json({"instances": pixels.tolist()}, FLOAT, "")
    assert inputs["x"].dtype == np.float32 and inputs["x"].shape == (2, 4, 5, 3)
    assert (inputs["x"] == pixels).all()
    gray = np.arange(64).reshape(1, 8, 8, 1) / 16  # floats, one-wide innermost lists
    inputs, _ = rest_json.predict_inputs_from_json({"inputs": gray.tolist()}, FLOAT, "")
    assert inputs["x"].dtype == np.float32 and (inputs["x"] == gray).all()
    doubles = {"x": InputSpec(types_pb2.DT_DOUBLE)}
    inputs, _ = rest_json.predict_inputs_from_json({"inputs": gray.tolist()}, doubles, "")
    assert inputs["x"].dtype == np.float64 and (inputs["x"] == gray).all()


def test_parse_accepts_nan_and_infinity_tokens():
    doc = rest_json.parse_json_body(b'{"instances": [NaN, Infinity, -Infinity, 1e3]}')
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
    error = _error(rest_json.parse_json_body, body)
    assert error.code == Code.INVALID_ARGUMENT and message in error.message
    assert error.http_status == 400


def test_row_format_single_input_and_response():
    inputs, fmt = rest_json.predict_inputs_from_json({"instances": [1.0, 2.0, 5.0]}, FLOAT, "")
    assert fmt is RequestFormat.ROW
    assert inputs["x"].dtype == np.float32 and inputs["x"].tolist() == [1.0, 2.0, 5.0]
    body = rest_json.predict_response_json({"y": np.array([2.5, 3.0, 4.5], np.float32)}, fmt)
    assert orjson.loads(body) == {"predictions": [2.5, 3.0, 4.5]}


def test_row_format_named_inputs_and_multiple_outputs():
    specs = {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_INT64)}
    doc = {"instances": [{"a": [1, 2], "b": 3}, {"a": [4, 5], "b": 6}]}
    inputs, fmt = rest_json.predict_inputs_from_json(doc, specs, "")
    assert inputs["a"].shape == (2, 2) and inputs["b"].dtype == np.int64
    body = rest_json.predict_response_json(
        {"sum": np.array([6, 15], np.int64), "doubled": inputs["a"] * 2}, fmt
    )
    assert orjson.loads(body) == {
        "predictions": [{"doubled": [2.0, 4.0], "sum": 6}, {"doubled": [8.0, 10.0], "sum": 15}]
    }


def test_columnar_format_named_inputs_may_differ_in_batch():
    specs = {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)}
    inputs, fmt = rest_json.predict_inputs_from_json({"inputs": {"a": [[1, 2]], "b": 7}}, specs, "")
    assert fmt is RequestFormat.COLUMNAR
    assert inputs["a"].shape == (1, 2) and inputs["b"].shape == ()
    body = rest_json.predict_response_json(
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
        # Nests that look dense from their first elements but are not.
        ({"inputs": [[1, 2], [3], [4, 5, 6]]}, FLOAT, "unexpected size: 1 at level: 1 expected size: 2"),
        ({"inputs": [[[1.0], "a"]]}, FLOAT, 'JSON Value: "a" found at incorrect level: 3'),
        ({"inputs": [[[1.0], {"k": 1}]]}, FLOAT, 'JSON Value: {"k":1} found at incorrect level: 3'),
        ({"inputs": [[1.0], 2.0]}, FLOAT, "JSON Value: 2.0 found at incorrect level: 2"),
        ({"inputs": [[1.0], [[2.0]]]}, FLOAT, "Encountered list at unexpected level: 2 expected < 2"),
        ({"inputs": [[[1.0]], [[1e39]]]}, FLOAT, "Cannot convert JSON value: 1e+39 to float without loss"),
        ({"inputs": [[[True], [False]]]}, FLOAT, "JSON Value: true Type: True is not of expected type: float"),
        ({"instances": [2**40]}, {"x": InputSpec(types_pb2.DT_INT32)}, "is not of expected type: int32"),
        ({"instances": [{"a": 1}]}, {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)}, "keys must be equal to: a,b"),
        ({"inputs": {"a": 1}}, {"a": InputSpec(types_pb2.DT_FLOAT), "b": InputSpec(types_pb2.DT_FLOAT)}, "Missing named input: b in 'inputs' object."),
    ],
)
def test_predict_request_errors(doc, specs, message):
    error = _error(rest_json.predict_inputs_from_json, doc, specs, "")
    assert error.code == Code.INVALID_ARGUMENT
    assert message in error.message


def test_error_messages_do_not_echo_huge_payloads():
    doc = {"instances": [1.0] * 100000, "inputs": [1.0]}
    error = _error(rest_json.predict_inputs_from_json, doc, FLOAT, "")
    assert len(error.message) < 400


def test_b64_values_in_and_bytes_outputs_out():
    raw = bytes(range(256))
    encoded = base64.b64encode(raw).decode()
    specs = {"image_bytes": InputSpec(types_pb2.DT_STRING)}
    inputs, fmt = rest_json.predict_inputs_from_json(
        {"instances": [{"b64": encoded}, "plain"]}, specs, ""
    )
    assert inputs["image_bytes"].tolist() == [raw, b"plain"]
    body = rest_json.predict_response_json(
        {"echo_bytes": inputs["image_bytes"], "text": np.array([b"a", b"b"], dtype=object)}, fmt
    )
    predictions = orjson.loads(body)["predictions"]
    assert predictions[0] == {"echo_bytes": {"b64": encoded}, "text": "a"}
    assert predictions[1] == {"echo_bytes": {"b64": base64.b64encode(b"plain").decode()}, "text": "b"}


def test_bad_base64_is_invalid_argument():
    specs = {"s": InputSpec(types_pb2.DT_STRING)}
    error = _error(rest_json.predict_inputs_from_json, {"instances": [{"b64": "!!!"}]}, specs, "")
    assert "Unable to base64 decode" in error.message


def test_examples_and_context_become_tf_examples():
    doc = {
        "context": {"country": "ch", "weights": [1.5, 2.0]},
        "examples": [{"x": 1.0, "id": 7, "flag": True, "blob": {"b64": "AAE="}}, {"x": [2.0, 3.0]}],
    }
    examples, context = rest_json.examples_from_json(doc, "classify")
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
    error = _error(rest_json.examples_from_json, doc, "classify")
    assert message in error.message


def test_classify_and_regress_result_json():
    body = rest_json.classify_response_json([[("", 3.5)], [("cat", 0.25), ("dog", 0.75)]])
    assert orjson.loads(body) == {"results": [[["", 3.5]], [["cat", 0.25], ["dog", 0.75]]]}
    assert rest_json.regress_response_json([3.5, 2.0]) == b'{"results": [3.5, 2.0]}'


def test_error_body_and_http_codes():
    assert orjson.loads(rest_json.error_json('bad "thing"')) == {"error": 'bad "thing"'}
    assert ServingError(Code.NOT_FOUND, "x").http_status == 404
    assert ServingError(Code.RESOURCE_EXHAUSTED, "x").http_status == 429
    assert ServingError(Code.DEADLINE_EXCEEDED, "x").http_status == 504
    assert ServingError(Code.FAILED_PRECONDITION, "x").http_status == 400
    assert ServingError(Code.UNAVAILABLE, "x").http_status == 503


def test_big_bodies_parse_with_the_gc_paused_and_restored():
    import gc

    from serving.server.rest_json import _NO_GC_BODY_BYTES, parse_json_body

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
