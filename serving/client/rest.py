"""The client's REST transport: TF Serving's `/v1/models/...` JSON API over urllib3, no TensorFlow."""

from __future__ import annotations

import base64
import json
from typing import Any, Mapping, Sequence
from urllib.parse import quote

import numpy as np
import orjson
import urllib3

from serving.client.types import ClientError, ModelMetadata, ModelRef, SignatureSpec, VersionStatus
from serving.client.types import parse_metadata, parse_status
from serving.saved_model import NUMPY_BY_ENUM_NAME

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


def model_path(ref: ModelRef, suffix: str = "") -> str:
    """The REST path `/v1/models/NAME[/versions/V|/labels/L]` then `suffix` (`/metadata`, `:predict`)."""
    path = f"/v1/models/{quote(ref.model, safe='')}"
    if ref.version is not None:
        path += f"/versions/{int(ref.version)}"
    elif ref.label is not None:
        path += f"/labels/{quote(ref.label, safe='')}"
    return path + suffix


def _json_value(array: np.ndarray) -> Any:
    """A numpy array as TF Serving's JSON: bytes become {"b64": ...}, numbers stay numbers."""
    if array.dtype.kind in "SOU":
        return _feature_json(array.tolist())
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
    return np.asarray(value, dtype=NUMPY_BY_ENUM_NAME.get(dtype, np.float32))


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        # TF Serving writes NaN / Infinity tokens, which orjson rejects and the json module accepts.
        return json.loads(body)


def _feature_json(value: Any) -> Any:
    """Arrays, lists and numpy scalars as JSON values; bytes as `{"b64": ...}`."""
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
    mappings = (e if isinstance(e, Mapping) else _example_to_dict(e) for e in examples)
    return [{str(k): _feature_json(v) for k, v in mapping.items()} for mapping in mappings]


class RestTransport:
    """TF Serving's REST API (`HOST:8501`): JSON over kept-alive HTTP connections."""

    def __init__(self, host: str, port: int, pool_size: int):
        self.base = f"http://{host if ':' not in host else '[' + host + ']'}:{port}"
        # Every call gives its own deadline (urlopen's timeout), so the pool has none.
        self._pool = urllib3.HTTPConnectionPool(host, port, maxsize=pool_size, retries=False)

    def close(self) -> None:
        self._pool.close()

    def call(self, method: str, path: str, body: Any = None, *, timeout: float) -> Any:
        payload = None if body is None else orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        headers = {} if body is None else {"Content-Type": "application/json"}
        url = self.base + path
        try:
            response = self._pool.urlopen(
                method, path, body=payload, headers=headers, timeout=urllib3.Timeout(total=timeout)
            )
        except urllib3.exceptions.HTTPError as err:
            # A NewConnectionError is no timeout, though urllib3 1.26 derives it from ConnectTimeoutError.
            timed_out = (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ConnectTimeoutError)
            if isinstance(err, timed_out) and not isinstance(err, urllib3.exceptions.NewConnectionError):
                raise ClientError(
                    f"deadline of {timeout:g} s exceeded: {method} {url} got no answer in time",
                    code="DEADLINE_EXCEEDED",
                ) from err
            reason = getattr(err, "reason", None) or err  # a NewConnectionError has none: itself
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

    def status(self, ref: ModelRef, *, timeout: float) -> list[VersionStatus]:
        return parse_status(self.call("GET", model_path(ref), timeout=timeout))

    def metadata(self, ref: ModelRef, *, timeout: float) -> ModelMetadata:
        return parse_metadata(self.call("GET", model_path(ref, "/metadata"), timeout=timeout))

    def predict(
        self, ref: ModelRef, signature: SignatureSpec, inputs: Mapping[str, np.ndarray], *, timeout: float
    ) -> dict[str, np.ndarray]:
        columns = {k: _json_value(v) for k, v in inputs.items()}
        body = {"signature_name": signature.name, "inputs": columns}
        document = self.call("POST", model_path(ref, ":predict"), body, timeout=timeout)
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
        return {k: json_to_array(v, specs[k].dtype if k in specs else "DT_FLOAT") for k, v in outputs.items()}

    def _infer(
        self, api: str, ref: ModelRef, signature_name: str, examples: Sequence[Any],
        context: Mapping[str, Any] | None, timeout: float,
    ) -> list[Any]:
        body: dict[str, Any] = {"signature_name": signature_name, "examples": examples_to_json(examples)}
        if context:
            body["context"] = examples_to_json([context])[0]
        document = self.call("POST", model_path(ref, ":" + api), body, timeout=timeout)
        if not isinstance(document, dict) or "results" not in document:
            message = f"{api} answer has no 'results' key: {str(document)[:200]}"
            raise ClientError(message, code="INTERNAL")
        return document["results"]

    def classify(
        self, ref: ModelRef, signature_name: str, examples: Sequence[Any],
        context: Mapping[str, Any] | None, *, timeout: float,
    ) -> list[list[tuple[str, float]]]:
        rows = self._infer("classify", ref, signature_name, examples, context, timeout)
        return [[(str(label), float(score)) for label, score in row] for row in rows]

    def regress(
        self, ref: ModelRef, signature_name: str, examples: Sequence[Any],
        context: Mapping[str, Any] | None, *, timeout: float,
    ) -> list[float]:
        rows = self._infer("regress", ref, signature_name, examples, context, timeout)
        return [float(v[0] if isinstance(v, list) else v) for v in rows]


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
