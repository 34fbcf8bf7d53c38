"""Client for TF Serving's REST and gRPC APIs: the real `tensorflow_model_server` or `serving.server`.

One class, `ServingClient`, speaks either protocol with the same methods (predict, predict_images,
classify, regress, status, metadata, evaluate). Every call carries a deadline, gRPC channels allow
large messages, and every failure is one `ClientError` whose message says what went wrong (an
unreachable endpoint, TF Serving's own error text with its status, an exceeded deadline).
Class names always come from the model (its `class_name` output or the Classify API's labels).

`python -m serving.client {predict,evaluate,status,metadata} --endpoint HOST:PORT ...` is the CLI;
`evaluate` is TF Serving's `mnist_client` (`do_inference(hostport, concurrency, num_tests)`)
generalised to any labelled image set, both protocols and percentiles of latency.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import dataclasses
import functools
import io
import json
import logging
import os
import warnings
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence
from urllib.parse import quote

import numpy as np
import orjson
import urllib3

logger = logging.getLogger(__name__)

Protocol = Literal["rest", "grpc"]
ImageEncoding = Literal["auto", "pixels", "bytes"]

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_SIGNATURE = "serving_default"
# TF Serving's own server accepts INT32_MAX; the 4 MiB gRPC default is a client-side limit.
DEFAULT_MAX_MESSAGE_BYTES = 2**31 - 1
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Inverse of TF Serving's status -> HTTP code table (http_server.cc ToHTTPStatusCode).
_HTTP_TO_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "RESOURCE_EXHAUSTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_NUMPY_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_HALF": np.float16,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
    "DT_STRING": np.object_,
}


class ClientError(Exception):
    """Any failed call. `code` is a TF Serving / gRPC status name such as NOT_FOUND or UNAVAILABLE."""

    def __init__(self, message: str, *, code: str = "UNKNOWN", http_status: int | None = None):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A signature input or output: TF dtype name, shape (-1: unknown dim; None: unknown rank)."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    name: str
    version: int | None
    signatures: Mapping[str, SignatureSpec]

    def signature(self, name: str) -> SignatureSpec:
        if name not in self.signatures:
            raise ClientError(
                f"model {self.name!r} has no signature {name!r}; it has {sorted(self.signatures)}",
                code="INVALID_ARGUMENT",
            )
        return self.signatures[name]


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error_code: str
    error_message: str


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The classifier's answer for one row: what the model itself calls the class."""

    class_id: int
    class_name: str
    probability: float
    probabilities: tuple[float, ...]
    source: str = ""


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    examples: int
    correct: int
    failed_requests: int
    first_error: str | None
    requests: int
    wall_s: float
    latencies_ms: tuple[float, ...]
    concurrency: int
    batch_size: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0

    @property
    def error_rate(self) -> float:
        """As in mnist_client: wrong answers and failed requests both count as errors."""
        return 1.0 - self.accuracy

    @property
    def throughput(self) -> float:
        """Examples per second over the whole run."""
        return self.examples / self.wall_s if self.wall_s > 0 else 0.0

    def latency_percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


# --------------------------------------------------------------------------------------------
# Pure helpers (no network): endpoints, JSON <-> arrays, signature parsing, outputs, examples.


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT` or `http://HOST:PORT` -> (host, port); ClientError otherwise."""
    text = endpoint.strip()
    for scheme in ("http://", "https://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ClientError(
            f"endpoint {endpoint!r} is not HOST:PORT (for example localhost:8501 for REST, "
            "localhost:8500 for gRPC)",
            code="INVALID_ARGUMENT",
        )
    return host, int(port_text)


def model_path(model: str, version: int | None, label: str | None) -> str:
    """The REST path prefix `/v1/models/NAME[/versions/V|/labels/L]`."""
    path = f"/v1/models/{quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif label is not None:
        path += f"/labels/{quote(label, safe='')}"
    return path


def _b64_encode(value: Any) -> Any:
    if isinstance(value, list):
        return [_b64_encode(v) for v in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    return value


def _json_value(array: np.ndarray) -> Any:
    """A numpy array as TF Serving's JSON: bytes become {"b64": ...}, numbers stay numbers."""
    if array.dtype.kind in "SO":
        return _b64_encode(array.tolist())
    if array.dtype.kind == "U":
        return array.tolist()
    return array  # orjson writes numeric arrays itself (OPT_SERIALIZE_NUMPY), fast.


def _decode_b64(value: Any) -> Any:
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    return value


def json_to_array(value: Any, dtype: str) -> np.ndarray:
    """A JSON tensor value -> numpy array of the signature's dtype (strings as bytes objects)."""
    if dtype == "DT_STRING":
        return np.array(_decode_b64(value), dtype=object)
    return np.asarray(value, dtype=_NUMPY_DTYPES.get(dtype, np.float32))


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # TF Serving writes NaN / Infinity tokens, which orjson rejects and the json module accepts.
        return json.loads(body)


def _tensor_spec(name: str, info: Mapping[str, Any]) -> TensorSpec:
    shape_info = info.get("tensor_shape", {})
    shape: tuple[int, ...] | None
    if shape_info.get("unknown_rank"):
        shape = None
    else:
        shape = tuple(int(d.get("size", 0)) for d in shape_info.get("dim", []))
    return TensorSpec(name=name, dtype=str(info.get("dtype", "DT_INVALID")), shape=shape)


def parse_metadata(document: Mapping[str, Any]) -> ModelMetadata:
    """REST `GET .../metadata` JSON (also the gRPC response as a dict) -> ModelMetadata."""
    spec = document.get("model_spec", {})
    version = spec.get("version")
    if isinstance(version, dict):
        version = version.get("value")
    signature_map = document.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
    signatures = {}
    for sig_name, sig in signature_map.items():
        signatures[sig_name] = SignatureSpec(
            name=sig_name,
            method_name=sig.get("method_name", ""),
            inputs={k: _tensor_spec(k, v) for k, v in sig.get("inputs", {}).items()},
            outputs={k: _tensor_spec(k, v) for k, v in sig.get("outputs", {}).items()},
        )
    return ModelMetadata(
        name=spec.get("name", ""),
        version=int(version) if version not in (None, "") else None,
        signatures=signatures,
    )


def parse_status(document: Mapping[str, Any]) -> list[VersionStatus]:
    """REST `GET /v1/models/NAME` JSON (also the gRPC response as a dict) -> versions."""
    result = []
    for entry in document.get("model_version_status", []):
        status = entry.get("status", {})
        result.append(
            VersionStatus(
                version=int(entry.get("version", 0)),
                state=str(entry.get("state", "UNKNOWN")),
                error_code=str(status.get("error_code", "OK")),
                error_message=str(status.get("error_message", "")),
            )
        )
    return result


def interpret_classifier_outputs(outputs: Mapping[str, np.ndarray]) -> list[Prediction]:
    """Rows of class id, class name and probabilities from a classifier's predict outputs.

    Expects the project's signature (`probabilities`, `class_id`, `class_name`); for other models a
    single 2-D float output is taken as the scores and the id is its argmax. With no `class_name`
    output the name is the id as text: the client never invents label names.
    """
    probs = outputs.get("probabilities")
    if probs is None:
        floats = [v for v in outputs.values() if v.dtype.kind == "f" and v.ndim == 2]
        if len(floats) != 1:
            raise ClientError(
                "cannot tell which output holds class scores: expected a 'probabilities' output "
                f"or exactly one 2-D float output, got {sorted(outputs)}",
                code="INVALID_ARGUMENT",
            )
        probs = floats[0]
    probs = np.asarray(probs, dtype=np.float64).reshape(len(probs), -1)
    ids = outputs.get("class_id")
    ids = np.asarray(ids).reshape(-1) if ids is not None else probs.argmax(axis=1)
    names = outputs.get("class_name")
    rows = []
    for i in range(len(probs)):
        class_id = int(ids[i])
        if names is not None:
            name = np.asarray(names).reshape(-1)[i]
            class_name = name.decode() if isinstance(name, bytes) else str(name)
        else:
            class_name = str(class_id)
        probability = float(probs[i, class_id]) if 0 <= class_id < probs.shape[1] else float("nan")
        rows.append(Prediction(class_id, class_name, probability, tuple(float(p) for p in probs[i])))
    return rows


def _feature_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if isinstance(value, (list, tuple)):
        return [_feature_json(v) for v in value]
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _example_to_dict(example: Any) -> dict[str, Any]:
    """A tf.train.Example (duck-typed, so REST needs no TensorFlow) -> {feature: list}."""
    result: dict[str, Any] = {}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        result[key] = list(getattr(feature, kind).value) if kind else []
    return result


def examples_to_json(examples: Sequence[Any]) -> list[dict[str, Any]]:
    """Examples as TF Serving's Classify/Regress JSON `examples` (dicts or tf.train.Example)."""
    rows = []
    for example in examples:
        mapping = example if isinstance(example, Mapping) else _example_to_dict(example)
        rows.append({str(k): _feature_json(v) for k, v in mapping.items()})
    return rows


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


def _find_bytes_signature(metadata: ModelMetadata) -> tuple[str, str] | None:
    """(signature, input) of a signature taking encoded image bytes, if the model has one."""
    for sig in metadata.signatures.values():
        for name, spec in sig.inputs.items():
            if name == "image_bytes" and spec.dtype == "DT_STRING" and len(sig.inputs) == 1:
                return sig.name, name
    return None


def image_input(signature: SignatureSpec) -> tuple[str, int, int, int]:
    """(input name, height, width, channels) of a signature taking one [N, H, W, C] image tensor."""
    if "image" in signature.inputs:
        spec = signature.inputs["image"]
    elif len(signature.inputs) == 1:
        (spec,) = signature.inputs.values()
    else:
        spec = None
    if spec is None or spec.shape is None or len(spec.shape) != 4:
        raise ClientError(
            f"signature {signature.name!r} does not take an [N, H, W, C] image tensor; its inputs "
            f"are {_describe(signature.inputs)}",
            code="INVALID_ARGUMENT",
        )
    _, height, width, channels = spec.shape
    if min(height, width, channels) <= 0:
        raise ClientError(
            f"input {spec.name!r} of signature {signature.name!r} has shape {list(spec.shape)}: the "
            "height, width and channels must be fixed to resize images for it",
            code="INVALID_ARGUMENT",
        )
    return spec.name, height, width, channels


def _describe(specs: Mapping[str, TensorSpec]) -> str:
    return ", ".join(
        f"{n} {s.dtype} {list(s.shape) if s.shape is not None else '?'}" for n, s in specs.items()
    )


def load_image(
    source: str | os.PathLike[str] | bytes, height: int, width: int, channels: int
) -> np.ndarray:
    """A PNG/JPEG file (or its bytes) -> float32 [H, W, C] raw pixels 0-255, resized to fit."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as err:
        raise ClientError(
            f"cannot read image {_name(source)}: {err}; expected a PNG or JPEG file",
            code="INVALID_ARGUMENT",
        ) from err
    if channels == 1:
        array = array[..., None]
    if array.shape[-1] != channels:
        raise ClientError(
            f"image {_name(source)} has {array.shape[-1]} channels, the model expects {channels}",
            code="INVALID_ARGUMENT",
        )
    return array


def _name(source: Any) -> str:
    return "<bytes>" if isinstance(source, bytes) else str(source)


def _encoded_image(source: str | os.PathLike[str] | bytes) -> bytes:
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as err:
        message = f"cannot read image {_name(source)}: {err}"
        raise ClientError(message, code="INVALID_ARGUMENT") from err
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise ClientError(
            f"{_name(source)} is not a PNG or JPEG file (its first bytes are {data[:8]!r})",
            code="INVALID_ARGUMENT",
        )
    return data


# --------------------------------------------------------------------------------------------
# Transports: the same five calls over HTTP/JSON and over gRPC.


class _RestTransport:
    def __init__(self, host: str, port: int, timeout: float, pool_size: int):
        self.base = f"http://{host if ':' not in host else '[' + host + ']'}:{port}"
        self._pool = urllib3.HTTPConnectionPool(
            host,
            port,
            maxsize=pool_size,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(total=timeout),
        )

    def close(self) -> None:
        self._pool.close()

    def call(self, method: str, path: str, body: Any = None, *, timeout: float) -> Any:
        payload = None
        headers = {}
        if body is not None:
            payload = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
            headers["Content-Type"] = "application/json"
        url = self.base + path
        try:
            response = self._pool.urlopen(
                method, path, body=payload, headers=headers, retries=False,
                timeout=urllib3.Timeout(total=timeout), preload_content=True,
            )
        except urllib3.exceptions.NewConnectionError as err:
            # Checked first: urllib3 1.26 derives it from ConnectTimeoutError.
            raise ClientError(
                f"cannot reach the REST endpoint {self.base} ({_short(err)}): is the server running "
                "and is this its REST port (--rest_api_port)?",
                code="UNAVAILABLE",
            ) from err
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError) as err:
            raise ClientError(
                f"deadline of {timeout:g} s exceeded: {method} {url} got no answer in time",
                code="DEADLINE_EXCEEDED",
            ) from err
        except urllib3.exceptions.HTTPError as err:
            reason = getattr(err, "reason", None) or err
            raise ClientError(
                f"cannot reach the REST endpoint {self.base} ({_short(reason)}): is the server running "
                "and is this its REST port (--rest_api_port)?",
                code="UNAVAILABLE",
            ) from err
        data = response.data
        if response.status != 200:
            raise ClientError(
                f"{method} {url} failed with HTTP {response.status}: {_error_text(data)}",
                code=_HTTP_TO_CODE.get(response.status, "UNKNOWN"),
                http_status=response.status,
            )
        try:
            return _loads(data)
        except ValueError as err:
            raise ClientError(
                f"{method} {url} answered HTTP 200 with a body that is not JSON: {data[:80]!r}",
                code="INTERNAL",
            ) from err


def _short(reason: Any) -> str:
    text = str(reason)
    if "Connection refused" in text:
        return "connection refused"
    return text if len(text) < 200 else text[:200] + "..."


def _error_text(body: bytes) -> str:
    try:
        document = _loads(body)
    except ValueError:
        text = body.decode(errors="replace").strip()
        return text[:300] or "(empty body)"
    if isinstance(document, dict) and "error" in document:
        return str(document["error"])
    return str(document)[:300]


class _GrpcTransport:
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
                message = (
                    f"deadline of {timeout:g} s exceeded: {name} on {self.target} got no answer in time"
                )
            elif code_name == "UNAVAILABLE":
                message = (
                    f"cannot reach the gRPC endpoint {self.target} ({details}): is the server running "
                    "and is this its gRPC port (--port)?"
                )
            else:
                message = f"{name} on {self.target} failed with {code_name}: {details}"
            raise ClientError(message, code=code_name) from err


# --------------------------------------------------------------------------------------------
# The client.


class ServingClient:
    """A TF Serving client for one model over REST (`HOST:8501`) or gRPC (`HOST:8500`).

    `version` or `label` (not both) pins the served version, as in TF Serving's ModelSpec; neither
    means the latest. `timeout` is the deadline in seconds of every call. Thread-safe: `evaluate`
    shares one client between its workers (`pool_size` HTTP connections are kept alive).
    """

    def __init__(
        self,
        endpoint: str,
        protocol: Protocol = "rest",
        model: str = "model",
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        pool_size: int = 16,
    ):
        if protocol not in ("rest", "grpc"):
            raise ClientError(
                f"protocol {protocol!r} is not supported: expected 'rest' or 'grpc'",
                code="INVALID_ARGUMENT",
            )
        if version is not None and label is not None:
            raise ClientError(
                f"give a version ({version}) or a label ({label!r}), not both", code="INVALID_ARGUMENT"
            )
        if not model:
            raise ClientError(
                "model name is empty: pass the name the server serves", code="INVALID_ARGUMENT"
            )
        if not timeout or timeout <= 0:
            raise ClientError(
                f"timeout must be a positive number of seconds, got {timeout!r}",
                code="INVALID_ARGUMENT",
            )
        self.endpoint = endpoint
        self.protocol: Protocol = protocol
        self.model = model
        self.version = int(version) if version is not None else None
        self.label = label
        self.timeout = float(timeout)
        host, port = parse_endpoint(endpoint)
        self._rest = _RestTransport(host, port, self.timeout, pool_size) if protocol == "rest" else None
        self._grpc = _GrpcTransport(host, port, max_message_bytes) if protocol == "grpc" else None
        self._metadata: ModelMetadata | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> "ServingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        (self._rest or self._grpc).close()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        pin = f", version={self.version}" if self.version is not None else ""
        pin += f", label={self.label!r}" if self.label else ""
        return (
            f"ServingClient({self.endpoint!r}, protocol={self.protocol!r}, model={self.model!r}{pin})"
        )

    # -- model status and metadata ------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> list[VersionStatus]:
        """Versions of the model and their states (all versions unless version/label is set)."""
        timeout = timeout or self.timeout
        if self._rest:
            return parse_status(self._rest.call("GET", self._rest_path(""), timeout=timeout))
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._fill_spec(request.model_spec, signature=None)
        grpc = self._grpc_transport()
        response = grpc.call(grpc.model.GetModelStatus, request, timeout=timeout, name="GetModelStatus")
        return parse_status(json_format.MessageToDict(response, preserving_proto_field_name=True))

    def wait_until_available(self, timeout: float = 30.0, poll_s: float = 0.1) -> list[VersionStatus]:
        """Polls status until a version is AVAILABLE; ClientError with the last state otherwise."""
        deadline = time.monotonic() + timeout
        last: str = "no answer yet"
        while True:
            try:
                versions = self.status(timeout=min(self.timeout, max(timeout, 0.5)))
                if any(v.state == "AVAILABLE" for v in versions):
                    return versions
                last = ", ".join(
                    f"version {v.version} {v.state} {v.error_message}".strip() for v in versions
                )
            except ClientError as err:
                last = str(err)
            if time.monotonic() >= deadline:
                raise ClientError(
                    f"model {self.model!r} at {self.endpoint} was not AVAILABLE within "
                    f"{timeout:g} s: {last}",
                    code="DEADLINE_EXCEEDED",
                )
            time.sleep(poll_s)

    def metadata(self, *, refresh: bool = False, timeout: float | None = None) -> ModelMetadata:
        """Signatures of the served version (cached; `refresh=True` asks the server again)."""
        with self._lock:
            if self._metadata is not None and not refresh:
                return self._metadata
        timeout = timeout or self.timeout
        if self._rest:
            document = self._rest.call("GET", self._rest_path("/metadata"), timeout=timeout)
            metadata = parse_metadata(document)
        else:
            from google.protobuf import json_format
            from tensorflow_serving.apis import get_model_metadata_pb2

            request = get_model_metadata_pb2.GetModelMetadataRequest()
            self._fill_spec(request.model_spec, signature=None)
            request.metadata_field.append("signature_def")
            grpc = self._grpc_transport()
            response = grpc.call(
                grpc.prediction.GetModelMetadata, request, timeout=timeout, name="GetModelMetadata"
            )
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            if "signature_def" in response.metadata:
                response.metadata["signature_def"].Unpack(signature_map)
            as_dict = functools.partial(json_format.MessageToDict, preserving_proto_field_name=True)
            metadata = parse_metadata(
                {
                    "model_spec": as_dict(response.model_spec),
                    "metadata": {"signature_def": as_dict(signature_map)},
                }
            )
        with self._lock:
            self._metadata = metadata
        return metadata

    # -- inference ----------------------------------------------------------------------------

    def predict(
        self,
        inputs: np.ndarray | Sequence[Any] | Mapping[str, Any],
        *,
        signature_name: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a predict signature. `inputs` is one array (for a one-input signature) or a dict of
        input name -> array; returns output name -> array."""
        timeout = timeout or self.timeout
        signature = self.metadata().signature(signature_name)
        named = self._named_inputs(inputs, signature)
        if self._rest:
            columns = {k: _json_value(v) for k, v in named.items()}
            body = {"signature_name": signature_name, "inputs": columns}
            document = self._rest.call("POST", self._rest_path(":predict"), body, timeout=timeout)
            outputs = document.get("outputs") if isinstance(document, dict) else None
            if outputs is None:
                message = f"predict answer has no 'outputs' key: {str(document)[:200]}"
                raise ClientError(message, code="INTERNAL")
            if len(signature.outputs) == 1:
                # TF Serving drops the name when a signature has one output.
                (only,) = signature.outputs.values()
                if not (isinstance(outputs, dict) and set(outputs) == {only.name}):
                    outputs = {only.name: outputs}
            specs = signature.outputs
            return {
                k: json_to_array(v, specs[k].dtype if k in specs else "DT_FLOAT")
                for k, v in outputs.items()
            }
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._fill_spec(request.model_spec, signature=signature_name)
        for name, value in named.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        grpc = self._grpc_transport()
        response = grpc.call(grpc.prediction.Predict, request, timeout=timeout, name="Predict")
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def classify(
        self,
        examples: Sequence[Any],
        *,
        context: Mapping[str, Any] | None = None,
        signature_name: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> list[list[tuple[str, float]]]:
        """TF Serving's Classify API: per example, (class label, score) pairs as the model names them.

        `examples` are dicts of feature -> value(s) or tf.train.Example protos."""
        rows = self._infer("classify", examples, context, signature_name, timeout)
        if self._rest:
            return [[(str(label), float(score)) for label, score in row] for row in rows]
        return [[(c.label, float(c.score)) for c in r.classes] for r in rows.result.classifications]

    def regress(
        self,
        examples: Sequence[Any],
        *,
        context: Mapping[str, Any] | None = None,
        signature_name: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> list[float]:
        """TF Serving's Regress API: one value per example."""
        rows = self._infer("regress", examples, context, signature_name, timeout)
        if self._rest:
            return [float(v[0] if isinstance(v, list) else v) for v in rows]
        return [float(r.value) for r in rows.result.regressions]

    def predict_images(
        self,
        images: Sequence[str | os.PathLike[str] | bytes],
        *,
        encoding: ImageEncoding = "auto",
        signature_name: str = DEFAULT_SIGNATURE,
        batch_size: int = 64,
        timeout: float | None = None,
    ) -> list[Prediction]:
        """Classifies PNG/JPEG files (paths or bytes).

        encoding: "pixels" decodes and resizes each image to the signature's [H, W, C] input;
        "bytes" sends the files as they are to the model's signature with an `image_bytes` input;
        "auto" uses the bytes signature when the model has one, else pixels.
        """
        metadata = self.metadata()
        bytes_sig = _find_bytes_signature(metadata) if encoding in ("auto", "bytes") else None
        if encoding == "bytes" and bytes_sig is None:
            raise ClientError(
                f"model {self.model!r} has no signature with an 'image_bytes' string input "
                f"(signatures: {sorted(metadata.signatures)}); use encoding='pixels'",
                code="INVALID_ARGUMENT",
            )
        logger.debug(
            "predict_images: %d image(s) to %s",
            len(images),
            f"signature {bytes_sig[0]!r} as encoded bytes" if bytes_sig else "pixels resized to the input",
        )
        results: list[Prediction] = []
        for start in range(0, len(images), max(1, batch_size)):
            chunk = list(images[start : start + max(1, batch_size)])
            if bytes_sig is not None:
                sig_name, input_name = bytes_sig
                array = np.empty(len(chunk), dtype=object)
                array[:] = [_encoded_image(c) for c in chunk]
                outputs = self.predict({input_name: array}, signature_name=sig_name, timeout=timeout)
            else:
                input_name, height, width, channels = image_input(metadata.signature(signature_name))
                pixels = np.stack([load_image(c, height, width, channels) for c in chunk])
                outputs = self.predict(
                    {input_name: pixels}, signature_name=signature_name, timeout=timeout
                )
            for source, row in zip(chunk, interpret_classifier_outputs(outputs)):
                results.append(dataclasses.replace(row, source=_name(source)))
        return results

    def evaluate(
        self,
        images: np.ndarray,
        labels: Sequence[int] | Sequence[str] | np.ndarray,
        *,
        concurrency: int = 1,
        batch_size: int = 1,
        signature_name: str = DEFAULT_SIGNATURE,
    ) -> EvaluationReport:
        """Sends a labelled set with `concurrency` workers, `batch_size` rows per request.

        Integer labels are compared with the model's class id, text labels with its class name.
        Failed requests count as errors (as in mnist_client) and are reported separately."""
        if len(images) != len(labels):
            message = f"{len(images)} images but {len(labels)} labels"
            raise ClientError(message, code="INVALID_ARGUMENT")
        if concurrency < 1 or batch_size < 1:
            raise ClientError(
                f"concurrency ({concurrency}) and batch size ({batch_size}) must be at least 1",
                code="INVALID_ARGUMENT",
            )
        signature = self.metadata().signature(signature_name)
        input_name = next(iter(signature.inputs)) if len(signature.inputs) == 1 else "image"
        label_array = np.asarray(labels)
        by_name = label_array.dtype.kind in "USO"
        chunks = [(s, min(s + batch_size, len(images))) for s in range(0, len(images), batch_size)]
        latencies: list[float] = []
        correct = 0
        failed = 0
        first_error: str | None = None
        lock = threading.Lock()

        def run(chunk: tuple[int, int]) -> None:
            nonlocal correct, failed, first_error
            start, stop = chunk
            began = time.perf_counter()
            try:
                batch = {input_name: np.asarray(images[start:stop], dtype=np.float32)}
                rows = interpret_classifier_outputs(self.predict(batch, signature_name=signature_name))
            except ClientError as err:
                with lock:
                    failed += 1
                    first_error = first_error or str(err)
                return
            elapsed_ms = (time.perf_counter() - began) * 1e3
            hits = sum(
                (row.class_name == str(label)) if by_name else (row.class_id == int(label))
                for row, label in zip(rows, label_array[start:stop])
            )
            with lock:
                latencies.append(elapsed_ms)
                correct += hits

        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(run, chunks))
        wall = time.perf_counter() - began
        return EvaluationReport(
            examples=len(images),
            correct=correct,
            failed_requests=failed,
            first_error=first_error,
            requests=len(chunks),
            wall_s=wall,
            latencies_ms=tuple(latencies),
            concurrency=concurrency,
            batch_size=batch_size,
        )

    # -- internals ----------------------------------------------------------------------------

    def _grpc_transport(self) -> _GrpcTransport:
        if self._grpc is None:  # unreachable: REST clients take the REST branch first
            raise RuntimeError(f"{self!r} has no gRPC transport")
        return self._grpc

    def _rest_path(self, suffix: str) -> str:
        return model_path(self.model, self.version, self.label) + suffix

    def _fill_spec(self, spec: Any, signature: str | None) -> None:
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        if signature:
            spec.signature_name = signature

    @staticmethod
    def _named_inputs(inputs: Any, signature: SignatureSpec) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            unknown = sorted(set(inputs) - set(signature.inputs))
            if unknown:
                raise ClientError(
                    f"signature {signature.name!r} has no input(s) {unknown}; its inputs are "
                    f"{_describe(signature.inputs)}",
                    code="INVALID_ARGUMENT",
                )
            return {k: _as_array(v, signature.inputs[k].dtype) for k, v in inputs.items()}
        if len(signature.inputs) != 1:
            raise ClientError(
                f"signature {signature.name!r} has {len(signature.inputs)} inputs "
                f"({_describe(signature.inputs)}): pass a dict of input name -> array",
                code="INVALID_ARGUMENT",
            )
        (spec,) = signature.inputs.values()
        return {spec.name: _as_array(inputs, spec.dtype)}

    def _infer(
        self,
        api: str,
        examples: Sequence[Any],
        context: Mapping[str, Any] | None,
        signature_name: str,
        timeout: float | None,
    ) -> Any:
        timeout = timeout or self.timeout
        if not examples:
            raise ClientError(f"{api} needs at least one example", code="INVALID_ARGUMENT")
        if self._rest:
            body: dict[str, Any] = {
                "signature_name": signature_name,
                "examples": examples_to_json(examples),
            }
            if context:
                body["context"] = examples_to_json([context])[0]
            document = self._rest.call("POST", self._rest_path(":" + api), body, timeout=timeout)
            if not isinstance(document, dict) or "results" not in document:
                message = f"{api} answer has no 'results' key: {str(document)[:200]}"
                raise ClientError(message, code="INTERNAL")
            return document["results"]
        from tensorflow_serving.apis import classification_pb2, regression_pb2

        module = classification_pb2 if api == "classify" else regression_pb2
        request = module.ClassificationRequest() if api == "classify" else module.RegressionRequest()
        self._fill_spec(request.model_spec, signature=signature_name)
        protos = [e if not isinstance(e, Mapping) else dict_to_example(e) for e in examples]
        if context:
            target = request.input.example_list_with_context
            target.context.CopyFrom(dict_to_example(context))
        else:
            target = request.input.example_list
        for proto in protos:
            target.examples.add().CopyFrom(proto)
        grpc = self._grpc_transport()
        method = grpc.prediction.Classify if api == "classify" else grpc.prediction.Regress
        return grpc.call(method, request, timeout=timeout, name=api.capitalize())


def _as_array(value: Any, dtype: str) -> np.ndarray:
    if dtype == "DT_STRING":
        array = np.asarray(value, dtype=object)
        return array
    return np.asarray(value, dtype=_NUMPY_DTYPES.get(dtype, None))


# --------------------------------------------------------------------------------------------
# Labelled test sets for `evaluate`.


def load_digits_set(
    split: Literal["eval", "all"] = "eval", eval_percent: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits exactly as the pipeline's ExampleGen makes them: raw pixels
    0-255 [N, 8, 8, 1] float32 (values 0-16 scaled by 255/16) and integer labels. "eval" keeps only
    the pipeline's held-out split (same hash split, same `eval_percent`), "all" keeps all 1797."""
    # The one definition of scaling and split lives with ExampleGen: reuse it, never retype it.
    from components.example_gen.logic import EVAL, load_digits

    images, labels = [], []
    for split_name, pixels, label in load_digits(eval_percent).records():
        if split == "all" or split_name == EVAL:
            images.append(pixels)
            labels.append(label)
    return np.stack(images).astype(np.float32), np.asarray(labels, dtype=np.int64)


def load_npz_set(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """An .npz holding images (`images`, `x` or `x_test`) and labels (`labels`, `y` or `y_test`)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            image_key = next((k for k in ("images", "x", "x_test") if k in keys), None)
            label_key = next((k for k in ("labels", "y", "y_test") if k in keys), None)
            if image_key is None or label_key is None:
                raise ClientError(
                    f"{path} holds arrays {sorted(keys)}; expected images as 'images', 'x' or 'x_test' "
                    "and labels as 'labels', 'y' or 'y_test'",
                    code="INVALID_ARGUMENT",
                )
            images, labels = data[image_key], data[label_key].reshape(-1)
    except (OSError, ValueError) as err:
        message = f"cannot read {path} as an .npz file: {err}"
        raise ClientError(message, code="INVALID_ARGUMENT") from err
    if images.ndim == 3:
        images = images[..., None]
    return images.astype(np.float32), labels


def load_folder_set(
    folder: str | os.PathLike[str], height: int, width: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """A folder with one sub-folder per class name holding PNG/JPEG files; labels are the names."""
    root = Path(folder)
    images, labels = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                images.append(load_image(file, height, width, channels))
                labels.append(class_dir.name)
    if not images:
        raise ClientError(
            f"{folder} has no PNG/JPEG files in class sub-folders "
            f"(expected {folder}/<class>/<image>.png)",
            code="INVALID_ARGUMENT",
        )
    return np.stack(images), np.asarray(labels)


# --------------------------------------------------------------------------------------------
# CLI.


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", required=True, help="HOST:PORT (TF Serving: 8501 REST, 8500 gRPC)")
    common.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    common.add_argument("--model", required=True, help="model name the server serves")
    pin = common.add_mutually_exclusive_group()
    pin.add_argument("--version", type=int, help="ask for this version (default: latest)")
    pin.add_argument("--label", help="ask for the version with this label (e.g. stable, canary)")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of each call, seconds")
    common.add_argument("--signature", default=DEFAULT_SIGNATURE, help="signature name")

    parser = argparse.ArgumentParser(prog="python -m serving.client", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", parents=[common], help="classify PNG/JPEG files")
    predict.add_argument("images", nargs="+", help="PNG or JPEG files")
    predict.add_argument("--send", choices=("auto", "pixels", "bytes"), default="auto",
                         help="pixels: resize to the model's input; bytes: send the files to the "
                              "image_bytes signature; auto: bytes when the model has that signature")
    predict.add_argument("--top", type=int, default=3, help="also print the N most probable class ids")
    evaluate = commands.add_parser("evaluate", parents=[common], help="accuracy and latency on a labelled set")
    evaluate.add_argument("--data", default="digits",
                          help="'digits' (the pipeline's eval split of scikit-learn's bundled digits), "
                               "'digits-all' (all 1797), an .npz file, or a folder of class sub-folders")
    evaluate.add_argument("--concurrency", type=int, default=4, help="concurrent requests")
    evaluate.add_argument("--batch-size", type=int, default=1, help="rows per request")
    evaluate.add_argument("--num-tests", type=int, default=0, help="use only the first N examples (0: all)")
    commands.add_parser("status", parents=[common], help="versions and their states")
    commands.add_parser("metadata", parents=[common], help="signatures of the served version")
    return parser


def _run(args: argparse.Namespace) -> int:
    with ServingClient(
        args.endpoint,
        args.protocol,
        args.model,
        version=args.version,
        label=args.label,
        timeout=args.timeout,
        pool_size=max(16, getattr(args, "concurrency", 1)),  # one kept-alive connection per worker
    ) as client:
        if args.command == "status":
            for v in client.status():
                error = f" ({v.error_code}: {v.error_message})" if v.error_code != "OK" else ""
                print(f"version {v.version}: {v.state}{error}")
            return 0
        if args.command == "metadata":
            metadata = client.metadata()
            print(f"model {metadata.name} version {metadata.version}")
            for sig in metadata.signatures.values():
                print(f"signature {sig.name} ({sig.method_name})")
                for kind, specs in (("input", sig.inputs), ("output", sig.outputs)):
                    for spec in specs.values():
                        shape = list(spec.shape) if spec.shape is not None else "unknown rank"
                        print(f"  {kind:6} {spec.name}: {spec.dtype} {shape}")
            return 0
        if args.command == "predict":
            for row in client.predict_images(args.images, encoding=args.send, signature_name=args.signature):
                top = np.argsort(row.probabilities)[::-1][: max(0, args.top)]
                others = ", ".join(f"{i}: {row.probabilities[i]:.4f}" for i in top)
                print(
                    f"{row.source}: {row.class_name} (class {row.class_id}, p={row.probability:.4f}) "
                    f"top class ids [{others}]"
                )
            return 0
        return _evaluate(client, args)


def _evaluate(client: ServingClient, args: argparse.Namespace) -> int:
    if args.data in ("digits", "digits-all"):
        images, labels = load_digits_set("all" if args.data == "digits-all" else "eval")
    elif Path(args.data).is_dir():
        _, h, w, c = image_input(client.metadata().signature(args.signature))
        images, labels = load_folder_set(args.data, h, w, c)
    elif Path(args.data).is_file():
        images, labels = load_npz_set(args.data)
    else:
        message = f"--data {args.data!r} is neither 'digits', 'digits-all', an .npz file nor a folder"
        raise ClientError(message, code="INVALID_ARGUMENT")
    if args.num_tests > 0:
        images, labels = images[: args.num_tests], labels[: args.num_tests]
    client.metadata()  # Fails fast, with one clear message, when the endpoint or model is wrong.
    report = client.evaluate(
        images, labels, concurrency=args.concurrency, batch_size=args.batch_size, signature_name=args.signature
    )
    pin = f" version {client.version}" if client.version is not None else ""
    pin += f" label {client.label}" if client.label else ""
    print(
        f"{report.examples} examples, {report.requests} requests of {report.batch_size} row(s), "
        f"{report.concurrency} concurrent, {client.protocol} {client.endpoint} model {client.model}{pin}"
    )
    print(f"accuracy {report.accuracy:.4f}  inference error rate {report.error_rate * 100:.2f}%  "
          f"failed requests {report.failed_requests}")
    print(
        f"latency ms p50 {report.latency_percentile(50):.2f}  p90 {report.latency_percentile(90):.2f}  "
        f"p99 {report.latency_percentile(99):.2f}  throughput {report.throughput:.1f} examples/s "
        f"({report.wall_s:.2f} s)"
    )
    if report.failed_requests:
        print(f"error: {report.failed_requests} of {report.requests} requests failed; first: {report.first_error}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    # 3: TF's C++ start-up lines (CUDA factory registration) are logged at ERROR level.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)  # google.api_core on Python 3.10
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
