"""What a Trainer module must export, checked: a SavedModel whose `serve` graph has serving_default.

Read with TensorFlow's own parser through tf.io.gfile, so model directories on gs:// work too.
"""

from __future__ import annotations

from typing import Mapping

from components.trainer.module_file import RUN_FN
from serving.saved_model import DEFAULT_SIGNATURE, SERVING_TAG

EXPORT_HINT = (
    "model.save(fn_args.serving_model_dir, save_format='tf') or "
    "tf.saved_model.save(obj, fn_args.serving_model_dir, signatures=...)"
)


class ExportError(RuntimeError):
    """The module exported nothing servable; the message names the module and what was expected."""


def one_line(error: BaseException, limit: int = 600) -> str:
    """`Type: message` on one line, shortened."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text if len(text) <= limit else text[:limit] + ' ...'}"


def serving_signature_defs(model_dir: str) -> Mapping[str, object]:
    """SignatureDefs of the `serve` MetaGraph (internal `__*` entries left out); ExportError if none."""
    from tensorflow.python.saved_model import loader_impl

    try:
        saved_model = loader_impl.parse_saved_model(model_dir)
    except (IOError, OSError) as error:
        raise ExportError(f"{model_dir} holds no readable SavedModel: {one_line(error)}") from None
    for graph in saved_model.meta_graphs:
        if SERVING_TAG in graph.meta_info_def.tags:
            return {name: graph.signature_def[name] for name in sorted(graph.signature_def) if not name.startswith("__")}
    raise ExportError(f"{model_dir}: the SavedModel has no MetaGraph tagged {SERVING_TAG!r}: expected one ({EXPORT_HINT})")


def check_exported_model(serving_model_dir: str, source: str) -> None:
    """Raises ExportError unless `serving_model_dir` holds a SavedModel with a serving_default signature.

    `source` names the module in the message ("module file /path/m.py").
    """
    import tensorflow as tf

    if not tf.io.gfile.exists(serving_model_dir) or not tf.io.gfile.listdir(serving_model_dir):
        raise ExportError(
            f"{source}: {RUN_FN} returned without saving a model: expected a SavedModel in "
            f"fn_args.serving_model_dir ({EXPORT_HINT})"
        )
    names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(serving_model_dir))
    if not {"saved_model.pb", "saved_model.pbtxt"} & set(names):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise ExportError(
            f"{source}: {RUN_FN} saved {shown} in fn_args.serving_model_dir, which is not a SavedModel: "
            f"expected saved_model.pb there ({EXPORT_HINT}; TF Serving loads no .keras or .h5 file)"
        )
    try:
        signatures = serving_signature_defs(serving_model_dir)
    except ExportError as error:
        raise ExportError(f"{source}: {error}") from None
    if DEFAULT_SIGNATURE not in signatures:
        raise ExportError(
            f"{source}: the SavedModel has no {DEFAULT_SIGNATURE!r} signature (it has: {', '.join(signatures) or 'none'}): "
            "the Evaluator, the InfraValidator and the live check call it; export it "
            f"(Keras models get it from model.save; else signatures={{'{DEFAULT_SIGNATURE}': fn}})"
        )
