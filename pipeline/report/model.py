"""What a run report shows, as plain data: filled from ML Metadata by `mlmd.py`, drawn by `render.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# Execution states as the report names them (ML Metadata's COMPLETE is "ran").
RAN = "ran"
CACHED = "cached"
FAILED = "failed"
RUNNING = "running"
NOT_RUN = "not run"


@dataclass(frozen=True)
class ComponentRun:
    """One node of the pipeline in this run."""

    node_id: str
    state: str  # RAN, CACHED, FAILED, RUNNING or NOT_RUN
    seconds: Optional[float] = None
    upstream: tuple[str, ...] = ()  # node ids whose outputs this node read


@dataclass(frozen=True)
class FeatureSummary:
    """TFDV's numbers for one feature of one split."""

    name: str
    split: str
    kind: str  # INT, FLOAT, STRING, ...
    count: int  # examples carrying the feature
    missing: int
    minimum: Optional[float] = None
    mean: Optional[float] = None
    maximum: Optional[float] = None
    values_per_example: Optional[float] = None


@dataclass(frozen=True)
class SampleImage:
    """A few pixels to look at: row-major uint8, `height * width * channels` bytes."""

    label: str
    height: int
    width: int
    channels: int
    pixels: bytes


@dataclass
class DataSummary:
    """Examples per split and per class, TFDV's feature statistics, sample images."""

    split_counts: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class name -> count
    features: list[FeatureSummary] = field(default_factory=list)
    samples: list[SampleImage] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrainingHistory:
    """Per-epoch scalars the Trainer logged: series name (e.g. `train loss`) -> [(epoch, value)].

    Epochs count from 1. `source` says where they were read (the TensorBoard log directory).
    """

    series: dict[str, list[tuple[int, float]]]
    source: str = ""

    def metric(self, word: str) -> dict[str, list[tuple[int, float]]]:
        """The series whose name contains `word` (`loss`, `accuracy`)."""
        return {name: points for name, points in self.series.items() if word in name}

    @property
    def epochs(self) -> int:
        return max((epoch for points in self.series.values() for epoch, _ in points), default=0)

    def best_epoch(self) -> Optional[tuple[int, str]]:
        """(epoch, why) by validation accuracy (highest, first), else validation loss (lowest, first).

        The built-in Trainer restores the same epoch's weights before export.
        """
        for word, pick in (("accuracy", max), ("loss", min)):
            validation = [p for name, p in self.series.items() if name.startswith("validation") and word in name]
            if validation and validation[0]:
                points = validation[0]
                best = pick(value for _, value in points)
                epoch = next(epoch for epoch, value in points if value == best)
                return epoch, f"{'highest' if pick is max else 'lowest'} validation {word}"
        return None


@dataclass
class Evaluation:
    """The Evaluator's verdict with the numbers it compared."""

    metric: str = "sparse_categorical_accuracy"
    accuracy: Optional[float] = None
    baseline_accuracy: Optional[float] = None
    lower_bound: Optional[float] = None  # the value threshold
    max_drop: Optional[float] = None  # allowed loss against the baseline
    blessed: Optional[bool] = None
    failures: list[str] = field(default_factory=list)
    example_count: Optional[int] = None
    per_class_accuracy: dict[str, float] = field(default_factory=dict)  # class name -> accuracy
    confusion_labels: list[str] = field(default_factory=list)
    confusion: list[list[float]] = field(default_factory=list)  # [actual][predicted] example counts


@dataclass(frozen=True)
class InfraValidation:
    """What the InfraValidator recorded on its blessing."""

    blessed: bool
    mode: str = ""
    server: str = ""
    failure_reason: str = ""
    attempts: int = 0
    server_start_seconds: Optional[float] = None
    load_seconds: Optional[float] = None
    query_seconds: Optional[float] = None
    requests: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Push:
    """The Pusher's result: a new version, an earlier one (cached), or nothing."""

    pushed: bool
    version: Optional[str] = None
    destination: Optional[str] = None
    cached: bool = False


@dataclass(frozen=True)
class LiveCheck:
    """The post-push check on a live endpoint (saved by the CLI beside the report)."""

    ok: bool
    version: Optional[int]
    summary: str
    endpoints: tuple[str, ...] = ()  # one line per endpoint checked


@dataclass
class RunReport:
    """Everything one report page shows; missing parts are None and say so on the page."""

    pipeline_name: str
    run_id: str
    started: Optional[float] = None  # seconds since the epoch
    seconds: Optional[float] = None
    pipeline_root: str = ""
    components: list[ComponentRun] = field(default_factory=list)
    data: Optional[DataSummary] = None
    training: Optional[TrainingHistory] = None
    evaluation: Optional[Evaluation] = None
    infra: Optional[InfraValidation] = None
    push: Optional[Push] = None
    live_check: Optional[LiveCheck] = None
    error: str = ""  # why the run failed, as the CLI said it (ML Metadata keeps only the state)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def failed(self) -> list[str]:
        return [c.node_id for c in self.components if c.state == FAILED]


@dataclass(frozen=True)
class RunEntry:
    """One line of the index page."""

    run_id: str
    file_name: str
    started: Optional[float]
    outcome: str  # e.g. "pushed version 2", "not blessed", "Trainer failed"
    pipeline_name: str = ""
