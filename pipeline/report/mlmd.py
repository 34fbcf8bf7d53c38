"""Reads one pipeline run from ML Metadata and the artifacts it points to into a `RunReport` (the thin adapter)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

from pipeline import configs
from pipeline.summary import custom_property as custom
from pipeline.report import history
from pipeline.report.model import (
    CACHED,
    FAILED,
    NOT_RUN,
    RAN,
    RUNNING,
    ComponentRun,
    DataSummary,
    Evaluation,
    FeatureSummary,
    InfraValidation,
    Push,
    RunReport,
    SampleImage,
)

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.sqlite"
SAMPLE_IMAGES = 10
_MISSING_LABEL = -(2**63)  # int64 minimum: an example without a label
# ML Metadata's Execution.State -> the report's words.
_STATES = {0: RUNNING, 1: RUNNING, 2: RUNNING, 3: RAN, 4: FAILED, 5: CACHED, 6: FAILED}
_INPUT_EVENTS = (3, 6)  # INPUT, DECLARED_INPUT
_OUTPUT_EVENTS = (4, 5, 7)  # OUTPUT, DECLARED_OUTPUT, INTERNAL_OUTPUT
_BASELINE_INPUT = "baseline_model"  # the Evaluator's input fed by the latest-blessed-model resolver


class ReportError(ValueError):
    """No ML Metadata to report on (the message names the path and what was expected)."""


@dataclass(frozen=True)
class PipelineRun:
    pipeline_name: str
    run_id: str
    context_id: int
    created: float  # seconds since the epoch


def open_store(pipeline_root: str) -> Any:  # ml_metadata's MetadataStore
    """A read-only ML Metadata store on `<pipeline_root>/metadata.sqlite`."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path = os.path.join(pipeline_root, METADATA_FILE)
    if not os.path.isfile(path):
        raise ReportError(f"no ML Metadata at {path}: expected the pipeline root of an earlier run (--pipeline-root)")
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def list_runs(store: Any) -> list[PipelineRun]:
    """Every recorded run of every pipeline in the store, oldest first."""
    pipelines = {c.id: c.name for c in store.get_contexts_by_type("pipeline")}
    runs = []
    for context in store.get_contexts_by_type("pipeline_run"):
        parents = [p.name for p in store.get_parent_contexts_by_context(context.id) if p.id in pipelines]
        executions = store.get_executions_by_context(context.id)
        if not parents:  # older TFX: the run context has no parent; its executions know the pipeline
            contexts = store.get_contexts_by_execution(executions[0].id) if executions else []
            parents = [c.name for c in contexts if c.id in pipelines]
        if parents:
            runs.append(PipelineRun(parents[0], context.name, context.id, context.create_time_since_epoch / 1000.0))
    return sorted(runs, key=lambda r: (r.created, r.context_id))


class _RunReader:
    """One run's executions, their artifacts by output key, and the nodes that produced their inputs."""

    def __init__(self, store, run: PipelineRun) -> None:
        self.store = store
        self.run = run
        self.prefix = f"{run.pipeline_name}."
        self.node_type_id = store.get_context_type("node").id
        self.executions = sorted(store.get_executions_by_context(run.context_id), key=lambda e: e.id)
        self.node_of: dict[int, str] = {e.id: self._node_id(e.id) for e in self.executions}
        ids = [e.id for e in self.executions]
        self.events = store.get_events_by_execution_ids(ids) if ids else []
        artifact_ids = sorted({e.artifact_id for e in self.events})
        self.artifacts = {a.id: a for a in store.get_artifacts_by_id(artifact_ids)} if artifact_ids else {}

    def _node_id(self, execution_id: int) -> str:
        for context in self.store.get_contexts_by_execution(execution_id):
            if context.name.startswith(self.prefix) and context.type_id == self.node_type_id:
                return context.name[len(self.prefix):]
        return f"execution {execution_id}"

    def execution(self, node_id: str) -> Any:  # the node's MLMD Execution in this run, or None
        matches = [e for e in self.executions if self.node_of[e.id] == node_id]
        return matches[-1] if matches else None

    def artifacts_of(self, node_id: str, key: str, *, inputs: bool = False) -> list:
        execution = self.execution(node_id)
        if execution is None:
            return []
        kinds = _INPUT_EVENTS if inputs else _OUTPUT_EVENTS
        return [
            self.artifacts[e.artifact_id] for e in self.events
            if e.execution_id == execution.id and e.type in kinds and e.path.steps and e.path.steps[0].key == key
            and e.artifact_id in self.artifacts
        ]

    def upstream(self) -> dict[str, tuple[str, ...]]:
        """node id -> the nodes whose output artifacts it read (in this run or, cached, an earlier one)."""
        # The resolver's inputs are earlier runs' outputs (the last blessed model): not this run's flow.
        inputs = [e for e in self.events if e.type in _INPUT_EVENTS and self.node_of[e.execution_id] != configs.RESOLVER_ID]
        producers: dict[int, str] = {}
        if inputs:
            for event in self.store.get_events_by_artifact_ids(sorted({e.artifact_id for e in inputs})):
                if event.type in _OUTPUT_EVENTS and event.artifact_id not in producers:
                    producers[event.artifact_id] = self.node_of.get(event.execution_id) or self._node_id(event.execution_id)
        result: dict[str, list[str]] = {}
        resolved = configs.RESOLVER_ID in self.node_of.values()
        for event in inputs:
            node = self.node_of[event.execution_id]
            producer = producers.get(event.artifact_id)
            key = event.path.steps[0].key if event.path.steps else ""
            if resolved and key == _BASELINE_INPUT and configs.RESOLVER_ID not in result.setdefault(node, []):
                # The resolver records no events of its own: its pick reaches the Evaluator as the baseline.
                result[node].append(configs.RESOLVER_ID)
            if producer and producer != node and producer not in result.setdefault(node, []):
                result[node].append(producer)
        return {node: tuple(parents) for node, parents in result.items()}

    def all_nodes(self) -> list[str]:
        return [c.name[len(self.prefix):] for c in self.store.get_contexts_by_type("node") if c.name.startswith(self.prefix)]


def components(reader: _RunReader) -> list[ComponentRun]:
    upstream = reader.upstream()
    seen, result = set(), []
    for execution in reader.executions:
        node = reader.node_of[execution.id]
        seen.add(node)
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        result.append(ComponentRun(node, _STATES.get(execution.last_known_state, RUNNING), seconds, upstream.get(node, ())))
    result += [ComponentRun(node, NOT_RUN) for node in reader.all_nodes() if node not in seen]
    return result


def latest_run_components(pipeline_root: str) -> list[ComponentRun]:
    """The nodes of the latest run under `pipeline_root` with their states and ML Metadata times."""
    store = open_store(pipeline_root)
    runs = list_runs(store)
    if not runs:
        raise ReportError(f"no pipeline run recorded in {os.path.join(pipeline_root, METADATA_FILE)}")
    return components(_RunReader(store, runs[-1]))


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def label_key(reader: _RunReader) -> str:
    """The Evaluator's label key, else the Trainer's custom_config `label_key`, else `label`."""
    evaluator = reader.execution(configs.EVALUATOR_ID)
    config = _json(custom(evaluator, "eval_config")) if evaluator is not None else None
    for spec in (config or {}).get("model_specs", []):
        if spec.get("label_key"):
            return spec["label_key"]
    trainer = reader.execution(configs.TRAINER_ID)
    settings = _json(custom(trainer, "custom_config")) if trainer is not None else None
    return (settings or {}).get("label_key") or "label"


def _split_files(examples_uri: str, split: str) -> list[str]:
    import tensorflow as tf

    return sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))


def _records(files: list[str]):
    import tensorflow as tf

    compression = "GZIP" if files and files[0].endswith(".gz") else ""
    return tf.data.TFRecordDataset(files, compression_type=compression)


def class_counts(examples_uri: str, split: str, key: str, class_names: list[str]) -> dict[str, int]:
    """Examples per label value in one split (TFDV's statistics only bucket integer labels)."""
    import tensorflow as tf

    spec = {key: tf.io.FixedLenFeature([], tf.int64, default_value=_MISSING_LABEL)}
    counts: dict[int, int] = {}
    for batch in _records(_split_files(examples_uri, split)).batch(4096).map(lambda s: tf.io.parse_example(s, spec)[key]):
        values, _, numbers = tf.unique_with_counts(batch)
        for value, number in zip(values.numpy(), numbers.numpy()):
            counts[int(value)] = counts.get(int(value), 0) + int(number)
    # Every value, a bad one (-1) included: it may be why the Trainer failed.
    return {"(no label)" if value == _MISSING_LABEL else _class_name(str(value), class_names): counts[value]
            for value in sorted(counts)}


def sample_images(examples_uri: str, key: str, shape: list[int], class_names: list[str], limit: int = SAMPLE_IMAGES) -> list[SampleImage]:
    """The first train example of each class (up to `limit`), as uint8 pixels."""
    import numpy as np
    import tensorflow as tf

    height, width, channels = shape
    spec = {"image": tf.io.FixedLenFeature([height * width * channels], tf.int64), key: tf.io.FixedLenFeature([], tf.int64)}
    samples: dict[int, SampleImage] = {}
    for serialized in _records(_split_files(examples_uri, "train")).take(2000):
        parsed = tf.io.parse_single_example(serialized, spec)
        label = int(parsed[key])
        if label not in samples:
            pixels = np.clip(parsed["image"].numpy(), 0, 255).astype(np.uint8).tobytes()
            samples[label] = SampleImage(_class_name(str(label), class_names), height, width, channels, pixels)
        if len(samples) >= limit:
            break
    return [samples[label] for label in sorted(samples)]


def feature_statistics(statistics_uri: str) -> list[FeatureSummary]:
    """TFDV's per-feature numbers for every split (`Split-<name>/FeatureStats.pb`)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import statistics_pb2

    result = []
    for path in sorted(tf.io.gfile.glob(os.path.join(statistics_uri, "Split-*", "FeatureStats.pb"))):
        split = os.path.basename(os.path.dirname(path))[len("Split-"):]
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        with tf.io.gfile.GFile(path, "rb") as handle:
            stats.ParseFromString(handle.read())
        for dataset in stats.datasets:
            for feature in dataset.features:
                name = ".".join(feature.path.step) or feature.name
                kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
                if feature.HasField("num_stats"):
                    num = feature.num_stats
                    result.append(FeatureSummary(name, split, kind, num.common_stats.num_non_missing, num.common_stats.num_missing,
                                                 num.min, num.mean, num.max, num.common_stats.avg_num_values))
                elif feature.HasField("string_stats"):
                    common = feature.string_stats.common_stats
                    result.append(FeatureSummary(name, split, kind, common.num_non_missing, common.num_missing,
                                                 values_per_example=common.avg_num_values))
    return result


def _class_name(label: str, class_names: list[str]) -> str:
    return class_names[int(label)] if label.isdigit() and int(label) < len(class_names) else label


def data_summary(reader: _RunReader, notes: list[str]) -> Optional[DataSummary]:
    examples = reader.artifacts_of(configs.EXAMPLE_GEN_ID, "examples")
    if not examples:
        return None
    artifact = examples[0]
    data = DataSummary(class_names=_json(custom(artifact, "class_names")) or [])
    data.split_counts = _json(custom(artifact, "split_counts")) or {}
    key = label_key(reader)
    split_names = artifact.properties["split_names"].string_value if "split_names" in artifact.properties else ""
    for split in _json(split_names) or list(data.split_counts) or ["train", "eval"]:
        try:
            data.class_counts[split] = class_counts(artifact.uri, split, key, data.class_names)
            data.split_counts.setdefault(split, sum(data.class_counts[split].values()))
        except Exception as exc:  # e.g. a string label: the counts are left out, the rest stands  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            notes.append(f"examples per class of the {split} split: {exc}")
    shape = _json(custom(artifact, "image_shape"))
    if shape:
        try:
            data.samples = sample_images(artifact.uri, key, shape, data.class_names)
        except Exception as exc:  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            notes.append(f"sample images: {exc}")
    for statistics in reader.artifacts_of(configs.STATISTICS_GEN_ID, "statistics")[:1]:
        try:
            data.features = feature_statistics(statistics.uri)
        except Exception as exc:  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            notes.append(f"feature statistics at {statistics.uri}: {exc}")
    return data


def thresholds(eval_config: Optional[dict], metric: str) -> tuple[Optional[float], Optional[float]]:
    """(value lower bound, allowed drop) of `metric` on the overall slice, from the EvalConfig JSON."""
    lower, drop = None, None
    for spec in (eval_config or {}).get("metrics_specs", []):
        for config in spec.get("metrics", []):
            if config.get("class_name", "").lower().replace("_", "") != metric.replace("_", ""):
                continue
            candidates = [t.get("threshold", {}) for t in config.get("per_slice_thresholds", [])]
            candidates += [config["threshold"]] if "threshold" in config else []
            for threshold in candidates:
                lower = threshold.get("value_threshold", {}).get("lower_bound", lower)
                absolute = threshold.get("change_threshold", {}).get("absolute")
                drop = -absolute if absolute is not None else drop
    return lower, drop


def confusion_matrix(evaluation_uri: str, class_names: list[str]) -> tuple[list[str], list[list[float]]]:
    """Labels and [actual][predicted] counts of the candidate's overall-slice MultiClassConfusionMatrixPlot."""
    import tensorflow_model_analysis as tfma

    for plots in tfma.load_plots(evaluation_uri):
        if plots.slice_key.single_slice_keys:
            continue
        for item in plots.plot_keys_and_values:
            if item.key.model_name == "baseline" or not item.value.HasField("multi_class_confusion_matrix_at_thresholds"):
                continue
            matrices = item.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            entries = matrices[0].entries
            ids = sorted({e.actual_class_id for e in entries} | {e.predicted_class_id for e in entries if e.predicted_class_id >= 0})
            index = {class_id: i for i, class_id in enumerate(ids)}
            matrix = [[0.0] * len(ids) for _ in ids]
            for entry in entries:
                if entry.predicted_class_id in index:
                    matrix[index[entry.actual_class_id]][index[entry.predicted_class_id]] += entry.num_weighted_examples
            return [_class_name(str(i), class_names) for i in ids], matrix
    return [], []


def evaluation(reader: _RunReader, class_names: list[str], notes: list[str]) -> Optional[Evaluation]:
    from pipeline.summary import ACCURACY_METRIC, RunSummary, read_evaluation

    evaluator = reader.execution(configs.EVALUATOR_ID)
    if evaluator is None:
        return None
    result = Evaluation(metric=ACCURACY_METRIC)
    result.lower_bound, result.max_drop = thresholds(_json(custom(evaluator, "eval_config")), ACCURACY_METRIC)
    for blessing in reader.artifacts_of(configs.EVALUATOR_ID, "blessing"):
        blessed = custom(blessing, "blessed")
        result.blessed = None if blessed is None else bool(blessed)
    for artifact in reader.artifacts_of(configs.EVALUATOR_ID, "evaluation"):
        summary = RunSummary(executions={})
        try:
            read_evaluation(artifact.uri, summary)
        except Exception as exc:  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            notes.append(f"evaluation metrics at {artifact.uri}: {exc}")
            continue
        result.accuracy, result.baseline_accuracy = summary.accuracy, summary.baseline_accuracy
        result.failures = summary.validation_failures
        ordered = sorted(summary.per_class_accuracy.items(), key=lambda item: (not item[0].isdigit(), int(item[0]) if item[0].isdigit() else 0, item[0]))
        result.per_class_accuracy = {_class_name(label, class_names): value for label, value in ordered}
        try:
            result.confusion_labels, result.confusion = confusion_matrix(artifact.uri, class_names)
            result.example_count = int(sum(map(sum, result.confusion))) or None
        except Exception as exc:  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            notes.append(f"confusion matrix at {artifact.uri}: {exc}")
    return result


def infra_validation(reader: _RunReader) -> Optional[InfraValidation]:
    from components.infra_validator import spec

    for blessing in reader.artifacts_of(configs.INFRA_VALIDATOR_ID, "blessing"):
        def number(key: str) -> Optional[float]:
            value = custom(blessing, key)
            return None if value is None else float(value)

        return InfraValidation(
            blessed=custom(blessing, spec.BLESSED_KEY) == 1,
            mode=custom(blessing, spec.MODE_KEY) or "",
            server=custom(blessing, spec.SERVER_KEY) or "",
            failure_reason=custom(blessing, spec.FAILURE_REASON_KEY) or "",
            attempts=int(custom(blessing, spec.ATTEMPTS_KEY) or 0),
            server_start_seconds=number(spec.SERVER_START_SECONDS_KEY),
            load_seconds=number(spec.LOAD_SECONDS_KEY),
            query_seconds=number(spec.QUERY_SECONDS_KEY),
            requests=tuple(_json(custom(blessing, spec.REQUESTS_KEY)) or ()),
            skipped=tuple(_json(custom(blessing, spec.SKIPPED_KEY)) or ()),
        )
    return None


def push(reader: _RunReader) -> Optional[Push]:
    pusher = reader.execution(configs.PUSHER_ID)
    for pushed in reader.artifacts_of(configs.PUSHER_ID, "pushed_model"):
        return Push(
            pushed=bool(custom(pushed, "pushed")),
            version=custom(pushed, "pushed_version"),
            destination=custom(pushed, "pushed_destination"),
            cached=pusher is not None and pusher.last_known_state == 5,
        )
    return None


def load_run(store: Any, run: PipelineRun, pipeline_root: str = "") -> RunReport:
    """The report data of one run; parts that cannot be read are named in `notes`."""
    reader = _RunReader(store, run)
    report = RunReport(pipeline_name=run.pipeline_name, run_id=run.run_id, pipeline_root=pipeline_root)
    report.components = components(reader)
    if reader.executions:
        report.started = min(e.create_time_since_epoch for e in reader.executions) / 1000.0
        report.seconds = max(e.last_update_time_since_epoch for e in reader.executions) / 1000.0 - report.started
    report.data = data_summary(reader, report.notes)
    for model_run in reader.artifacts_of(configs.TRAINER_ID, "model_run")[:1]:
        try:
            report.training = history.read_history(model_run.uri)
        except Exception as exc:  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            report.notes.append(f"training history at {model_run.uri}: {exc}")
    class_names = report.data.class_names if report.data else []
    report.evaluation = evaluation(reader, class_names, report.notes)
    report.infra = infra_validation(reader)
    report.push = push(reader)
    return report
