"""Runs the stock ExampleValidator, then fails the execution when any split has anomalies."""

from __future__ import annotations

import logging
import os
from typing import Any

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.components.example_validator import executor as stock_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.data_validation import logic, spec

logger = logging.getLogger(__name__)


class AnomaliesFoundError(ValueError):
    """The examples do not match the schema; training must not start."""


def load_anomalies(anomalies_artifact: types.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
    """Anomalies per split, read back from the files the stock executor writes."""
    result = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split), spec.ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(io_utils.read_bytes_file(path))
        result[split] = anomalies
    return result


class Executor(stock_executor.Executor):
    """Stock validation; a non-empty result raises AnomaliesFoundError with a readable summary."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ):
        result = super().Do(input_dict, output_dict, exec_properties)
        anomalies_artifact = artifact_utils.get_single_instance(output_dict[spec.ANOMALIES_KEY])
        summary = logic.summarize(load_anomalies(anomalies_artifact))
        if summary:
            raise AnomaliesFoundError(
                "the examples do not match the schema, so training did not start:\n"
                f"{summary}\n(anomalies written to {anomalies_artifact.uri})"
            )
        return result
