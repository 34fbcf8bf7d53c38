"""A model file as a SavedModel directory for `serving.push`: a Keras file converted, a TF1 frozen graph wrapped.

A `.keras` file or a legacy `.h5` file (as seed 000 saves) is loaded with tf_keras (Keras 3 for
`.keras` when that fails) and saved as a SavedModel in a temporary directory. A TF1 frozen
GraphDef `.pb` (seed 004) is wrapped into one (graph import + SavedModelBuilder) with a
`serving_default` predict signature over its input and output tensors: the names given, else the
guess of `python -m serving.inspect` (Placeholders in, the one sink out; refused when there is no
single sink). Signature keys are the tensor names with `/` and other non-word characters as `_`
and `:0` dropped (`input/x:0` -> `input_x`). A SavedModel directory is used as it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from serving import inspect
from serving.errors import PushError, shorten
from serving.saved_model import DEFAULT_SIGNATURE, SERVING_TAG

logger = logging.getLogger(__name__)


def _convert_keras_file(path: Path, out_dir: Path) -> None:
    """Loads a `.h5` / `.keras` file and saves it as a SavedModel with a serving signature."""
    import tensorflow as tf

    errors = []
    try:
        import tf_keras

        model = tf_keras.models.load_model(path, compile=False)
        tf.saved_model.save(model, str(out_dir))
        return
    except Exception as error:  # noqa: BLE001 - try the other Keras before giving up
        errors.append(f"tf_keras: {shorten(str(error), 300)}")
        shutil.rmtree(out_dir, ignore_errors=True)
    if path.suffix == ".keras":
        try:
            import keras

            model = keras.saving.load_model(path, compile=False)
            model.export(str(out_dir))
            return
        except Exception as error:  # noqa: BLE001
            errors.append(f"keras 3: {shorten(str(error), 300)}")
            shutil.rmtree(out_dir, ignore_errors=True)
    raise PushError(f"{path} could not be loaded as a Keras model ({'; '.join(errors)})")


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def signature_key(tensor_name: str) -> str:
    """The signature key of a graph tensor: `input/x:0` -> `input_x`, `split:1` -> `split_1`."""
    op, _, index = _tensor_name(tensor_name).partition(":")
    key = re.sub(r"[^A-Za-z0-9_]", "_", op)
    return key if index == "0" else f"{key}_{index}"


def choose_frozen_graph_tensors(
    graph_def, input_tensors: Sequence[str] = (), output_tensors: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """(inputs, outputs) tensor names to serve: those given (checked), else inspect's guess.

    The guess takes every Placeholder as an input and the one sink tensor as the output; no
    Placeholder, or no single sink, is refused with the candidates named.
    """
    guessed_inputs, guessed_outputs = inspect.frozen_graph_io(graph_def)
    ops = {node.name for node in graph_def.node}
    chosen = []
    for given, guessed, kind, flag in (
        (input_tensors, guessed_inputs, "input", "--input-tensors"),
        (output_tensors, guessed_outputs, "output", "--output-tensors"),
    ):
        names = [_tensor_name(name) for name in given]
        for name in names:
            if name.partition(":")[0] not in ops:
                raise PushError(f"{kind} tensor {name!r} is not in the graph: expected an op name with an "
                                f"optional :index (likely {kind}s: {', '.join(t.tensor for t in guessed) or 'none'})")
        if not names:
            candidates = [t.tensor for t in guessed]
            if not candidates or (kind == "output" and len(candidates) > 1):
                raise PushError(
                    f"cannot guess the graph's {kind} tensors (candidates: {', '.join(candidates) or 'none'}): "
                    f"pass {flag} NAME[,NAME...]"
                )
            names = candidates
        keys = [signature_key(name) for name in names]
        if len(set(keys)) != len(keys):
            raise PushError(f"{kind} tensors {names} give clashing signature keys {keys}: pass fewer or other tensors")
        chosen.append(names)
    return chosen[0], chosen[1]


def _wrap_frozen_graph(
    path: Path, out_dir: Path, input_tensors: Sequence[str], output_tensors: Sequence[str]
) -> None:
    """Wraps a TF1 frozen GraphDef into a SavedModel with a `serving_default` predict signature."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    try:
        graph_def = inspect.read_graph_def(path)
        inputs, outputs = choose_frozen_graph_tensors(graph_def, input_tensors, output_tensors)
    except inspect.InspectError as error:
        raise PushError(f"{path}: {error}" if str(path) not in str(error) else str(error)) from None
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(graph_def, name="")
        try:
            tensors = [{signature_key(n): graph.get_tensor_by_name(n) for n in names} for names in (inputs, outputs)]
        except (KeyError, ValueError) as error:
            raise PushError(f"{path}: {error}") from None
        signature = tf1.saved_model.signature_def_utils.predict_signature_def(*tensors)
        with tf1.Session(graph=graph) as session:
            builder = tf1.saved_model.builder.SavedModelBuilder(str(out_dir))
            builder.add_meta_graph_and_variables(
                session, [SERVING_TAG], signature_def_map={DEFAULT_SIGNATURE: signature}, strip_default_attrs=True
            )
            builder.save()
    logger.info("wrapped %s: inputs %s, outputs %s", path, inputs, outputs)


@contextlib.contextmanager
def saved_model_dir(
    model: str | os.PathLike[str], *, input_tensors: Sequence[str] = (), output_tensors: Sequence[str] = ()
) -> Iterator[Path]:
    """Yields a SavedModel directory for `model`: itself, or a temporary conversion of a Keras
    file or a frozen graph (`input_tensors` / `output_tensors` name its tensors; frozen graphs only)."""
    path = Path(model)
    if (input_tensors or output_tensors) and (path.suffix != ".pb" or path.is_dir()):
        raise PushError(f"--input-tensors / --output-tensors apply to a frozen GraphDef .pb file only, not {path}")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise PushError(f"{path} is a directory but not a SavedModel: expected saved_model.pb in it")
        yield path
        return
    if not path.is_file():
        raise PushError(
            f"{path} does not exist: expected a SavedModel directory, a .keras or .h5 file, or a frozen graph .pb"
        )
    if path.name == "saved_model.pb":
        raise PushError(f"{path} is a SavedModel's graph: pass its directory {path.parent}")
    if path.suffix not in (".pb", ".h5", ".hdf5", ".keras"):
        raise PushError(f"{path} is not a SavedModel directory, a .keras or .h5 file, or a frozen graph .pb")
    with tempfile.TemporaryDirectory(prefix="push-convert-") as scratch:
        out_dir = Path(scratch, "saved_model")
        if path.suffix == ".pb":
            logger.info("wrapping frozen graph %s into a SavedModel in %s", path, out_dir)
            _wrap_frozen_graph(path, out_dir, input_tensors, output_tensors)
        else:
            logger.info("converting %s to a SavedModel in %s", path, out_dir)
            _convert_keras_file(path, out_dir)
        yield out_dir
