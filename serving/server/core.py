"""The one serving core: TF Serving's PredictionService and ModelService, one predict path.

REST (`serving.server.rest`) and gRPC (`serving.server.grpc_api`) are thin adapters over this
module: they convert their wire format into a `PredictCall` (arrays for one signature of one
loaded version) and run it through `predict` (blocking) or `predict_async` (on the event loop),
the one place that chooses between the batcher and a plain signature call. Classify, Regress,
MultiInference, metadata, status and reload take and return tensorflow_serving.apis protos.
Everything raises `ServingError` with TF Serving's status code and message.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Protocol

import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_management_pb2,
    model_pb2,
    regression_pb2,
)

from serving.errors import Code, ServingError, invalid
from serving.saved_model import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD, WARMUP_FILE, iter_warmup_logs
from serving.server import grpc_converters
from serving.server.grpc_converters import response_spec
from serving.server.model_store import ModelStore
from serving.server.servable import PredictCall, Servable, Signature

logger = logging.getLogger(__name__)

MAX_WARMUP_RECORDS = 1000

Inputs = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]
Names = tuple[str, ...]
# `await run_blocking(fn, *args)` runs fn off the event loop; `await run_blocking(future)` waits
# for an asyncio future already running (the batcher's). Both under the transport's deadline.
RunBlocking = Callable[..., Awaitable[Any]]


async def within_deadline(future: "asyncio.Future[Any]", timeout_seconds: float | None) -> Any:
    """Awaits `future`; past the deadline cancels it and raises DEADLINE_EXCEEDED. A timer
    handle instead of `asyncio.wait_for`, which costs a task and two futures per request."""
    if timeout_seconds is None:
        return await future
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    timer = asyncio.get_running_loop().call_later(timeout_seconds, expire)
    try:
        return await future
    except asyncio.CancelledError:
        if expired:
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        raise
    finally:
        timer.cancel()


def make_run_blocking(executor: Executor, timeout_seconds: float | None) -> RunBlocking:
    """`await run_blocking(fn, *args)` runs fn in `executor`; `await run_blocking(future)` waits
    for an asyncio future already running (the batcher's). Past the deadline: DEADLINE_EXCEEDED."""

    async def run_blocking(function: Callable[..., Any] | asyncio.Future, *args: Any) -> Any:
        if isinstance(function, asyncio.Future):
            future = function
        else:
            future = asyncio.get_running_loop().run_in_executor(executor, function, *args)
        return await within_deadline(future, timeout_seconds)

    return run_blocking


class Batcher(Protocol):
    """What the core needs from a batcher (`serving.server.batching.DynamicBatcher`): a blocking
    call merged with concurrent ones, and a queued one for the event loop (None: not batchable)."""

    def __call__(self, servable: Servable, signature: Signature, inputs: Inputs, output_filter: Names = ()) -> Outputs: ...

    def submit_async(
        self, servable: Servable, signature: Signature, inputs: Inputs, output_filter: Names = ()
    ) -> "asyncio.Future[Outputs] | None": ...


def _spec_version(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _check_batch(array: np.ndarray, batch: int) -> None:
    if array.shape[0] != batch:
        raise invalid(f"Input batch size did not match output batch size: {batch} vs. {array.shape[0]}")


def _per_example(array: np.ndarray | None, batch: int) -> np.ndarray | None:
    """A classify output (`classes` or `scores`) as [batch_size, num_classes]; [batch_size] is one class."""
    if array is None:
        return None
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise invalid(f"Expected Tensor shape: [batch_size num_classes] but got {list(array.shape)}")
    _check_batch(array, batch)
    return array


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
    return np.array(records, dtype=object)


class ServingCore:
    """Predict/Classify/Regress/MultiInference/GetModelMetadata/GetModelStatus/ReloadConfig."""

    def __init__(self, store: ModelStore, batcher: Batcher | None = None) -> None:
        self.store = store
        self._batcher = batcher

    # ---- resolution ------------------------------------------------------------------------

    def servable_for(self, spec: model_pb2.ModelSpec) -> Servable:
        version, label = _spec_version(spec)
        return self.store.get_servable(spec.name, version, label)

    # ---- Predict: the one path every signature call takes ----------------------------------

    def predict(self, call: PredictCall) -> dict[str, np.ndarray]:
        """Runs the call on this thread (through the batcher when batching is on)."""
        if self._batcher is None:
            return call.servable.run(call.signature, call.inputs, call.output_filter)
        return self._batcher(call.servable, call.signature, call.inputs, call.output_filter)

    async def predict_async(self, call: PredictCall, run_blocking: RunBlocking) -> dict[str, np.ndarray]:
        """`predict` for the event loop: the batcher's future (no thread waits on it), else
        the blocking call in a worker thread."""
        if self._batcher is not None:
            future = self._batcher.submit_async(call.servable, call.signature, call.inputs, call.output_filter)
            if future is not None:
                return await run_blocking(future)
        return await run_blocking(self.predict, call)

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
        outputs = self.predict(PredictCall(servable, signature, {input_name: records}))
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
        classes = _per_example(outputs.get("classes"), batch)
        scores = _per_example(outputs.get("scores"), batch)
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
        _check_batch(values, batch)
        result = regression_pb2.RegressionResult()
        for value in values.astype(np.float32).tolist():
            result.regressions.add(value=value)
        return signature.name, result

    def classify(
        self, request: classification_pb2.ClassificationRequest
    ) -> classification_pb2.ClassificationResponse:
        servable = self.servable_for(request.model_spec)
        name, result = self.classify_on(servable, request.model_spec.signature_name, request.input)
        return classification_pb2.ClassificationResponse(model_spec=response_spec(servable, name), result=result)

    def regress(self, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
        servable = self.servable_for(request.model_spec)
        name, result = self.regress_on(servable, request.model_spec.signature_name, request.input)
        return regression_pb2.RegressionResponse(model_spec=response_spec(servable, name), result=result)

    # ---- MultiInference --------------------------------------------------------------------

    def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        if not request.tasks:
            raise invalid("Tasks is empty.")
        return self.multi_inference_on(self.servable_for(request.tasks[0].model_spec), request)

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
            result.model_spec.CopyFrom(response_spec(servable, name))
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
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.store.version_status(request.model_spec.name, version, label):
            entry = response.model_version_status.add(
                version=status.version, state=get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
            )
            entry.status.error_code = Code[status.error_code]
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
        count = 0
        for log in iter_warmup_logs(servable.path):
            count += 1
            if count > MAX_WARMUP_RECORDS:
                raise invalid(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
            kind = log.WhichOneof("log_type")
            for _ in range(max(1, iterations)):
                if kind == "predict_log":
                    self.predict(grpc_converters.predict_call(log.predict_log.request, servable))
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

