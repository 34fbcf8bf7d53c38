"""serving.client.types: parsing TF Serving's answers and reading a classifier's outputs."""

from __future__ import annotations

import numpy as np
import pytest

from serving.client import ClientError, TensorSpec
from serving.client.images import image_input
from serving.client.types import interpret_classifier_outputs, parse_endpoint, parse_metadata, parse_status


def test_parse_endpoint_accepts_the_usual_forms():
    assert parse_endpoint("localhost:8501") == ("localhost", 8501)
    assert parse_endpoint("http://127.0.0.1:8501/") == ("127.0.0.1", 8501)
    assert parse_endpoint("[::1]:8500") == ("::1", 8500)


@pytest.mark.parametrize("bad", ["localhost", "localhost:http", ":8500", "host:0", "host:70000"])
def test_parse_endpoint_rejects_and_names_the_value(bad):
    with pytest.raises(ClientError, match="is not HOST:PORT") as info:
        parse_endpoint(bad)
    assert repr(bad) in str(info.value)
    assert info.value.code == "INVALID_ARGUMENT"


def test_parse_status_reads_tf_serving_documented_answer():
    # g3doc/api_rest.md, Model status API.
    document = {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    (status,) = parse_status(document)
    assert (status.version, status.state, status.error_code) == (1, "AVAILABLE", "OK")


def test_parse_metadata_reads_shapes_dtypes_and_method():
    document = {
        "model_spec": {"name": "m", "signature_name": "", "version": "7"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": {"image": {"dtype": "DT_FLOAT", "tensor_shape": {
                "dim": [{"size": "-1", "name": ""}, {"size": "8"}, {"size": "8"}, {"size": "1"}],
                "unknown_rank": False}, "name": "serving_default_image:0"}},
            "outputs": {"class_name": {"dtype": "DT_STRING", "tensor_shape": {"unknown_rank": True}}},
            "method_name": "tensorflow/serving/predict"}}}},
    }
    metadata = parse_metadata(document)
    signature = metadata.signature("serving_default")
    assert metadata.version == 7
    assert signature.inputs["image"] == TensorSpec("image", "DT_FLOAT", (-1, 8, 8, 1))
    assert signature.outputs["class_name"].shape is None
    assert image_input(signature) == ("image", 8, 8, 1)
    with pytest.raises(ClientError, match=r"has no signature 'nope'.*serving_default"):
        metadata.signature("nope")


def test_interpret_outputs_takes_names_from_the_model():
    outputs = {
        "probabilities": np.array([[0.1, 0.9], [0.8, 0.2]], np.float32),
        "class_id": np.array([1, 0]),
        "class_name": np.array([b"cat", b"dog"], dtype=object),
    }
    rows = interpret_classifier_outputs(outputs)
    assert [(r.class_id, r.class_name) for r in rows] == [(1, "cat"), (0, "dog")]
    assert rows[0].probability == pytest.approx(0.9)


def test_interpret_outputs_without_names_uses_ids_not_invented_labels():
    rows = interpret_classifier_outputs({"scores": np.array([[0.2, 0.7, 0.1]], np.float32)})
    assert (rows[0].class_id, rows[0].class_name) == (1, "1")
    with pytest.raises(ClientError, match="cannot tell which output holds class scores"):
        interpret_classifier_outputs({"a": np.zeros((1, 2)), "b": np.zeros((1, 2))})
