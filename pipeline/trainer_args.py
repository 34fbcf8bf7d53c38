"""The Trainer's arguments from the pipeline config: its module (or the built-in one) and custom_config.

No TFX or TensorFlow import, so the CLI can check them before anything runs.
"""

from __future__ import annotations

import dataclasses

from components.trainer.module_file import BUILTIN_RUN_FN, is_builtin
from components.trainer.settings import IMAGE_TASK, TABULAR_TASK, TrainerSettings
from pipeline import configs


def trainer_settings(config: configs.PipelineConfig) -> TrainerSettings:
    """The Trainer's custom_config from the pipeline config (hyperparameters and input shape)."""
    return TrainerSettings(
        task=IMAGE_TASK if config.data.is_image else TABULAR_TASK,
        image_shape=config.image_shape if config.data.is_image else (1, 1, 1),
        label_key=config.label_key,
        **dataclasses.asdict(config.training),
    )


def trainer_module(config: configs.PipelineConfig) -> dict:
    """The Trainer's `module_file` or `run_fn`, and its `custom_config`, for `config`.

    A module file gets `config.custom_config` as it is (TFX's contract). The built-in trainer is
    the same Trainer with the built-in module (by file when the config names it, else by its
    Python path) and its settings as custom_config, `config.custom_config` overriding them.
    """
    if not is_builtin(config.module_file):
        return {"module_file": config.module_file, "custom_config": config.custom_config}
    settings = {**trainer_settings(config).to_custom_config(), **(config.custom_config or {})}
    try:
        TrainerSettings.from_custom_config(settings)
    except (TypeError, ValueError) as error:
        raise configs.ConfigError(f"custom config for the built-in trainer: {error}") from None
    source = {"module_file": config.module_file} if config.module_file else {"run_fn": BUILTIN_RUN_FN}
    return {**source, "custom_config": settings}
