"""Trainer executor: TFX's GenericExecutor, with module failures and bad exports said in one line.

TFX's contract is unchanged (the same FnArgs, the same run_fn lookup from `module_file`,
`module_path` or `run_fn`); around it, a run_fn that cannot load, raises, saves nothing, or saves
something that is not a servable SavedModel stops the Trainer with a `ModuleRunError` naming the
module and what was expected, before any model artifact is published.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as tfx_trainer_executor
from tfx.components.util import udf_utils
from tfx.types import standard_component_specs

from components.trainer import spec
from components.trainer.module_file import RUN_FN

logger = logging.getLogger(__name__)

SERVING_TAG = "serve"
SERVING_DEFAULT = "serving_default"
_EXPORT_HINT = "model.save(fn_args.serving_model_dir, save_format='tf') or tf.saved_model.save(obj, fn_args.serving_model_dir, signatures=...)"


class ModuleRunError(RuntimeError):
    """The Trainer module failed or exported nothing servable; the message names the module."""


def module_source(exec_properties: Dict[str, Any]) -> str:
    """'module file PATH' or 'run_fn PATH': the module as the user named it."""
    source = exec_properties.get(spec.MODULE_SOURCE_KEY) or exec_properties.get(standard_component_specs.MODULE_FILE_KEY)
    if source:
        return f"module file {source}"
    run_fn = exec_properties.get(standard_component_specs.RUN_FN_KEY)
    if run_fn:
        return f"run_fn {run_fn}"
    return f"module {exec_properties.get(standard_component_specs.MODULE_PATH_KEY)}"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text if len(text) <= 600 else text[:600] + ' ...'}"


def check_exported_model(serving_model_dir: str, source: str) -> None:
    """Raises ModuleRunError unless `serving_model_dir` holds a SavedModel with a serving_default signature."""
    import tensorflow as tf
    from tensorflow.python.saved_model import loader_impl

    if not tf.io.gfile.exists(serving_model_dir) or not tf.io.gfile.listdir(serving_model_dir):
        raise ModuleRunError(
            f"{source}: {RUN_FN} returned without saving a model: expected a SavedModel in "
            f"fn_args.serving_model_dir ({_EXPORT_HINT})"
        )
    names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(serving_model_dir))
    if not {"saved_model.pb", "saved_model.pbtxt"} & set(names):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ModuleRunError(
            f"{source}: {RUN_FN} saved {shown} in fn_args.serving_model_dir, which is not a SavedModel: "
            f"expected saved_model.pb there ({_EXPORT_HINT}; TF Serving loads no .keras or .h5 file)"
        )
    try:
        saved_model = loader_impl.parse_saved_model(serving_model_dir)
    except (IOError, OSError) as error:
        raise ModuleRunError(f"{source}: the SavedModel in fn_args.serving_model_dir does not parse: {_one_line(error)}") from None
    graphs = [g for g in saved_model.meta_graphs if SERVING_TAG in g.meta_info_def.tags]
    if not graphs:
        raise ModuleRunError(f"{source}: the SavedModel has no MetaGraph tagged {SERVING_TAG!r}: expected one ({_EXPORT_HINT})")
    signatures = sorted(name for name in graphs[0].signature_def if not name.startswith("__"))
    if SERVING_DEFAULT not in signatures:
        raise ModuleRunError(
            f"{source}: the SavedModel has no {SERVING_DEFAULT!r} signature (it has: {', '.join(signatures) or 'none'}): "
            f"the Evaluator, the InfraValidator and the live check call it; export it "
            f"(Keras models get it from model.save; else signatures={{'{SERVING_DEFAULT}': fn}})"
        )


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
        except Exception as error:  # noqa: BLE001 - an import of user code can raise anything
            cause = error.__cause__ or error
            raise ModuleRunError(f"{source} cannot be imported: {_one_line(cause)}") from error
        if not callable(run_fn):
            raise ModuleRunError(f"{source}: {RUN_FN} is a {type(run_fn).__name__}, expected a function run_fn(fn_args)")
        logger.info("training with %s", source)
        try:
            run_fn(fn_args)
        except Exception as error:  # noqa: BLE001 - the user's run_fn can raise anything
            raise ModuleRunError(f"{source}: {RUN_FN} raised {_one_line(error)}") from error
        check_exported_model(fn_args.serving_model_dir, source)
        logger.info("model written to %s", fn_args.serving_model_dir)
