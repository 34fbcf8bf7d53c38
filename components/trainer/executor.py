"""Trainer executor: TFX's GenericExecutor, with module failures and bad exports said in one line.

TFX's contract is unchanged (the same FnArgs, the same run_fn lookup from `module_file`,
`module_path` or `run_fn`); around it, a run_fn that cannot be loaded or raises stops the Trainer
with a `ModuleRunError`, and one that saves nothing servable with an `export.ExportError`, each
naming the module and what was expected, before any model artifact is published. What run_fn
prints (Keras progress bars) goes to `<model_run>/run_fn_output.txt`, not the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as tfx_trainer_executor
from tfx.components.util import udf_utils
from tfx.types import standard_component_specs

from components.trainer import spec
from components.trainer.autograph import skip_autograph_for_tf_keras
from components.trainer.export import RUN_FN, check_exported_model, one_line

logger = logging.getLogger(__name__)

OUTPUT_FILE = "run_fn_output.txt"
# Python, NumPy and TF seeds set before every run_fn (the built-in trainer's default seed too).
DEFAULT_SEED = 42


class ModuleRunError(RuntimeError):
    """The Trainer module could not be loaded or its run_fn raised; the message names the module."""


def module_source(exec_properties: Dict[str, Any]) -> str:
    """'module file PATH' or 'run_fn PATH': the module as the user named it."""
    source = exec_properties.get(spec.MODULE_SOURCE_KEY) or exec_properties.get(standard_component_specs.MODULE_FILE_KEY)
    if source:
        return f"module file {source}" if source.endswith(".py") else f"run_fn {source}"
    run_fn = exec_properties.get(standard_component_specs.RUN_FN_KEY)
    if run_fn:
        return f"run_fn {run_fn}"
    return f"module {exec_properties.get(standard_component_specs.MODULE_PATH_KEY)}"


@contextlib.contextmanager
def _stdout_to(path: str):
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "w") as handle, contextlib.redirect_stdout(handle):
        yield


class Executor(tfx_trainer_executor.GenericExecutor):
    """GenericExecutor.Do, with the module's failures turned into one line that names it."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        source = module_source(exec_properties)
        fn_args = self._GetFnArgs(input_dict, output_dict, exec_properties)
        try:
            run_fn = udf_utils.get_fn(exec_properties, RUN_FN)
        except AttributeError:
            raise ModuleRunError(f"{source} has no {RUN_FN}: expected a top-level {RUN_FN}(fn_args)") from None
        except Exception as error:  # noqa: BLE001 - importing user code can raise anything
            cause = error.__cause__ or error
            raise ModuleRunError(f"{source} cannot be imported: {one_line(cause)}") from error
        if not callable(run_fn):
            raise ModuleRunError(f"{source}: {RUN_FN} is a {type(run_fn).__name__}, expected a function {RUN_FN}(fn_args)")
        output = os.path.join(fn_args.model_run_dir, OUTPUT_FILE)
        logger.info("training with %s (its output: %s)", source, output)
        skip_autograph_for_tf_keras()
        # Reproducible runs: a module that sets no seed (TFX's tutorials do not) trains the same
        # way every time; one that sets its own (the built-in trainer: custom_config "seed") wins.
        import tf_keras

        tf_keras.utils.set_random_seed(DEFAULT_SEED)
        try:
            with _stdout_to(output):
                run_fn(fn_args)
        except Exception as error:  # noqa: BLE001 - the user's run_fn can raise anything
            raise ModuleRunError(f"{source}: {RUN_FN} raised {one_line(error)}") from error
        check_exported_model(fn_args.serving_model_dir, source)
        logger.info("model written to %s", fn_args.serving_model_dir)
