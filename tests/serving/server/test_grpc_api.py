"""PredictionService and ModelService through tensorflow-serving-api's own stubs, and TFX's
TensorFlowServingClient, against a real server process."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def channel(half_plus_two_server):
    with grpc.insecure_channel(half_plus_two_server.grpc_endpoint) as channel:
        yield channel


@pytest.fixture(scope="module")
def prediction(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def model_service(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def _example(x: float) -> example_pb2.Example:
    return example_pb2.Example(features={"feature": {"x": feature_pb2.Feature(float_list={"value": [x]})}})


def _spec(signature: str = "") -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name="half_plus_two", signature_name=signature)


def test_predict_returns_float_val_like_tf_serving(prediction, predict_request):
    request = predict_request("half_plus_two", x=np.array([1.0, 2.0, 5.0], np.float32))
    response = prediction.Predict(request, TIMEOUT)
    # Clients (seed 003's mnist_client) read float_val directly.
    assert list(response.outputs["y"].float_val) == [2.5, 3.0, 4.5]
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [2.5, 3.0, 4.5]
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_predict_by_version_signature_and_output_filter(prediction, predict_request):
    request = predict_request(
        "half_plus_two", signature="two_inputs", a=np.array([[1, 2]], np.float32), b=np.array([3], np.float32)
    )
    request.model_spec.version.value = 1
    request.output_filter.append("sum")
    response = prediction.Predict(request, TIMEOUT)
    assert list(response.outputs) == ["sum"]
    assert list(response.outputs["sum"].float_val) == [6.0]


@pytest.mark.parametrize(
    "mutate, code, message",
    [
        (lambda r: setattr(r.model_spec, "name", "half"), grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Latest(half)"),
        (lambda r: r.model_spec.version.__setattr__("value", 4), grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Specific(half_plus_two, 4)"),
        (lambda r: setattr(r.model_spec, "version_label", "stable"), grpc.StatusCode.INVALID_ARGUMENT,
         "Unrecognized servable version label: stable"),
        (lambda r: setattr(r.model_spec, "signature_name", "nope"), grpc.StatusCode.INVALID_ARGUMENT,
         'Serving signature name: "nope" not found in signature def'),
        (lambda r: r.inputs["z"].CopyFrom(tf.make_tensor_proto([1.0])), grpc.StatusCode.INVALID_ARGUMENT,
         "input size does not match signature"),
        (lambda r: r.inputs["x"].CopyFrom(tf.make_tensor_proto(["a"])), grpc.StatusCode.INVALID_ARGUMENT,
         "Expects arg[0] to be float"),
    ],
)
def test_predict_errors_carry_tf_serving_codes(prediction, predict_request, mutate, code, message):
    request = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    mutate(request)
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, TIMEOUT)
    assert info.value.code() == code
    assert message in info.value.details()


def test_classify_regress_and_multi_inference(prediction):
    request = classification_pb2.ClassificationRequest(model_spec=_spec("classify_x_to_y"))
    request.input.example_list.examples.extend([_example(3.0), _example(1.0)])
    response = prediction.Classify(request, TIMEOUT)
    scores = [[c.score for c in row.classes] for row in response.result.classifications]
    assert scores == [[3.5], [2.5]]
    assert response.model_spec.signature_name == "classify_x_to_y"

    request = regression_pb2.RegressionRequest(model_spec=_spec("regress_x_to_y2"))
    request.input.example_list_with_context.context.CopyFrom(_example(2.0))
    request.input.example_list_with_context.examples.extend([example_pb2.Example(), _example(4.0)])
    response = prediction.Regress(request, TIMEOUT)
    assert [r.value for r in response.result.regressions] == [4.0, 5.0]

    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("classify_x_to_y", "tensorflow/serving/classify"),
        ("regress_x_to_y", "tensorflow/serving/regress"),
    ):
        request.tasks.add(model_spec=_spec(signature), method_name=method)
    request.input.example_list.examples.append(_example(6.0))
    response = prediction.MultiInference(request, TIMEOUT)
    assert response.results[0].classification_result.classifications[0].classes[0].score == 5.0
    assert response.results[1].regression_result.regressions[0].value == 5.0
    assert response.results[1].model_spec.signature_name == "regress_x_to_y"


def test_regress_on_classify_signature_is_invalid(prediction):
    request = regression_pb2.RegressionRequest(model_spec=_spec("classify_x_to_y"))
    request.input.example_list.examples.append(_example(1.0))
    with pytest.raises(grpc.RpcError) as info:
        prediction.Regress(request, TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Expected regression signature method_name to be tensorflow/serving/regress" in info.value.details()


def test_get_model_metadata_returns_signature_def_map(prediction):
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_spec(), metadata_field=["signature_def"])
    response = prediction.GetModelMetadata(request, TIMEOUT)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert signature_map.signature_def["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum
    assert signature_map.signature_def["classify_x_to_y"].method_name == "tensorflow/serving/classify"
    assert response.model_spec.version.value == 1

    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=_spec(), metadata_field=["other"])
    with pytest.raises(grpc.RpcError) as info:
        prediction.GetModelMetadata(request, TIMEOUT)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_get_model_status(model_service):
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=_spec())
    response = model_service.GetModelStatus(request, TIMEOUT)
    assert [(s.version, s.state) for s in response.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as info:
        model_service.GetModelStatus(request, TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "Could not find any versions of model nope"


def test_tfx_tensorflow_serving_client_works_unchanged(half_plus_two_server, predict_request):
    import time

    from tfx.components.infra_validator import error_types
    from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import (
        TensorFlowServingClient,
    )

    client = TensorFlowServingClient(half_plus_two_server.grpc_endpoint, "half_plus_two")
    client.WaitUntilModelLoaded(time.time() + 30, polling_interval_sec=1)  # GetModelStatus
    classify = classification_pb2.ClassificationRequest(model_spec=_spec("classify_x_to_y"))
    classify.input.example_list.examples.append(_example(1.0))
    predict = predict_request("half_plus_two", x=np.array([1.0], np.float32))
    # SendRequests raises on any failed RPC; both go through.
    client.SendRequests([classify, predict])

    missing = TensorFlowServingClient(half_plus_two_server.grpc_endpoint, "not_served")
    with pytest.raises(error_types.DeadlineExceeded):
        missing.WaitUntilModelLoaded(time.time() + 1.5, polling_interval_sec=1)


def test_lossless_dtype_casts_are_accepted_truncating_ones_refused(prediction, predict_request):
    request = predict_request("half_plus_two", x=np.array([1.0, 3.0], np.float64))
    assert list(prediction.Predict(request, TIMEOUT).outputs["y"].float_val) == [2.5, 3.5]
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([2], np.int64)))
    assert list(prediction.Predict(request, TIMEOUT).outputs["y"].float_val) == [3.0]

    request = predict_request("half_plus_two", signature="two_inputs", a=np.array([[1, 2]], np.float32), b=np.array([True]))
    assert list(prediction.Predict(request, TIMEOUT).outputs["sum"].float_val) == [4.0]
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(np.array([1 + 2j], np.complex64)))
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, TIMEOUT)
    assert info.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED)
