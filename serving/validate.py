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
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import grpc
import numpy as np

logger = logging.getLogger(__name__)

# Names of the ways to run a local model server.
SERVER_AUTO = "auto"
SERVER_BINARY = "tensorflow_model_server"
SERVER_EMBEDDED = "embedded"
SERVER_CHOICES = (SERVER_AUTO, SERVER_BINARY, SERVER_EMBEDDED)

SERVING_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"

_DT_STRING = 7
_MAX_REASON_CHARS = 600
_LOG_TAIL_LINES = 30
_GRPC_OPTIONS = (
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
# Status codes that say "the server was not there", not "the model is wrong": worth a retry.
_TRANSIENT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# A tensorflow_serving ClassificationRequest, RegressionRequest or PredictRequest.
Request = Any


def shorten(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    """`text` on one line, cut to `limit` characters (reasons go into properties and summaries)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Errors: each carries a one-line reason meant for a run summary.


class ValidationError(Exception):
    """The model (or the server running it) failed validation; `str()` is the reason."""

    retryable = False


class ServerStartError(ValidationError):
    """The model server process could not be started or exited before it served.

    Not retried: tensorflow_model_server exits when its initial model fails to load, and the
    same model fails the same way again.
    """


class ModelLoadError(ValidationError):
    """The server reported that the model failed to load (GetModelStatus state END)."""


class LoadTimeout(ValidationError):
    """The model was not AVAILABLE before the deadline."""

    retryable = True


class RequestFailed(ValidationError):
    """A validation request was answered with an error."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UnservableModel(ValidationError):
    """The SavedModel on disk cannot be served at all (missing graph, no signatures, ...)."""


# --------------------------------------------------------------------------------------------
# Reading signatures without loading the model.


def read_signature_defs(saved_model_dir: str | os.PathLike[str], tags: Sequence[str] = (SERVING_TAG,)) -> dict:
    """The SignatureDefs of the MetaGraph carrying all `tags`, read from saved_model.pb.

    Raises UnservableModel when the graph file is missing or unreadable, or no MetaGraph has the
    tags. An empty dict means the model has no signatures (nothing a server could answer).
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(saved_model_dir)
    graph = path / "saved_model.pb"
    if not graph.is_file():
        raise UnservableModel(f"{path} is not a SavedModel: expected {graph.name} in it")
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(graph.read_bytes())
    except Exception as error:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeError
        raise UnservableModel(f"{graph} is not a valid SavedModel graph: {error}") from None
    wanted = set(tags)
    for meta_graph in saved_model.meta_graphs:
        if wanted.issubset(meta_graph.meta_info_def.tags):
            # `__saved_model_init_op` (and any `__*` key) is an internal op, not a signature.
            return {
                name: meta_graph.signature_def[name]
                for name in sorted(meta_graph.signature_def)
                if not name.startswith("__")
            }
    found = [list(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise UnservableModel(f"{path} has no MetaGraph tagged {sorted(wanted)}; it has {found}")


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
    shape = spec.tensor_shape
    return (
        spec.dtype == _DT_STRING
        and not shape.unknown_rank
        and len(shape.dim) == 1
        and shape.dim[0].size == -1
    )


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
    from serving import protocol

    dtype = np.dtype(object) if info.dtype == _DT_STRING else protocol.numpy_dtype(info.dtype)
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
    if info.dtype == _DT_STRING:
        return np.full(shape, b"", dtype=object), False
    return np.zeros(shape, dtype=dtype), False


def _named_tensor_request(model_name: str, signature_name: str, signature_def, example):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
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
    from tensorflow.core.example import example_pb2
    from tensorflow_serving.apis import classification_pb2, predict_pb2, regression_pb2

    explicit = bool(signature_names)
    names = list(signature_names) if explicit else list(signature_defs)
    for name in names:
        if name not in signature_defs:
            available = ", ".join(repr(n) for n in signature_defs) or "none"
            raise UnservableModel(f"the model has no signature {name!r}; it has: {available}")
    parsed = []
    for record in examples:
        example = example_pb2.Example()
        example.ParseFromString(record)
        parsed.append(example)

    planned: list[PlannedRequest] = []
    skipped: list[str] = []
    for name in names:
        signature_def = signature_defs[name]
        method = signature_def.method_name
        if method in (CLASSIFY_METHOD, REGRESS_METHOD):
            kind = "classify" if method == CLASSIFY_METHOD else "regress"
            if not parsed:
                if explicit:
                    raise ValueError(
                        f"signature {name!r} ({method}) takes tf.Examples, but no examples were "
                        "given: pass eval examples or leave it out of signature_names"
                    )
                skipped.append(f"{name!r}: {kind} signature needs tf.Examples and none were given")
                continue
            for example in parsed:
                request = (classification_pb2.ClassificationRequest() if kind == "classify"
                           else regression_pb2.RegressionRequest())
                request.model_spec.name = model_name
                request.model_spec.signature_name = name
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
                raise ValueError(
                    f"signature {name!r} takes serialized records, but no examples were given"
                )
            import tensorflow as tf

            key = next(iter(signature_def.inputs))
            for record in examples:
                request = predict_pb2.PredictRequest()
                request.model_spec.name = model_name
                request.model_spec.signature_name = name
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
# Running a model server process.


def free_port() -> int:
    """An unused loopback TCP port (the OS picks; a tiny race with other binders is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(server: str = SERVER_AUTO) -> tuple[list[str], str]:
    """(argv prefix, description) of the model server to run.

    `auto` prefers the real `tensorflow_model_server` on PATH and falls back to the embedded
    server run with this interpreter.
    """
    if server not in SERVER_CHOICES:
        raise ValueError(f"server {server!r} is not one of {', '.join(SERVER_CHOICES)}")
    if server in (SERVER_AUTO, SERVER_BINARY):
        binary = shutil.which("tensorflow_model_server")
        if binary:
            return [binary], f"tensorflow_model_server ({binary})"
        if server == SERVER_BINARY:
            raise ServerStartError(
                "tensorflow_model_server is not on PATH; install TF Serving or use server='embedded'"
            )
    return [sys.executable, "-m", "serving.server"], "embedded server (python -m serving.server)"


class ModelServerProcess:
    """A TF Serving-compatible server process on free loopback ports, its output in a log file.

    Give either `model_name` + `model_base_path` or `model_config_file`. Use as a context manager
    or call start() / stop(); stop() is safe to call more than once and after a failed start().
    """

    def __init__(
        self,
        *,
        model_name: str | None = None,
        model_base_path: str | os.PathLike[str] | None = None,
        model_config_file: str | os.PathLike[str] | None = None,
        server: str = SERVER_AUTO,
        grpc_port: int | None = None,
        rest_port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if model_config_file is None and not (model_name and model_base_path):
            raise ValueError("give model_name and model_base_path, or model_config_file")
        self._command, self.description = server_command(server)
        self.grpc_port = grpc_port or free_port()
        self.rest_port = rest_port or free_port()
        while self.rest_port == self.grpc_port:
            self.rest_port = free_port()
        self._args = [f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}"]
        if model_config_file is not None:
            self._args.append(f"--model_config_file={model_config_file}")
        else:
            self._args += [f"--model_name={model_name}", f"--model_base_path={model_base_path}"]
        self._args += list(extra_args)
        self._process: subprocess.Popen | None = None
        self._log_dir: str | None = None
        self._log_handle = None
        self._final_logs: str | None = None
        self.started_at: float | None = None

    def __repr__(self) -> str:
        return f"ModelServerProcess({self.description}, grpc={self.grpc_endpoint})"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def argv(self) -> list[str]:
        return [*self._command, *self._args]

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"{self!r} was already started; create a new one to restart")
        self._log_dir = tempfile.mkdtemp(prefix="model-server-log-")
        self._log_handle = open(os.path.join(self._log_dir, "server.log"), "wb")
        env = dict(os.environ)
        env.setdefault("TF_USE_LEGACY_KERAS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        logger.info("starting %s: %s", self.description, " ".join(self.argv))
        self.started_at = time.monotonic()
        try:
            self._process = subprocess.Popen(
                self.argv,
                stdout=self._log_handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # so stop() can signal the server and its children
            )
        except OSError as error:
            raise ServerStartError(f"could not run {self.argv[0]}: {error}") from error

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit code."""
        return None if self._process is None else self._process.poll()

    def is_alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait_until_serving(self, deadline: float) -> float:
        """Waits (until `deadline`, a time.time() value) for the gRPC port; returns seconds waited."""
        if self._process is None:
            raise RuntimeError("start() the server first")
        begin = time.monotonic()
        while time.time() < deadline:
            code = self._process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.description} exited with code {code} before serving: {self.failure_lines()}"
                )
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.5):
                    return time.monotonic() - begin
            time.sleep(0.2)
        raise LoadTimeout(
            f"{self.description} did not open port {self.grpc_port} within the deadline; "
            f"last log lines: {shorten(self.log_tail(8))}"
        )

    def logs(self) -> str:
        if self._final_logs is not None:
            return self._final_logs
        if self._log_dir is None:
            return ""
        with contextlib.suppress(OSError):
            return Path(self._log_dir, "server.log").read_text(errors="replace")
        return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def failure_lines(self, limit: int = _MAX_REASON_CHARS) -> str:
        """The log's error lines (else its last lines), on one line: why the server gave up."""
        lines = self.logs().splitlines()
        errors = [line for line in lines if any(w in line.lower() for w in ("error", "failed", "fatal"))]
        return shorten(" | ".join((errors or lines)[-4:]) or "no log output", limit)

    def stop(self, timeout: float = 10.0) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop on SIGTERM in %.0f s; killing it", self.description, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
            self._final_logs = self.logs() if self._final_logs is None else self._final_logs
            # Read once more now that the file is complete.
            if self._log_dir:
                with contextlib.suppress(OSError):
                    self._final_logs = Path(self._log_dir, "server.log").read_text(errors="replace")
                shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> "ModelServerProcess":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Talking to a server: readiness and requests.


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error_code: int
    error_message: str


def get_model_status(
    endpoint: str, model_name: str, *, version: int | None = None, timeout: float = 5.0,
    channel: grpc.Channel | None = None,
) -> list[VersionStatus]:
    """ModelService.GetModelStatus over gRPC; raises grpc.RpcError as the server answered."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    owned = channel is None
    channel = channel or grpc.insecure_channel(endpoint, options=_GRPC_OPTIONS)
    try:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model_name
        if version is not None:
            request.model_spec.version.value = version
        response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=timeout)
    finally:
        if owned:
            channel.close()
    state_name = get_model_status_pb2.ModelVersionStatus.State.Name
    return [
        VersionStatus(
            version=s.version,
            state=state_name(s.state),
            error_code=int(s.status.error_code),
            error_message=s.status.error_message,
        )
        for s in response.model_version_status
    ]


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
    """Polls GetModelStatus until the model (or `version`) is AVAILABLE; returns seconds waited.

    Like TFX's client, with no `version` every listed version must be AVAILABLE and any END is a
    failure. Raises ModelLoadError with the server's error message when a version ends,
    ServerStartError when `is_alive()` turns false, LoadTimeout at `deadline` (time.time()).
    """
    begin = time.monotonic()
    last = "no answer yet"
    with grpc.insecure_channel(endpoint, options=_GRPC_OPTIONS) as channel:
        while True:
            try:
                statuses = get_model_status(endpoint, model_name, version=version, channel=channel,
                                            timeout=max(0.5, min(5.0, deadline - time.time())))
            except grpc.RpcError as error:
                statuses = []
                last = f"GetModelStatus: {error.code().name}: {shorten(error.details() or '', 200)}"
            if statuses:
                last = ", ".join(f"version {s.version} {s.state}" for s in statuses)
                ended = [s for s in statuses if s.state == "END"]
                if ended:
                    s = ended[0]
                    message = s.error_message or "no error message (the version was unloaded)"
                    raise ModelLoadError(f"version {s.version} of {model_name!r} failed to load: {shorten(message)}")
                if all(s.state == "AVAILABLE" for s in statuses):
                    return time.monotonic() - begin
            if is_alive is not None and not is_alive():
                detail = describe_exit() if describe_exit else ""
                raise ServerStartError(f"model server exited before {model_name!r} became AVAILABLE. {detail}".strip())
            if time.time() >= deadline:
                raise LoadTimeout(f"{model_name!r} was not AVAILABLE before the deadline; last status: {last}")
            time.sleep(poll_interval)


@dataclass(frozen=True)
class QueryResult:
    seconds: float
    count: int
    max_seconds: float


def send_requests(endpoint: str, requests: Sequence[PlannedRequest], *, timeout: float = 30.0) -> QueryResult:
    """Sends each request with a deadline; raises RequestFailed naming the first one that fails."""
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    total = 0.0
    slowest = 0.0
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
            elapsed = time.monotonic() - begin
            total += elapsed
            slowest = max(slowest, elapsed)
    return QueryResult(seconds=total, count=len(requests), max_seconds=slowest)


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
    request_timeout: float = 30.0,
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
        start_seconds = load_seconds = None
        try:
            process.start()
            start_seconds = process.wait_until_serving(deadline)
            load_seconds = wait_until_available(
                process.grpc_endpoint, model_name, deadline=deadline, is_alive=process.is_alive,
                describe_exit=lambda: f"exit code {process.exit_code()}: {process.failure_lines()}",
            )
            result = send_requests(process.grpc_endpoint, plan.requests, timeout=request_timeout)
        except ValidationError as error:
            process.stop()
            logger.error("validation of %s failed: %s\nserver log tail:\n%s", model_dir, error, process.log_tail())
            return ValidationReport(
                ok=False, reason=str(error), server=process.description,
                server_start_seconds=start_seconds, load_seconds=load_seconds,
                requests=tuple(r.describe() for r in plan.requests), skipped=plan.skipped,
                log_tail=process.log_tail(),
            )
        finally:
            process.stop()
    return ValidationReport(
        ok=True, reason="", server=process.description, server_start_seconds=start_seconds,
        load_seconds=load_seconds, query_seconds=result.seconds,
        requests=tuple(r.describe() for r in plan.requests), skipped=plan.skipped,
    )
