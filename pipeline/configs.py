"""The one config source of the pipeline: frozen dataclasses, no environment read at import."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from components.trainer.settings import TrainerSettings

# Data kinds the pipeline ingests; every image kind goes through components/example_gen.
IMAGE_KINDS = ("digits", "cifar10", "mnist", "fashion_mnist", "images")
DATA_KINDS = IMAGE_KINDS + ("csv",)

# (height, width, channels) of the tf.Example `image` feature for kinds with a fixed size;
# `images:DIR` uses PipelineConfig.image_size and 3 channels.
IMAGE_SHAPES: Mapping[str, tuple[int, int, int]] = {
    "digits": (8, 8, 1),
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
}
FOLDER_IMAGE_CHANNELS = 3

# Component ids: stable, they name MLMD contexts and Kubeflow tasks (docs/pipeline.md lists them).
EXAMPLE_GEN_ID = "ExampleGen"
STATISTICS_GEN_ID = "StatisticsGen"
SCHEMA_GEN_ID = "SchemaGen"
EXAMPLE_VALIDATOR_ID = "ExampleValidator"
TRAINER_ID = "Trainer"
RESOLVER_ID = "latest_blessed_model_resolver"
EVALUATOR_ID = "Evaluator"
INFRA_VALIDATOR_ID = "InfraValidator"
PUSHER_ID = "Pusher"

_PIPELINE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DEFAULT_RUNS_DIR = "runs"


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names it and what was expected."""


@dataclass(frozen=True)
class DataSource:
    """Where the examples come from: `kind` in DATA_KINDS, `path` for everything but digits."""

    kind: str = "digits"
    path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ConfigError(
                f"unknown dataset {self.kind!r}: expected one of {', '.join(DATA_KINDS)} "
                "(e.g. --data digits, --data cifar10:PATH, --data images:DIR, --data csv:FILE)"
            )
        if self.kind == "digits" and self.path:
            raise ConfigError(f"digits is bundled with scikit-learn and takes no path, got {self.path!r}")
        if self.kind != "digits" and not self.path:
            raise ConfigError(f"dataset {self.kind!r} needs a path: --data {self.kind}:PATH")

    @classmethod
    def parse(cls, text: str) -> "DataSource":
        """Parses `digits`, `cifar10:PATH`, `mnist:PATH`, `fashion_mnist:PATH`, `images:DIR`, `csv:FILE`."""
        kind, sep, path = text.strip().partition(":")
        kind = kind.strip().lower().replace("-", "_")
        return cls(kind=kind, path=path.strip() if sep else "")

    def __str__(self) -> str:
        return self.kind if not self.path else f"{self.kind}:{self.path}"

    @property
    def is_image(self) -> bool:
        return self.kind in IMAGE_KINDS


_TRAINER_DEFAULTS = TrainerSettings()


@dataclass(frozen=True)
class TrainingConfig:
    """Trainer hyperparameters; the defaults reach >= 95% eval accuracy on digits in seconds.

    Defaults come from `TrainerSettings`, the Trainer's own record of them: one source.
    """

    epochs: int = _TRAINER_DEFAULTS.epochs
    batch_size: int = _TRAINER_DEFAULTS.batch_size
    learning_rate: float = _TRAINER_DEFAULTS.learning_rate
    # EarlyStopping patience in epochs, on validation accuracy.
    patience: int = _TRAINER_DEFAULTS.patience
    conv_filters: tuple[int, ...] = _TRAINER_DEFAULTS.conv_filters
    dense_units: int = _TRAINER_DEFAULTS.dense_units
    dropout: float = _TRAINER_DEFAULTS.dropout
    # Hidden layers of the dense net used for CSV data.
    tabular_hidden_units: tuple[int, ...] = _TRAINER_DEFAULTS.tabular_hidden_units
    seed: int = _TRAINER_DEFAULTS.seed

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")
        if self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class EvalConfig:
    """Blessing rules: an accuracy floor and 'no worse than the latest blessed model'."""

    accuracy_lower_bound: float = 0.9
    # The candidate may lose at most this much absolute accuracy against the baseline.
    max_accuracy_drop: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.accuracy_lower_bound <= 1:
            raise ConfigError(f"accuracy lower bound must be in [0, 1], got {self.accuracy_lower_bound}")
        if not 0 <= self.max_accuracy_drop <= 1:
            raise ConfigError(f"max accuracy drop must be in [0, 1], got {self.max_accuracy_drop}")


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "pipeline"


@dataclass(frozen=True)
class PipelineConfig:
    """Everything create_pipeline needs. Build with `PipelineConfig.for_data(...)` for defaults."""

    pipeline_name: str
    pipeline_root: str
    serving_dir: str
    model_name: str
    data: DataSource = field(default_factory=DataSource)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    # Target (height, width) of `images:DIR` pictures; the other image kinds have fixed sizes.
    image_size: tuple[int, int] = (32, 32)
    # Name of the label column of a CSV file (integer class ids 0..K-1).
    label_key: str = "label"
    # Share of examples held out for evaluation when the data has no split of its own.
    eval_percent: int = 20
    enable_cache: bool = True
    # Changes when the input files change so a cached ExampleGen is not reused on new data;
    # filled by the CLI (`source_fingerprint`), empty when compiling for a cluster.
    data_fingerprint: str = ""
    # The Trainer's module file (TFX's `module_file`: a top-level run_fn(fn_args)); empty means the
    # built-in trainer by its Python path (components.trainer.model.run_fn), as installed.
    module_file: str = ""
    # TFX TrainArgs / EvalArgs num_steps: fn_args.train_steps / eval_steps (None: unset, as in TFX).
    train_steps: Optional[int] = None
    eval_steps: Optional[int] = None
    # fn_args.custom_config of a module file (a JSON object); for the built-in trainer, overrides
    # of its settings (components.trainer.settings.TrainerSettings keys).
    custom_config: Optional[Mapping[str, Any]] = None

    def __post_init__(self) -> None:
        if not _PIPELINE_NAME_RE.match(self.pipeline_name):
            raise ConfigError(
                f"pipeline name {self.pipeline_name!r} is not allowed: expected [a-z0-9][a-z0-9-]* "
                "(Kubeflow's rule: lower case, digits and '-', no underscores)"
            )
        if not self.pipeline_root:
            raise ConfigError("pipeline_root must not be empty")
        if not self.serving_dir:
            raise ConfigError("serving_dir must not be empty")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", self.model_name):
            raise ConfigError(
                f"model name {self.model_name!r} is not allowed: expected letters, digits, '_', '-' "
                "or '.', starting with a letter or digit"
            )
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ConfigError(f"image size must be (height, width) >= 1, got {self.image_size}")
        if not 1 <= self.eval_percent <= 90:
            raise ConfigError(f"eval percent must be in [1, 90], got {self.eval_percent}")
        for name, steps in (("train steps", self.train_steps), ("eval steps", self.eval_steps)):
            if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
                raise ConfigError(f"{name} must be an integer >= 1 (or unset), got {steps!r}")
        if self.custom_config is not None and not isinstance(self.custom_config, Mapping):
            raise ConfigError(f"custom config must be a JSON object (a mapping), got {type(self.custom_config).__name__}")

    @classmethod
    def for_data(cls, data: DataSource | str = "digits", *, runs_dir: str = DEFAULT_RUNS_DIR, **overrides) -> "PipelineConfig":
        """Defaults derived from the data: model `<kind>`, pipeline `<kind>-pipeline`, all under runs/."""
        source = DataSource.parse(data) if isinstance(data, str) else data
        model_name = overrides.pop("model_name", None) or source.kind
        pipeline_name = overrides.pop("pipeline_name", None) or f"{_slug(model_name)}-pipeline"
        pipeline_root = overrides.pop("pipeline_root", None) or os.path.join(runs_dir, pipeline_name)
        serving_dir = overrides.pop("serving_dir", None) or os.path.join(runs_dir, "serving")
        return cls(
            pipeline_name=pipeline_name,
            pipeline_root=pipeline_root,
            serving_dir=serving_dir,
            model_name=model_name,
            data=source,
            **overrides,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "PipelineConfig":
        """Reads PIPELINE_DATA, PIPELINE_ROOT, SERVING_DIR, MODEL_NAME, PIPELINE_NAME (all optional)."""
        env = os.environ if environ is None else environ
        overrides = {
            key: env[var]
            for key, var in (
                ("pipeline_root", "PIPELINE_ROOT"),
                ("serving_dir", "SERVING_DIR"),
                ("model_name", "MODEL_NAME"),
                ("pipeline_name", "PIPELINE_NAME"),
            )
            if env.get(var)
        }
        return cls.for_data(env.get("PIPELINE_DATA") or "digits", **overrides)

    def replace(self, **changes) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the images; ConfigError for tabular data."""
        if self.data.kind in IMAGE_SHAPES:
            return IMAGE_SHAPES[self.data.kind]
        if self.data.kind == "images":
            return (self.image_size[0], self.image_size[1], FOLDER_IMAGE_CHANNELS)
        raise ConfigError(f"{self.data.kind} data has no image shape")

    @property
    def metadata_path(self) -> str:
        """SQLite ML Metadata file used by the local runners."""
        return os.path.join(self.pipeline_root, "metadata.sqlite")
