"""The one serving core: TF Serving's PredictionService and ModelService on protos.

REST (`serving.rest`) and gRPC (`serving.grpc_server`) are thin adapters over this module.
Every method takes and returns tensorflow_serving.apis protos and raises `ServingError` with
TF Serving's status code and message; `predict_json` is the same predict path for REST, fed
with arrays converted straight from JSON instead of TensorProtos.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from serving import protocol
from serving.model_store import ModelStore
from serving.protocol import invalid
from serving.servable import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    REGRESS_METHOD,
    Servable,
    Signature,
)

logger = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000

# A runner calls one signature on arrays: plain `servable.run`, or the dynamic batcher.
Runner = Callable[[Servable, Signature, Mapping[str, np.ndarray], tuple[str, ...]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class PreparedPredict:
    servable: Servable
    signature: Signature
    inputs: dict[str, np.ndarray]
    fmt: protocol.RequestFormat
    output_filter: tuple[str, ...] = ()


def _direct_runner(
    servable: Servable,
    signature: Signature,
    inputs: Mapping[str, np.ndarray],
    output_filter: tuple[str, ...],
) -> dict[str, np.ndarray]:
    return servable.run(signature, inputs, output_filter)


def _spec_version(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _response_spec(servable: Servable, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature_name)
    spec.version.value = servable.version
    return spec


def serialized_examples(model_input: input_pb2.Input) -> np.ndarray:
    """Input -> 1-D array of serialized tf.Examples; context is merged by concatenating the
    serialized protos (proto merge semantics: the example's own features win), as TF Serving does."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        records = [e.SerializeToString() for e in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        context = model_input.example_list_with_context.context.SerializeToString()
        records = [context + e.SerializeToString() for e in model_input.example_list_with_context.examples]
    else:
        records = []
    if not records:
        raise invalid("Input is empty.")
    array = np.empty(len(records), dtype=object)
    array[:] = records
    return array


class ServingCore:
    """Predict/Classify/Regress/MultiInference/GetModelMetadata/GetModelStatus/ReloadConfig."""

    def __init__(self, store: ModelStore, runner: Runner | None = None) -> None:
        self.store = store
        self._runner = runner or _direct_runner

    # ---- resolution ------------------------------------------------------------------------

    def servable_for(self, spec: model_pb2.ModelSpec) -> Servable:
        version, label = _spec_version(spec)
        return self.store.get_servable(spec.name, version, label)

    def _run(
        self,
        servable: Servable,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        return self._runner(servable, signature, inputs, output_filter)

    # ---- Predict ---------------------------------------------------------------------------

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        servable = self.servable_for(request.model_spec)
        return self.predict_on(servable, request)

    def predict_on(
        self, servable: Servable, request: predict_pb2.PredictRequest
    ) -> predict_pb2.PredictResponse:
        prepared = self.prepare_predict(request, servable)
        return self.predict_response(prepared, self.run_prepared(prepared))

    def prepare_predict(
        self, request: predict_pb2.PredictRequest, servable: Servable | None = None
    ) -> "PreparedPredict":
        """gRPC predict, first half: resolve the servable, TensorProtos -> arrays."""
        if servable is None:
            servable = self.servable_for(request.model_spec)
        signature = servable.signature(request.model_spec.signature_name)
        inputs = {k: protocol.tensor_proto_to_ndarray(v) for k, v in request.inputs.items()}
        output_filter = tuple(request.output_filter)
        if len(set(output_filter)) != len(output_filter):
            raise invalid("duplicate output tensor alias in output_filter")
        return PreparedPredict(servable, signature, inputs, protocol.RequestFormat.COLUMNAR, output_filter)

    def predict_response(
        self, prepared: "PreparedPredict", outputs: Mapping[str, np.ndarray]
    ) -> predict_pb2.PredictResponse:
        """gRPC predict, last half: arrays -> PredictResponse (typed value fields)."""
        response = predict_pb2.PredictResponse(
            model_spec=_response_spec(prepared.servable, prepared.signature.name)
        )
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(protocol.ndarray_to_tensor_proto(array))
        return response

    def prepare_predict_json(
        self, name: str, version: int | None, label: str | None, doc: Mapping[str, Any]
    ) -> "PreparedPredict":
        """REST predict, first half: resolve the servable and convert the JSON to arrays."""
        signature_name = protocol.signature_name_from_json(doc)
        servable = self.store.get_servable(name, version, label)
        signature = servable.signatures.get(signature_name or DEFAULT_SIGNATURE)
        if signature is None:
            raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        inputs, fmt = protocol.predict_inputs_from_json(doc, signature.input_specs, signature_name)
        return PreparedPredict(servable, signature, inputs, fmt)

    def submit_prepared_async(self, prepared: "PreparedPredict") -> "asyncio.Future | None":
        """On an event loop, with dynamic batching: queues the call and returns an asyncio
        future of its outputs (no thread waits on it); None when the call must run via
        `run_prepared` instead."""
        submit = getattr(self._runner, "submit_async", None)
        if submit is None:
            return None
        return submit(prepared.servable, prepared.signature, prepared.inputs, prepared.output_filter)

    def run_prepared(self, prepared: "PreparedPredict") -> dict[str, np.ndarray]:
        """REST predict, second half: the signature call (the part worth a worker thread)."""
        return self._run(prepared.servable, prepared.signature, prepared.inputs, prepared.output_filter)

    def predict_json(
        self, name: str, version: int | None, label: str | None, doc: Mapping[str, Any]
    ) -> bytes:
        """REST predict: parsed JSON body -> response body bytes."""
        prepared = self.prepare_predict_json(name, version, label, doc)
        return protocol.predict_response_json(self.run_prepared(prepared), prepared.fmt)

    # ---- Classify / Regress ----------------------------------------------------------------

    def _method_signature(self, servable: Servable, signature_name: str, method: str) -> Signature:
        key = signature_name or DEFAULT_SIGNATURE
        definition = servable.signature_defs.get(key)
        if definition is None or key not in servable.signatures:
            raise invalid(f"No signature was found with the name: {key}")
        if definition.method_name != method:
            kind = "classification" if method == CLASSIFY_METHOD else "regression"
            raise invalid(
                f"Expected {kind} signature method_name to be {method}. Was: "
                f"{definition.method_name}"
            )
        signature = servable.signatures[key]
        if len(signature.input_specs) != 1:
            raise invalid("Expected one input Tensor.")
        return signature

    def _run_examples(
        self, servable: Servable, signature: Signature, model_input: input_pb2.Input
    ) -> tuple[int, dict[str, np.ndarray]]:
        records = serialized_examples(model_input)
        (input_name,) = signature.input_specs
        outputs = self._run(servable, signature, {input_name: records})
        return len(records), outputs

    def classify_on(
        self, servable: Servable, signature_name: str, model_input: input_pb2.Input
    ) -> tuple[str, classification_pb2.ClassificationResult]:
        signature = self._method_signature(servable, signature_name, CLASSIFY_METHOD)
        outputs_def = signature.definition.outputs
        if "classes" not in outputs_def and "scores" not in outputs_def:
            raise invalid(
                'Expected classification signature outputs to contain at least one of "classes" '
                'or "scores"'
            )
        batch, outputs = self._run_examples(servable, signature, model_input)
        classes = outputs.get("classes")
        scores = outputs.get("scores")
        for name, array in (("classes", classes), ("scores", scores)):
            if array is None:
                continue
            if array.ndim == 1:
                array = array.reshape(-1, 1)
            if array.ndim != 2:
                raise invalid(
                    f"Expected Tensor shape: [batch_size num_classes] but got {list(array.shape)}"
                )
            if array.shape[0] != batch:
                raise invalid(
                    f"Input batch size did not match output batch size: {batch} vs. {array.shape[0]}"
                )
            if name == "classes":
                classes = array
            else:
                scores = array
        if classes is not None and scores is not None and classes.shape != scores.shape:
            raise invalid(
                f"Tensors class and score should match in shape: {list(classes.shape)} vs. "
                f"{list(scores.shape)}"
            )
        result = classification_pb2.ClassificationResult()
        num_classes = (classes if classes is not None else scores).shape[1]
        for row in range(batch):
            classifications = result.classifications.add()
            for column in range(num_classes):
                cls = classifications.classes.add()
                if classes is not None:
                    label = classes[row, column]
                    cls.label = label.decode("utf-8", errors="replace") if isinstance(label, bytes) else str(label)
                if scores is not None:
                    cls.score = float(scores[row, column])
        return signature.name, result

    def regress_on(
        self, servable: Servable, signature_name: str, model_input: input_pb2.Input
    ) -> tuple[str, regression_pb2.RegressionResult]:
        signature = self._method_signature(servable, signature_name, REGRESS_METHOD)
        if "outputs" not in signature.definition.outputs:
            raise invalid('Expected regression signature outputs to contain "outputs"')
        batch, outputs = self._run_examples(servable, signature, model_input)
        values = outputs["outputs"]
        if values.ndim == 2 and values.shape[1] == 1:
            values = values.reshape(-1)
        if values.ndim != 1:
            raise invalid(
                "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                f"{list(values.shape)}"
            )
        if values.shape[0] != batch:
            raise invalid(
                f"Input batch size did not match output batch size: {batch} vs. {values.shape[0]}"
            )
        result = regression_pb2.RegressionResult()
        for value in values.astype(np.float32).tolist():
            result.regressions.add(value=value)
        return signature.name, result

    def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        servable = self.servable_for(request.model_spec)
        name, result = self.classify_on(servable, request.model_spec.signature_name, request.input)
        return classification_pb2.ClassificationResponse(
            model_spec=_response_spec(servable, name), result=result
        )

    def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        servable = self.servable_for(request.model_spec)
        name, result = self.regress_on(servable, request.model_spec.signature_name, request.input)
        return regression_pb2.RegressionResponse(
            model_spec=_response_spec(servable, name), result=result
        )

    # ---- MultiInference --------------------------------------------------------------------

    def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        if not request.tasks:
            raise invalid("Tasks is empty.")
        first = request.tasks[0].model_spec
        servable = self.servable_for(first)
        return self.multi_inference_on(servable, request)

    def multi_inference_on(
        self, servable: Servable, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        seen: set[str] = set()
        for task in request.tasks:
            if task.model_spec.name != request.tasks[0].model_spec.name:
                raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same model name.")
            signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if signature_name in seen:
                raise invalid(f"Duplicate evaluation of signature: {signature_name}")
            seen.add(signature_name)
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise invalid(f"Unsupported signature method_name: {task.method_name}")
        response = inference_pb2.MultiInferenceResponse()
        for task in request.tasks:
            result = response.results.add()
            if task.method_name == CLASSIFY_METHOD:
                name, classification = self.classify_on(servable, task.model_spec.signature_name, request.input)
                result.classification_result.CopyFrom(classification)
            else:
                name, regression = self.regress_on(servable, task.model_spec.signature_name, request.input)
                result.regression_result.CopyFrom(regression)
            result.model_spec.CopyFrom(_response_spec(servable, name))
        return response

    # ---- Metadata / Status / Reload --------------------------------------------------------

    def get_model_metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.metadata_field:
            raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise invalid(f"Metadata field {field} is not supported")
        servable = self.servable_for(request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(definition)
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def get_model_status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        version, label = _spec_version(request.model_spec)
        if not request.model_spec.name:
            raise invalid("Missing model name in request.")
        states = self.store.version_status(request.model_spec.name, version, label)
        response = get_model_status_pb2.GetModelStatusResponse()
        for number, status in states:
            entry = response.model_version_status.add(version=number, state=status.state)
            entry.status.error_code = int(status.error_code)
            entry.status.error_message = status.error_message
        return response

    def reload_config(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        # Like model_service_impl.cc: a failed reload is a gRPC error (status code + message).
        self.store.reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()

    # ---- Warmup ----------------------------------------------------------------------------

    def warmup(self, servable: Servable, iterations: int = 1) -> int:
        """Replays assets.extra/tf_serving_warmup_requests against a not-yet-served version.

        Any failing record fails the load, as in TF Serving. Returns the records replayed.
        """
        path = Path(servable.path) / WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf

        count = 0
        for record in tf.compat.v1.io.tf_record_iterator(str(path)):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise invalid(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            kind = log.WhichOneof("log_type")
            for _ in range(max(1, iterations)):
                if kind == "predict_log":
                    self.predict_on(servable, log.predict_log.request)
                elif kind == "classify_log":
                    request = log.classify_log.request
                    self.classify_on(servable, request.model_spec.signature_name, request.input)
                elif kind == "regress_log":
                    request = log.regress_log.request
                    self.regress_on(servable, request.model_spec.signature_name, request.input)
                elif kind == "multi_inference_log":
                    self.multi_inference_on(servable, log.multi_inference_log.request)
                else:
                    raise invalid(f"Unsupported log_type for warmup: {kind}")
        logger.info("warmed up %s version %d with %d records", servable.name, servable.version, count)
        return count


__all__ = ["ServingCore", "PreparedPredict", "Runner", "serialized_examples", "WARMUP_FILE"]
