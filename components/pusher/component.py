"""LayoutPusher: TFX's Pusher that publishes to `<serving_dir>/<model_name>/<version>/` atomically.

Usage:

    pusher = LayoutPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_validator.outputs["blessing"],  # optional
        serving_dir="runs/serving", model_name="digits")

The version is the next integer after the highest present (serving.layout.publish). Output
`pushed_model` carries the stock properties `pushed` (1/0), `pushed_version`, `pushed_destination`.
"""

from __future__ import annotations

from typing import Optional

from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec
from tfx.types import BaseChannel

from components.pusher import executor, spec


class LayoutPusher(Pusher):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        *,
        model: BaseChannel,
        model_blessing: BaseChannel,
        serving_dir: str,
        model_name: str,
        infra_blessing: Optional[BaseChannel] = None,
    ) -> None:
        if not serving_dir or not model_name:
            raise ValueError(f"serving_dir and model_name are required, got {serving_dir!r} and {model_name!r}")
        super().__init__(
            model=model,
            model_blessing=model_blessing,
            infra_blessing=infra_blessing,
            custom_config={spec.SERVING_DIR_CONFIG: serving_dir, spec.MODEL_NAME_CONFIG: model_name},
        )
