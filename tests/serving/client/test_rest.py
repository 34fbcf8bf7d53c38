"""serving.client.rest: TF Serving's REST URLs and JSON values."""

from __future__ import annotations

import numpy as np

from serving.client.rest import examples_to_json, json_to_array, model_path
from serving.client.types import ModelRef


def test_model_path_follows_tf_serving_urls():
    assert model_path(ModelRef("m")) == "/v1/models/m"
    assert model_path(ModelRef("m", 3)) == "/v1/models/m/versions/3"
    assert model_path(ModelRef("my model", label="canary")) == "/v1/models/my%20model/labels/canary"


def test_json_conversions_handle_b64():
    assert json_to_array([{"b64": "aGk="}, "x"], "DT_STRING").tolist() == [b"hi", b"x"]
    assert json_to_array([[1, 2]], "DT_INT64").dtype == np.int64
    assert examples_to_json([{"a": b"\x00", "b": np.array([1.5, 2.0]), "c": 3}]) == [
        {"a": {"b64": "AA=="}, "b": [1.5, 2.0], "c": 3}
    ]
