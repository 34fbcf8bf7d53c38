"""StrictExampleValidator: construction, the readable summary, and Do() stopping on anomalies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, channel_utils, standard_artifacts
from tfx.utils import io_utils

from components.data_validation import executor, logic, spec
from components.data_validation.component import StrictExampleValidator


def _stats_artifact(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> standard_artifacts.ExampleStatistics:
    stats = standard_artifacts.ExampleStatistics()
    stats.uri = str(tmp_path / "stats")
    stats.split_names = artifact_utils.encode_split_names(list(frames))
    for split, frame in frames.items():
        split_dir = Path(stats.uri) / f"Split-{split}"
        split_dir.mkdir(parents=True)
        statistics = tfdv.generate_statistics_from_dataframe(frame)
        (split_dir / "FeatureStats.pb").write_bytes(statistics.SerializeToString())
    return stats


def _schema_artifact(tmp_path: Path, frame: pd.DataFrame) -> standard_artifacts.Schema:
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    Path(schema.uri).mkdir()
    inferred = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(frame))
    io_utils.write_pbtxt_file(str(Path(schema.uri) / "schema.pbtxt"), inferred)
    return schema


def _do(tmp_path: Path, frames: dict[str, pd.DataFrame]) -> standard_artifacts.ExampleAnomalies:
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri = str(tmp_path / "anomalies")
    executor.Executor().Do(
        {spec.STATISTICS_KEY: [_stats_artifact(tmp_path, frames)], spec.SCHEMA_KEY: [_schema_artifact(tmp_path, frames["train"])]},
        {spec.ANOMALIES_KEY: [anomalies]},
        {"exclude_splits": "[]"},
    )
    return anomalies


TRAIN = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["red", "blue", "red", "blue"], "label": [0, 1, 0, 1]})


def test_construction_keeps_the_stock_channels() -> None:
    component = StrictExampleValidator(
        statistics=channel_utils.as_channel([standard_artifacts.ExampleStatistics()]),
        schema=channel_utils.as_channel([standard_artifacts.Schema()]),
    )
    assert set(component.inputs) == {spec.STATISTICS_KEY, spec.SCHEMA_KEY}
    assert component.outputs[spec.ANOMALIES_KEY].type == standard_artifacts.ExampleAnomalies
    assert component.executor_spec.executor_class is executor.Executor


def test_summary_lists_each_feature_and_reason() -> None:
    anomalies = anomalies_pb2.Anomalies()
    info = anomalies.anomaly_info["colour"]
    reason = info.reason.add()
    reason.short_description = "Unexpected string values"
    reason.description = "Examples contain values missing from the schema: green."
    text = logic.summarize({"eval": anomalies, "train": anomalies_pb2.Anomalies()})
    assert text == (
        "split 'eval':\n  - colour: Unexpected string values: Examples contain values missing from the schema: green."
    )
    assert logic.summarize({"train": anomalies_pb2.Anomalies()}) == ""


def test_clean_data_passes_and_records_the_anomalies_artifact(tmp_path: Path) -> None:
    anomalies = _do(tmp_path, {"train": TRAIN, "eval": TRAIN.iloc[:2]})
    per_split = executor.load_anomalies(anomalies)
    assert set(per_split) == {"train", "eval"}
    assert not any(a.anomaly_info for a in per_split.values())


def test_anomalies_stop_the_run_with_a_readable_summary(tmp_path: Path) -> None:
    drifted = pd.DataFrame({"size": [1.0, 2.0], "colour": ["green", "green"], "label": [0, 1]})
    with pytest.raises(executor.AnomaliesFoundError) as raised:
        _do(tmp_path, {"train": TRAIN, "eval": drifted})
    message = str(raised.value)
    assert "training did not start" in message
    assert "split 'eval'" in message and "colour" in message and "green" in message
    assert "split 'train'" not in message
