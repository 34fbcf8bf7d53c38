"""The client's gRPC transport: TF Serving's PredictionService and ModelService stubs on one channel."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from serving.client.types import ClientError, ModelMetadata, ModelRef, SignatureSpec, VersionStatus
from serving.client.types import parse_metadata, parse_status


def dict_to_example(features: Mapping[str, Any]) -> Any:
    """{feature: value(s)} -> tf.train.Example: ints to int64_list, floats to float_list, else bytes."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example()
    for key, value in features.items():
        values = np.asarray(value).reshape(-1) if not isinstance(value, (bytes, str)) else [value]
        feature = example.features.feature[str(key)]
        kind = np.asarray(values).dtype.kind if len(values) else "f"
        if kind in "iub":
            feature.int64_list.value.extend(int(v) for v in values)
        elif kind == "f":
            feature.float_list.value.extend(float(v) for v in values)
        else:
            feature.bytes_list.value.extend(
                v if isinstance(v, bytes) else str(v).encode() for v in values
            )
    return example


def _model_spec(ref: ModelRef, signature_name: str = "") -> Any:
    """TF Serving's ModelSpec for `ref`: the model, its pinned version or label, the signature."""
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=ref.model, signature_name=signature_name)
    if ref.version is not None:
        spec.version.value = ref.version
    elif ref.label is not None:
        spec.version_label = ref.label
    return spec


class GrpcTransport:
    """TF Serving's gRPC API (`HOST:8500`): the tensorflow-serving-api stubs on one channel."""

    def __init__(self, host: str, port: int, max_message_bytes: int):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self._grpc = grpc
        self.target = f"{host if ':' not in host else '[' + host + ']'}:{port}"
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
            ],
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def call(self, method: Any, request: Any, *, timeout: float, name: str) -> Any:
        try:
            return method(request, timeout=timeout)
        except self._grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            code_name = code.name if code is not None else "UNKNOWN"
            details = err.details() if hasattr(err, "details") else str(err)
            if code_name == "DEADLINE_EXCEEDED":
                message = f"deadline of {timeout:g} s exceeded: {name} on {self.target} got no answer in time"
            elif code_name == "UNAVAILABLE":
                message = (
                    f"cannot reach the gRPC endpoint {self.target} ({details}): is the server running "
                    "and is this its gRPC port (--port)?"
                )
            else:
                message = f"{name} on {self.target} failed with {code_name}: {details}"
            raise ClientError(message, code=code_name) from err

    def status(self, ref: ModelRef, *, timeout: float) -> list[VersionStatus]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(ref))
        response = self.call(self.model.GetModelStatus, request, timeout=timeout, name="GetModelStatus")
        return parse_status(json_format.MessageToDict(response, preserving_proto_field_name=True))

    def metadata(self, ref: ModelRef, *, timeout: float) -> ModelMetadata:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_model_spec(ref), metadata_field=["signature_def"]
        )
        response = self.call(self.prediction.GetModelMetadata, request, timeout=timeout, name="GetModelMetadata")
        # The packed SignatureDefMap (its type is known once get_model_metadata_pb2 is imported) becomes
        # REST's {"signature_def": {"@type": ..., "signature_def": {...}}}.
        return parse_metadata(json_format.MessageToDict(response, preserving_proto_field_name=True))

    def predict(
        self, ref: ModelRef, signature: SignatureSpec, inputs: Mapping[str, np.ndarray], *, timeout: float
    ) -> dict[str, np.ndarray]:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest(model_spec=_model_spec(ref, signature.name))
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        response = self.call(self.prediction.Predict, request, timeout=timeout, name="Predict")
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def _infer(
        self, api: str, ref: ModelRef, signature_name: str, examples: Sequence[Any],
        context: Mapping[str, Any] | None, timeout: float,
    ) -> Any:
        from tensorflow_serving.apis import classification_pb2, regression_pb2

        classify = api == "classify"
        kind = classification_pb2.ClassificationRequest if classify else regression_pb2.RegressionRequest
        request = kind(model_spec=_model_spec(ref, signature_name))
        target = request.input.example_list_with_context if context else request.input.example_list
        if context:
            target.context.CopyFrom(dict_to_example(context))
        for example in examples:
            target.examples.add().CopyFrom(dict_to_example(example) if isinstance(example, Mapping) else example)
        method = self.prediction.Classify if classify else self.prediction.Regress
        return self.call(method, request, timeout=timeout, name=api.capitalize())

    def classify(
        self, ref: ModelRef, signature_name: str, examples: Sequence[Any],
        context: Mapping[str, Any] | None, *, timeout: float,
    ) -> list[list[tuple[str, float]]]:
        response = self._infer("classify", ref, signature_name, examples, context, timeout)
        return [[(c.label, float(c.score)) for c in r.classes] for r in response.result.classifications]

    def regress(
        self, ref: ModelRef, signature_name: str, examples: Sequence[Any],
        context: Mapping[str, Any] | None, *, timeout: float,
    ) -> list[float]:
        response = self._infer("regress", ref, signature_name, examples, context, timeout)
        return [float(r.value) for r in response.result.regressions]
