"""What a finished run did, read back from ML Metadata and the Evaluator's TFMA output."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

from pipeline import configs

logger = logging.getLogger(__name__)

ACCURACY_METRIC = "sparse_categorical_accuracy"
_STATES = {0: "unknown", 1: "new", 2: "running", 3: "complete", 4: "failed", 5: "cached", 6: "canceled"}


@dataclass
class NodeExecution:
    node_id: str
    execution_id: int
    state: str
    seconds: float
    outputs: dict[str, list] = field(default_factory=dict)  # output key -> MLMD artifacts


@dataclass
class RunSummary:
    executions: dict[str, NodeExecution]
    blessed: Optional[bool] = None
    accuracy: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    per_class_accuracy: dict[str, float] = field(default_factory=dict)
    validation_failures: list[str] = field(default_factory=list)
    pushed: Optional[bool] = None
    pushed_version: Optional[str] = None
    pushed_destination: Optional[str] = None
    infra_blessed: Optional[bool] = None
    infra_summary: Optional[str] = None  # the InfraValidator's verdict, reason and timings
    # The Pusher's outputs came from the cache: same model and blessing as an earlier push.
    push_cached: bool = False


def _store(config: configs.PipelineConfig):
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(connection)


def latest_executions(config: configs.PipelineConfig) -> dict[str, NodeExecution]:
    """Latest execution of every node of the pipeline, with its output artifacts by key."""
    from ml_metadata.proto import metadata_store_pb2

    store = _store(config)
    result: dict[str, NodeExecution] = {}
    prefix = f"{config.pipeline_name}."
    for context in store.get_contexts_by_type("node"):
        if not context.name.startswith(prefix):
            continue
        executions = store.get_executions_by_context(context.id)
        if not executions:
            continue
        execution = max(executions, key=lambda e: e.id)
        node = NodeExecution(
            node_id=context.name[len(prefix):],
            execution_id=execution.id,
            state=_STATES.get(execution.last_known_state, str(execution.last_known_state)),
            seconds=(execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0,
        )
        events = [
            e for e in store.get_events_by_execution_ids([execution.id]) if e.type == metadata_store_pb2.Event.OUTPUT
        ]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])} if events else {}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            if event.artifact_id in artifacts:
                node.outputs.setdefault(key, []).append(artifacts[event.artifact_id])
        result[node.node_id] = node
    return result


def custom_property(artifact, name: str):
    """An MLMD artifact's custom property value, or None."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def read_evaluation(uri: str, summary: RunSummary) -> None:
    """Fills accuracy (candidate, baseline, per class) and failed thresholds from TFMA output."""
    import tensorflow_model_analysis as tfma

    for metrics in tfma.load_metrics(uri):
        slice_key = {
            c.column: getattr(c, c.WhichOneof("kind")) for c in metrics.slice_key.single_slice_keys if c.WhichOneof("kind")
        }
        for item in metrics.metric_keys_and_values:
            if item.key.name != ACCURACY_METRIC or item.key.is_diff:
                continue
            value = item.value.double_value.value
            is_baseline = item.key.model_name == "baseline"
            if not slice_key:
                if is_baseline:
                    summary.baseline_accuracy = value
                else:
                    summary.accuracy = value
            elif not is_baseline:
                for _, label in slice_key.items():
                    label = label.decode() if isinstance(label, bytes) else label
                    summary.per_class_accuracy[str(label)] = value
    result = tfma.load_validation_result(uri)
    for failure in result.metric_validations_per_slice:
        for item in failure.failures:
            summary.validation_failures.append(describe_failure(item))
    if result.missing_slices:
        summary.validation_failures.append(f"missing slices: {list(result.missing_slices)}")


def describe_failure(failure) -> str:
    """One line for a TFMA ValidationFailure: metric, value and the bound it missed."""
    name = failure.metric_key.name + (" change vs baseline" if failure.metric_key.is_diff else "")
    value = failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    bounds = []
    for kind in ("value_threshold", "change_threshold"):
        if threshold.HasField(kind):
            bound = getattr(threshold, kind)
            for side, word in (("lower_bound", ">="), ("upper_bound", "<=")):
                if hasattr(bound, side) and bound.HasField(side):
                    bounds.append(f"{word} {getattr(bound, side).value:g}")
            for side in ("absolute", "relative"):
                if hasattr(bound, side) and bound.HasField(side):
                    bounds.append(f"{side} change {getattr(bound, side).value:g}")
    text = f"{name} {value:.4f}, expected {' and '.join(bounds) or 'the threshold'}"
    return f"{text} ({failure.message})" if failure.message else text


def summarize(config: configs.PipelineConfig) -> RunSummary:
    summary = RunSummary(executions=latest_executions(config))
    evaluator = summary.executions.get(configs.EVALUATOR_ID)
    if evaluator:
        for blessing in evaluator.outputs.get("blessing", []):
            blessed = custom_property(blessing, "blessed")
            summary.blessed = None if blessed is None else bool(blessed)
        for evaluation in evaluator.outputs.get("evaluation", []):
            try:
                read_evaluation(evaluation.uri, summary)
            except Exception as exc:  # noqa: BLE001 - the summary must not hide the run's own result
                logger.warning("could not read the evaluation at %s: %s", evaluation.uri, exc)
    infra = summary.executions.get(configs.INFRA_VALIDATOR_ID)
    if infra:
        for blessing in infra.outputs.get("blessing", []):
            blessed = custom_property(blessing, "blessed")
            summary.infra_blessed = None if blessed is None else bool(blessed)
            summary.infra_summary = _infra_summary(blessing)
    pusher = summary.executions.get(configs.PUSHER_ID)
    if pusher:
        summary.push_cached = pusher.state == "cached"
        for pushed in pusher.outputs.get("pushed_model", []):
            flag = custom_property(pushed, "pushed")
            summary.pushed = None if flag is None else bool(flag)
            summary.pushed_version = custom_property(pushed, "pushed_version")
            summary.pushed_destination = custom_property(pushed, "pushed_destination")
    return summary


def _infra_summary(mlmd_blessing) -> Optional[str]:
    from tfx.types import standard_artifacts

    from components.infra_validator import summarize_blessing

    blessing = standard_artifacts.InfraBlessing()
    blessing.set_mlmd_artifact(mlmd_blessing)
    try:
        return summarize_blessing(blessing)
    except Exception as exc:  # noqa: BLE001 - a blessing written by the stock InfraValidator lacks our properties
        logger.debug("no InfraValidator report on %s: %s", mlmd_blessing.uri, exc)
        return None


def _class_label(label: str, class_names: list[str]) -> str:
    if label.isdigit() and int(label) < len(class_names):
        return class_names[int(label)]
    return label


def format_summary(summary: RunSummary, config: configs.PipelineConfig, class_names: Optional[list[str]] = None) -> str:
    """The short text the CLI prints at the end of a run."""
    lines = []
    bound = config.evaluation.accuracy_lower_bound
    if summary.accuracy is not None:
        line = f"eval accuracy {summary.accuracy:.4f} (threshold >= {bound:g}"
        if summary.baseline_accuracy is not None:
            line += f"; baseline {summary.baseline_accuracy:.4f}, allowed drop {config.evaluation.max_accuracy_drop:.3f})"
        else:
            line += "; no blessed baseline yet, first model is compared to the threshold only)"
        lines.append(line)
    if summary.per_class_accuracy:
        names = class_names or []
        worst = sorted(summary.per_class_accuracy.items(), key=lambda item: item[1])[:3]
        lines.append(
            "per-class accuracy, lowest: " + ", ".join(f"{_class_label(k, names)} {v:.3f}" for k, v in worst)
        )
    if summary.blessed is True:
        lines.append("model BLESSED")
    elif summary.blessed is False:
        why = "; ".join(summary.validation_failures) or "see the Evaluator output"
        lines.append(f"model NOT blessed: {why}")
    if summary.infra_blessed is not None:
        lines.append(
            summary.infra_summary
            or ("infra validation passed" if summary.infra_blessed else "infra validation FAILED: model not servable")
        )
    if summary.pushed and summary.push_cached:
        lines.append(
            f"nothing new to push: this model and blessing were already pushed as version "
            f"{summary.pushed_version} ({summary.pushed_destination}); the Pusher's result came from the cache"
        )
    elif summary.pushed:
        lines.append(f"pushed version {summary.pushed_version} to {summary.pushed_destination}")
    elif summary.pushed is False:
        lines.append(f"nothing pushed; {config.serving_dir}/{config.model_name} is unchanged")
    return "\n".join(lines)
