"""A client for any TF Serving, real or embedded: `ServingClient` and its result types (map: serving/README.md)."""

from serving.client.client import ServingClient
from serving.client.types import (
    ClientError,
    EvaluationReport,
    ModelMetadata,
    Prediction,
    SignatureSpec,
    TensorSpec,
    VersionStatus,
)

__all__ = [
    "ClientError",
    "EvaluationReport",
    "ModelMetadata",
    "Prediction",
    "ServingClient",
    "SignatureSpec",
    "TensorSpec",
    "VersionStatus",
]
