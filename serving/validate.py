"""Prove a SavedModel is servable: load it in a real model-server process and query it.

The TFX-free core shared by the InfraValidator (`components/infra_validator`) and
`python -m serving.push`. A model server here is a separate process speaking TF Serving's gRPC
API: the `tensorflow_model_server` binary when it is on PATH, else our embedded server
(`python -m serving.server`). Readiness follows TFX's TensorFlowServingClient (all versions
AVAILABLE = ready, any END = failed) but keeps the server's own words: the error message
GetModelStatus reports for a version that failed to load, which request failed with which
status, and how long each step took.

Requests are built the way TFX's request_builder builds them (Classify/Regress from tf.Examples,
Predict from serialized tf.Examples) plus Predict requests for signatures that take named tensors
(Keras-style), built from the signature's own inputs, filled from a tf.Example feature of the same
name when its size fits and with zeros otherwise. That closes TFX's "LOAD_AND_QUERY needs a
serialized tf.Example signature" limitation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import grpc
import numpy as np

from serving.errors import (
    LoadTimeout,
    ModelLoadError,
    RequestFailed,
    ServerStartError,
    UnservableModel,
    ValidationError,
    shorten,
)
from serving.process import SERVER_AUTO, ModelServerProcess, server_command
from serving.saved_model import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    DT_STRING,
    PREDICT_METHOD,
    REGRESS_METHOD,
    numpy_dtype,
    read_signature_defs,
    tensor_dims,
)

logger = logging.getLogger(__name__)

_GRPC_OPTIONS = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
# Status codes that say "the server was not there", not "the model is wrong": worth a retry.
_TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# A tensorflow_serving ClassificationRequest, RegressionRequest or PredictRequest.
Request = Any


# --------------------------------------------------------------------------------------------
# Which signatures a server could answer.


def require_signatures(signature_defs: Mapping[str, object], model_dir: str | os.PathLike[str]) -> None:
    """Raises UnservableModel when the model exposes no signature a server could call."""
    if not signature_defs:
        raise UnservableModel(
            f"{model_dir} has no serving signatures: a model server would load it but could answer "
            "no request; export it with signatures (e.g. tf.saved_model.save(..., signatures=...))"
        )


# --------------------------------------------------------------------------------------------
# Building requests.


@dataclass(frozen=True)
class PlannedRequest:
    """One validation request and a description that names it in a failure reason."""

    request: Request
    kind: str  # "classify", "regress" or "predict"
    signature_name: str
    source: str  # "eval example", "serialized eval example" or "signature inputs"

    def describe(self) -> str:
        return f"{self.kind.capitalize()} on signature {self.signature_name!r} from {self.source}"


@dataclass(frozen=True)
class RequestPlan:
    requests: tuple[PlannedRequest, ...]
    skipped: tuple[str, ...] = ()  # why a signature was not queried, one line each


def _is_serialized_input(signature_def) -> bool:
    """TFX's rule: a single DT_STRING input of shape [None] takes serialized records."""
    if len(signature_def.inputs) != 1:
        return False
    spec = next(iter(signature_def.inputs.values()))
    return spec.dtype == DT_STRING and tensor_dims(spec) == (-1,)


def _feature_values(example, name: str) -> list | None:
    feature = example.features.feature.get(name)
    if feature is None:
        return None
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else None


def input_row(key: str, info, example) -> tuple[np.ndarray, bool]:
    """A one-row array for signature input `key`, from the example's same-named feature if it fits.

    Returns (array, came_from_example). Unknown dimensions become 1 for a zero-filled row; one
    unknown inner dimension is inferred from the feature's length.
    """
    dtype = numpy_dtype(info.dtype)
    dims = [1] if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    values = _feature_values(example, key) if example is not None else None
    if values and dims:
        inner = list(dims[1:])
        unknown = [i for i, d in enumerate(inner) if d == -1]
        known = math.prod(d for d in inner if d != -1)
        if len(unknown) <= 1 and known and len(values) % known == 0:
            if unknown:
                inner[unknown[0]] = len(values) // known
            if math.prod(inner) == len(values):
                with contextlib.suppress(ValueError, TypeError, OverflowError):
                    return np.array(values, dtype=dtype).reshape([1, *inner]), True
    shape = [1 if d == -1 else d for d in dims]
    if info.dtype == DT_STRING:
        return np.full(shape, b"", dtype=object), False
    return np.zeros(shape, dtype=dtype), False


def parse_examples(examples: Sequence[bytes]) -> list:
    """Serialized tf.Examples parsed."""
    from tensorflow.core.example import example_pb2

    return [example_pb2.Example.FromString(record) for record in examples]


def signature_inputs(signature_def, examples: Sequence[bytes]) -> dict[str, np.ndarray]:
    """One row per example for each input of `signature_def` (one zero row when there are none):
    the serialized examples themselves for a single DT_STRING [None] input (TFX's serving_default
    convention), else each input from the examples' feature of the same name (`input_row`)."""
    if examples and _is_serialized_input(signature_def):
        key = next(iter(signature_def.inputs))
        return {key: np.array(list(examples), dtype=object)}
    rows: dict[str, list[np.ndarray]] = {key: [] for key in signature_def.inputs}
    for example in parse_examples(examples) or [None]:
        for key, info in signature_def.inputs.items():
            rows[key].append(input_row(key, info, example)[0])
    return {key: np.concatenate(values, axis=0) for key, values in rows.items()}


def _named_tensor_request(model_name: str, signature_name: str, signature_def, example):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest(model_spec={"name": model_name, "signature_name": signature_name})
    from_example = False
    for key in sorted(signature_def.inputs):
        info = signature_def.inputs[key]
        # Features are matched by input key, the name clients use (not the graph tensor name).
        array, used = input_row(key, info, example)
        from_example |= used
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array, dtype=tf.dtypes.as_dtype(info.dtype)))
    return request, from_example


def build_requests(
    signature_defs: Mapping[str, object],
    *,
    model_name: str,
    examples: Sequence[bytes] = (),
    signature_names: Sequence[str] = (),
) -> RequestPlan:
    """Validation requests for `signature_names`, or for every signature that can be queried.

    - classify / regress signatures: one request per serialized tf.Example in `examples`
      (exactly TFX's request_builder); skipped when there are no examples.
    - predict signatures with one DT_STRING [None] input: the examples as serialized records
      (TFX's rule), only when named in `signature_names`: such an input may as well take
      encoded images, so it is never guessed.
    - other predict signatures (named tensors): one request per example, each input filled from
      the example's feature of the same name when its size fits the input shape, else zeros;
      one zero-filled request when there are no examples.
    - with no names and nothing else to query, a `serving_default` taking one string input gets
      the serialized examples (TFX's default request).

    Raises UnservableModel when a named signature is missing and ValueError when a named
    signature cannot be queried without examples.
    """
    from tensorflow_serving.apis import classification_pb2, predict_pb2, regression_pb2

    explicit = bool(signature_names)
    names = list(signature_names) if explicit else list(signature_defs)
    for name in names:
        if name not in signature_defs:
            available = ", ".join(repr(n) for n in signature_defs) or "none"
            raise UnservableModel(f"the model has no signature {name!r}; it has: {available}")
    parsed = parse_examples(examples)
    planned: list[PlannedRequest] = []
    skipped: list[str] = []
    for name in names:
        signature_def = signature_defs[name]
        method = signature_def.method_name
        spec = {"name": model_name, "signature_name": name}
        if method in (CLASSIFY_METHOD, REGRESS_METHOD):
            kind, request_class = (("classify", classification_pb2.ClassificationRequest) if method == CLASSIFY_METHOD
                                   else ("regress", regression_pb2.RegressionRequest))
            if not parsed:
                if explicit:
                    raise ValueError(
                        f"signature {name!r} ({method}) takes tf.Examples, but no examples were "
                        "given: pass eval examples or leave it out of signature_names"
                    )
                skipped.append(f"{name!r}: {kind} signature needs tf.Examples and none were given")
                continue
            for example in parsed:
                request = request_class(model_spec=spec)
                request.input.example_list.examples.append(example)
                planned.append(PlannedRequest(request, kind, name, "eval example"))
        elif method == PREDICT_METHOD and _is_serialized_input(signature_def):
            if not explicit:
                skipped.append(
                    f"{name!r}: its single string input may be serialized tf.Examples or encoded "
                    "bytes; name it in signature_names to query it with serialized eval examples"
                )
                continue
            if not examples:
                raise ValueError(f"signature {name!r} takes serialized records, but no examples were given")
            import tensorflow as tf

            key = next(iter(signature_def.inputs))
            for record in examples:
                request = predict_pb2.PredictRequest(model_spec=spec)
                request.inputs[key].CopyFrom(tf.make_tensor_proto([record]))
                planned.append(PlannedRequest(request, "predict", name, "serialized eval example"))
        elif method == PREDICT_METHOD or not method:
            for example in parsed or [None]:
                request, from_example = _named_tensor_request(model_name, name, signature_def, example)
                source = "eval example features" if from_example else "signature inputs"
                planned.append(PlannedRequest(request, "predict", name, source))
        else:
            skipped.append(f"{name!r}: unknown method {method!r}")
    default = signature_defs.get(DEFAULT_SIGNATURE)
    if not planned and not explicit and examples and default is not None and _is_serialized_input(default):
        # Nothing else to query: do what TFX does by default, serialized examples to serving_default.
        skipped = [line for line in skipped if not line.startswith(f"{DEFAULT_SIGNATURE!r}:")]
        return RequestPlan(
            build_requests(signature_defs, model_name=model_name, examples=examples,
                           signature_names=[DEFAULT_SIGNATURE]).requests,
            tuple(skipped),
        )
    return RequestPlan(tuple(planned), tuple(skipped))


# --------------------------------------------------------------------------------------------
# Talking to a server: readiness and requests.


def wait_until_available(
    endpoint: str,
    model_name: str,
    *,
    deadline: float,
    version: int | None = None,
    is_alive: Callable[[], bool] | None = None,
    describe_exit: Callable[[], str] | None = None,
    poll_interval: float = 0.5,
) -> float:
    """Waits (gRPC GetModelStatus, `ServingClient.wait_until_available`'s rule) until the model
    (or `version`) is AVAILABLE; returns seconds waited.

    Raises ModelLoadError with the server's error message when a version ends,
    ServerStartError when `is_alive()` turns false, LoadTimeout at `deadline` (time.time()).
    """
    from serving.client import ClientError, ServingClient

    begin = time.monotonic()
    timeout = min(5.0, max(0.5, deadline - time.time()))
    try:
        with ServingClient(endpoint, "grpc", model_name, version=version, timeout=timeout) as client:
            client.wait_until_available(max(0.0, deadline - time.time()), poll_interval, is_alive=is_alive)
    except ClientError as error:
        if error.code == "FAILED_PRECONDITION":
            raise ModelLoadError(f"{model_name!r}: {shorten(str(error))}") from None
        if error.code == "UNAVAILABLE" and is_alive is not None and not is_alive():
            detail = describe_exit() if describe_exit else ""
            raise ServerStartError(f"{error}. {detail}".strip()) from None
        raise LoadTimeout(shorten(str(error))) from None
    return time.monotonic() - begin


@dataclass(frozen=True)
class QueryResult:
    seconds: float
    count: int


def send_requests(endpoint: str, requests: Sequence[PlannedRequest], *, timeout: float = 30.0) -> QueryResult:
    """Sends each request with a deadline; raises RequestFailed naming the first one that fails."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    total = 0.0
    with grpc.insecure_channel(endpoint, options=_GRPC_OPTIONS) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        calls = {"classify": stub.Classify, "regress": stub.Regress, "predict": stub.Predict}
        for index, planned in enumerate(requests):
            begin = time.monotonic()
            try:
                calls[planned.kind](planned.request, timeout=timeout)
            except grpc.RpcError as error:
                code = error.code()
                raise RequestFailed(
                    f"request {index + 1}/{len(requests)} ({planned.describe()}) failed: "
                    f"{code.name}: {shorten(error.details() or '')}",
                    retryable=code in _TRANSIENT_CODES,
                ) from None
            total += time.monotonic() - begin
    return QueryResult(seconds=total, count=len(requests))


# --------------------------------------------------------------------------------------------
# The whole check for one SavedModel directory (used by `serving.push`).


@dataclass(frozen=True)
class ValidationReport:
    ok: bool
    reason: str
    server: str
    server_start_seconds: float | None = None
    load_seconds: float | None = None
    query_seconds: float | None = None
    requests: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    log_tail: str = ""

    def summary(self) -> str:
        if not self.ok:
            return f"NOT servable: {self.reason}"
        up = (self.server_start_seconds or 0.0) + (self.load_seconds or 0.0)
        text = f"servable: {self.server} was up with the model AVAILABLE after {up:.1f} s"
        if self.requests:
            return text + f", {len(self.requests)} request(s) answered in {self.query_seconds or 0.0:.3f} s"
        return text + "; no request could be built, so only loading was checked"


def validate_saved_model(
    model_dir: str | os.PathLike[str],
    *,
    model_name: str = "validation-model",
    server: str = SERVER_AUTO,
    examples: Sequence[bytes] = (),
    signature_names: Sequence[str] = (),
    max_loading_seconds: float = 120.0,
) -> ValidationReport:
    """Loads the SavedModel at `model_dir` in a fresh model-server process and queries it.

    The model is copied to `<tmp>/<model_name>/1` (the layout a server reads); nothing is
    written next to `model_dir`. Never raises for a bad model: the report says why.
    """
    _, description = server_command(server)
    try:
        signature_defs = read_signature_defs(model_dir)
        require_signatures(signature_defs, model_dir)
        plan = build_requests(signature_defs, model_name=model_name, examples=examples,
                              signature_names=signature_names)
    except (ValidationError, ValueError) as error:
        return ValidationReport(ok=False, reason=str(error), server=description)
    with tempfile.TemporaryDirectory(prefix="validate-") as base:
        version_dir = Path(base, model_name, "1")
        shutil.copytree(model_dir, version_dir)
        process = ModelServerProcess(model_name=model_name, model_base_path=version_dir.parent, server=server)
        deadline = time.time() + max_loading_seconds
        start_seconds = load_seconds = query_seconds = failure = None
        try:
            process.start()
            start_seconds = process.wait_until_serving(deadline)
            load_seconds = wait_until_available(
                process.grpc_endpoint, model_name, deadline=deadline, is_alive=process.is_alive,
                describe_exit=lambda: f"exit code {process.exit_code()}: {process.failure_lines()}",
            )
            query_seconds = send_requests(process.grpc_endpoint, plan.requests).seconds
        except ValidationError as error:
            failure = error
        finally:
            process.stop()
    log_tail = "" if failure is None else process.log_tail()
    if failure is not None:
        logger.error("validation of %s failed: %s\nserver log tail:\n%s", model_dir, failure, log_tail)
    return ValidationReport(
        ok=failure is None, reason="" if failure is None else str(failure), server=process.description,
        server_start_seconds=start_seconds, load_seconds=load_seconds, query_seconds=query_seconds,
        requests=tuple(r.describe() for r in plan.requests), skipped=plan.skipped, log_tail=log_tail,
    )
