"""What a TF Serving client works with: results, model metadata and status, the one error type.

Pure data and parsing, no network and no TensorFlow: the REST and gRPC transports both turn
their answers into these types (`parse_metadata` and `parse_status` read the REST JSON, and the
gRPC responses as dicts), so a caller never sees which protocol answered.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, Mapping

import numpy as np

from serving.errors import VersionStatus
from serving.saved_model import SCORE_OUTPUTS, score_output

Protocol = Literal["rest", "grpc"]
ImageEncoding = Literal["auto", "pixels", "bytes"]

DEFAULT_TIMEOUT_S = 10.0
# TF Serving's own server accepts INT32_MAX; the 4 MiB gRPC default is a client-side limit.
DEFAULT_MAX_MESSAGE_BYTES = 2**31 - 1


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


@dataclasses.dataclass(frozen=True)
class ModelRef:
    """Which model a call is for, and the version (or label) it pins; neither means the latest."""

    model: str
    version: int | None = None
    label: str | None = None


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


def _tensor_spec(name: str, info: Mapping[str, Any]) -> TensorSpec:
    shape_info = info.get("tensor_shape", {})
    dims = tuple(int(d.get("size", 0)) for d in shape_info.get("dim", []))
    return TensorSpec(name, str(info.get("dtype", "DT_INVALID")), None if shape_info.get("unknown_rank") else dims)


def parse_metadata(document: Mapping[str, Any]) -> ModelMetadata:
    """REST `GET .../metadata` JSON (also the gRPC response as a dict) -> ModelMetadata."""
    spec = document.get("model_spec", {})
    version = spec.get("version")
    if isinstance(version, dict):
        version = version.get("value")
    signature_map = document.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
    signatures = {
        sig_name: SignatureSpec(
            name=sig_name,
            method_name=sig.get("method_name", ""),
            inputs={k: _tensor_spec(k, v) for k, v in sig.get("inputs", {}).items()},
            outputs={k: _tensor_spec(k, v) for k, v in sig.get("outputs", {}).items()},
        )
        for sig_name, sig in signature_map.items()
    }
    return ModelMetadata(spec.get("name", ""), int(version) if version not in (None, "") else None, signatures)


def parse_status(document: Mapping[str, Any]) -> list[VersionStatus]:
    """REST `GET /v1/models/NAME` JSON (also the gRPC response as a dict) -> versions."""
    return [
        VersionStatus(
            version=int(entry.get("version", 0)),
            state=str(entry.get("state", "UNKNOWN")),
            error_code=str(entry.get("status", {}).get("error_code", "OK")),
            error_message=str(entry.get("status", {}).get("error_message", "")),
        )
        for entry in document.get("model_version_status", [])
    ]


def interpret_classifier_outputs(outputs: Mapping[str, np.ndarray]) -> list[Prediction]:
    """Rows of class id, class name and probabilities from a classifier's predict outputs.

    Expects the project's signature (`probabilities`, `class_id`, `class_name`); for other models a
    single 2-D float output is taken as the scores and the id is its argmax. With no `class_name`
    output the name is the id as text: the client never invents label names.
    """
    name = score_output(outputs)
    if name is None:
        raise ClientError(
            f"cannot tell which output holds class scores: expected one named {', '.join(SCORE_OUTPUTS)} "
            f"or exactly one 2-D float output, got {sorted(outputs)}",
            code="INVALID_ARGUMENT",
        )
    probs = np.asarray(outputs[name], dtype=np.float64).reshape(len(outputs[name]), -1)
    ids = outputs.get("class_id")
    ids = np.asarray(ids).reshape(-1) if ids is not None else probs.argmax(axis=1)
    names = outputs.get("class_name")
    names = np.asarray(names).reshape(-1) if names is not None else [str(int(i)) for i in ids]
    rows = []
    for i in range(len(probs)):
        class_id = int(ids[i])
        class_name = names[i].decode() if isinstance(names[i], bytes) else str(names[i])
        probability = float(probs[i, class_id]) if 0 <= class_id < probs.shape[1] else float("nan")
        rows.append(Prediction(class_id, class_name, probability, tuple(float(p) for p in probs[i])))
    return rows


def describe_specs(specs: Mapping[str, TensorSpec]) -> str:
    return ", ".join(
        f"{n} {s.dtype} {list(s.shape) if s.shape is not None else '?'}" for n, s in specs.items()
    )
