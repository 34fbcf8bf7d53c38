"""TrainerSettings: what run_fn needs, as plain JSON values in the Trainer's custom_config.

No TensorFlow import here, so the pipeline definition can build settings cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

LABEL_KEY = "label"

IMAGE_TASK = "image"
TABULAR_TASK = "tabular"


@dataclass(frozen=True)
class TrainerSettings:
    """What run_fn needs, carried through the Trainer's custom_config as plain JSON values."""

    task: str = IMAGE_TASK
    image_shape: tuple[int, int, int] = (8, 8, 1)
    label_key: str = LABEL_KEY
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 0.003
    patience: int = 3
    conv_filters: tuple[int, ...] = (32, 64)
    dense_units: int = 64
    dropout: float = 0.2
    tabular_hidden_units: tuple[int, ...] = (64, 32)
    seed: int = 42

    def to_custom_config(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_custom_config(cls, config: Mapping[str, Any] | None) -> "TrainerSettings":
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"unknown trainer settings {unknown}: expected keys among {sorted(known)}")
        for key in ("image_shape", "conv_filters", "tabular_hidden_units"):
            if key in config:
                config[key] = tuple(int(v) for v in config[key])
        settings = cls(**config)
        if settings.task not in (IMAGE_TASK, TABULAR_TASK):
            raise ValueError(f"task {settings.task!r}: expected {IMAGE_TASK!r} or {TABULAR_TASK!r}")
        return settings
