"""Readable summaries of TFDV anomalies (no TFX imports)."""

from __future__ import annotations

from typing import Mapping

from tensorflow_metadata.proto.v0 import anomalies_pb2


def describe_anomalies(anomalies: anomalies_pb2.Anomalies) -> list[str]:
    """One line per anomalous feature (and dataset-level anomaly): `feature: short: description`."""
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = "; ".join(
            f"{reason.short_description}: {reason.description}".strip(": ") for reason in info.reason
        ) or info.description or info.short_description
        lines.append(f"{feature}: {reasons}")
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        reasons = "; ".join(r.description or r.short_description for r in info.reason) or info.description
        lines.append(f"(dataset): {reasons}")
    return lines


def summarize(per_split: Mapping[str, anomalies_pb2.Anomalies]) -> str:
    """Empty string when every split is clean, else a short multi-line summary."""
    parts = []
    for split, anomalies in sorted(per_split.items()):
        lines = describe_anomalies(anomalies)
        if lines:
            parts.append(f"split {split!r}:\n" + "\n".join(f"  - {line}" for line in lines))
    return "\n".join(parts)
