"""Trainer component: TFX's Trainer (same spec, same run_fn contract) with the project's executor.

Usage:

    trainer = Trainer(
        module_file="my_module.py",  # or run_fn="package.module.run_fn"
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(num_steps=100),
        eval_args=trainer_pb2.EvalArgs(num_steps=5),
        custom_config={"anything": "json"},
    )

As TFX does, a module file is packaged as a wheel under the pipeline root when the pipeline is
run or compiled (`tfx.components.util.udf_utils`), and the Trainer installs it from there; the
wheel's version is a hash of the module's directory, so the cache follows the code.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from tfx import types
from tfx.components.util import udf_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.trainer import executor, spec


class TrainerSpec(standard_component_specs.TrainerSpec):
    """TFX's TrainerSpec plus `module_source` (the module as the user named it, for messages)."""

    PARAMETERS = {
        **standard_component_specs.TrainerSpec.PARAMETERS,
        spec.MODULE_SOURCE_KEY: ExecutionParameter(type=str, optional=True),
    }


class Trainer(base_component.BaseComponent):
    """Trains with a user `run_fn(fn_args)` from `module_file` or `run_fn`, exactly as TFX's Trainer.

    Outputs `model` (the SavedModel under `Format-Serving`) and `model_run`. A module that fails,
    saves nothing, or saves no SavedModel with a `serving_default` signature fails the component
    with one line naming the module (executor.ModuleRunError).
    """

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        schema: Optional[types.BaseChannel] = None,
        module_file: Optional[str] = None,
        run_fn: Optional[str] = None,
        train_args: Optional[trainer_pb2.TrainArgs] = None,
        eval_args: Optional[trainer_pb2.EvalArgs] = None,
        custom_config: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if [bool(module_file), bool(run_fn)].count(True) != 1:
            raise ValueError(f"exactly one of module_file and run_fn must be given, got {module_file!r} and {run_fn!r}")
        super().__init__(
            spec=TrainerSpec(
                examples=examples,
                schema=schema,
                train_args=train_args or trainer_pb2.TrainArgs(),
                eval_args=eval_args or trainer_pb2.EvalArgs(),
                module_file=module_file,
                run_fn=run_fn,
                custom_config=json_utils.dumps(dict(custom_config) if custom_config is not None else None),
                module_source=module_file or run_fn,
                model=types.Channel(type=standard_artifacts.Model),
                model_run=types.Channel(type=standard_artifacts.ModelRun),
            )
        )
        if module_file and udf_utils.should_package_user_modules():
            # TFX's own packaging: at run/compile time the file becomes a wheel under the pipeline
            # root and `module_path` points into it (`module_file` is then cleared).
            udf_utils.add_user_module_dependency(
                self, standard_component_specs.MODULE_FILE_KEY, standard_component_specs.MODULE_PATH_KEY
            )
