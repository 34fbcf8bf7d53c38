"""The serving contract around any Keras model: the one place that builds the exported SavedModel.

A Trainer module's `run_fn` (the built-in one in model.py, or yours) ends with

    from components.trainer.signatures import export_serving_model
    export_serving_model(model, fn_args)

and the SavedModel in `fn_args.serving_model_dir` gets the project's signatures:

Images (the schema has the int `image` feature written by ImageExampleGen):
- `serving_default`: `image` float32 [None, H, W, C] raw pixels 0-255
  -> `probabilities` [None, K], `class_id` int64 [None], `class_name` string [None].
- `serving_examples` (method `tensorflow/serving/classify`): `inputs` serialized tf.Example
  [None] -> `classes` string [None, K] (class names), `scores` float32 [None, K]. Used by TF
  Serving's Classify API, InfraValidator LOAD_AND_QUERY and TFMA (prediction key `scores`;
  `classes` lets TFMA map string labels to class ids).
- `serving_image_bytes`: `image_bytes` encoded PNG/JPEG [None] -> same outputs as serving_default.
Tabular (every other schema): `serving_default` takes one [None] input per feature column, raw
values (float32 for numbers, string for categories; the key is `features.input_key(column)`),
and `serving_examples` as above (an empty CSV cell arrives as NaN / "").

Class names are the asset `assets/class_names.txt`, read through a lookup table, so no client
hard-codes labels. Preprocessing (`preprocess=`, or layers of the model) runs inside the graph.
The model may end in softmax, sigmoid (one unit: binary) or give logits: outputs are turned
into probabilities. Anything the helper cannot derive raises ServingContractError, one line
saying what to pass.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from components.trainer import features

logger = logging.getLogger(__name__)

SERVING_DEFAULT = "serving_default"
EXAMPLES_SIGNATURE = "serving_examples"
IMAGE_BYTES_SIGNATURE = "serving_image_bytes"

IMAGE_INPUT = "image"
IMAGE_BYTES_INPUT = "image_bytes"
EXAMPLES_INPUT = "inputs"

PROBABILITIES_OUTPUT = "probabilities"
CLASS_ID_OUTPUT = "class_id"
CLASS_NAME_OUTPUT = "class_name"
CLASSES_OUTPUT = "classes"
SCORES_OUTPUT = "scores"

CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
PREDICT_METHOD_NAME = "tensorflow/serving/predict"

# What the model's output is: decided from its last layer ("auto"), or said by the caller.
OUTPUT_AUTO = "auto"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LOGITS = "logits"
_OUTPUT_KINDS = (OUTPUT_AUTO, OUTPUT_PROBABILITIES, OUTPUT_LOGITS)

Tensors = Union[tf.Tensor, Mapping[str, tf.Tensor]]


class ServingContractError(ValueError):
    """The model or the data does not fit the serving contract; the message says what to pass."""


@dataclass(frozen=True)
class ImageInputs:
    """Raw pixels: (height, width, channels) of the tf.Example `image` feature."""

    shape: tuple[int, int, int]


@dataclass(frozen=True)
class TabularInputs:
    """Feature columns: tf.Example name -> tf.Example type (int64, float32 or string), label excluded."""

    columns: Mapping[str, tf.DType]


# --- what the data looks like ------------------------------------------------------------------


def image_shape_from_length(length: int) -> tuple[int, int, int]:
    """(s, s, 1) or (s, s, 3) for a flat pixel count; the two never coincide (sqrt(3) is irrational)."""
    for channels in (1, 3):
        side = math.isqrt(length // channels)
        if side > 0 and side * side * channels == length:
            return (side, side, channels)
    raise ServingContractError(
        f"the image feature has {length} values, neither s*s nor s*s*3: pass image_shape=(H, W, C) "
        "or custom_config {\"image_shape\": [H, W, C]}"
    )


def serving_inputs(
    schema_path: Optional[str], *, label_key: str, image_shape: Optional[Sequence[int]] = None
) -> Union[ImageInputs, TabularInputs]:
    """What the serving signatures take, from SchemaGen's schema (and the image shape when given)."""
    if not schema_path:
        if image_shape:
            return ImageInputs(_shape3(image_shape))
        raise ServingContractError(
            "no schema: give the Trainer `schema=` (fn_args.schema_path) or pass image_shape=(H, W, C)"
        )
    schema = features.read_schema(schema_path)
    length = features.image_length(schema)
    if length is not None:
        shape = _shape3(image_shape) if image_shape else image_shape_from_length(length)
        if math.prod(shape) != length:
            raise ServingContractError(f"image_shape {list(shape)} does not match the {length} pixel values of the data")
        return ImageInputs(shape)
    columns = {name: dtype for name, dtype in features.schema_columns(schema).items() if name != label_key}
    if not columns:
        raise ServingContractError(f"the schema has no feature columns besides the label {label_key!r}")
    keys: dict[str, str] = {}
    for name in columns:
        other = keys.setdefault(features.input_key(name), name)
        if other != name:
            raise ServingContractError(
                f"columns {other!r} and {name!r} both become the input name {features.input_key(name)!r}: rename one"
            )
    return TabularInputs(columns)


def _shape3(shape: Sequence[int]) -> tuple[int, int, int]:
    values = tuple(int(v) for v in shape)
    if len(values) != 3 or min(values) < 1:
        raise ServingContractError(f"image_shape must be (height, width, channels), got {list(shape)}")
    return values  # type: ignore[return-value]


# --- adapting the model ------------------------------------------------------------------------


def output_kind(model) -> str:
    """`probabilities` when the last layer ends in softmax or sigmoid, else `logits`."""
    activation = getattr(model.layers[-1], "activation", None) if getattr(model, "layers", None) else None
    name = getattr(activation, "__name__", "")
    return OUTPUT_PROBABILITIES if name in ("softmax", "sigmoid") else OUTPUT_LOGITS


def _single_output(outputs: Any) -> tf.Tensor:
    if isinstance(outputs, Mapping):
        if len(outputs) != 1:
            raise ServingContractError(
                f"the model returns several outputs {sorted(outputs)}: wrap it so it returns one [N, K] tensor of class scores"
            )
        outputs = next(iter(outputs.values()))
    elif isinstance(outputs, (list, tuple)):
        if len(outputs) != 1:
            raise ServingContractError(
                f"the model returns {len(outputs)} outputs: wrap it so it returns one [N, K] tensor of class scores"
            )
        outputs = outputs[0]
    return outputs


def to_probabilities(outputs: Any, kind: str) -> tf.Tensor:
    """float32 [N, K] class probabilities from a model output (one unit: binary, [1 - p, p])."""
    scores = tf.cast(_single_output(outputs), tf.float32)
    if scores.shape.rank == 1:
        scores = tf.expand_dims(scores, -1)
    if scores.shape.rank != 2:
        raise ServingContractError(f"the model output has shape {scores.shape}: expected [N, K] class scores")
    if scores.shape[-1] == 1:
        positive = tf.sigmoid(scores) if kind == OUTPUT_LOGITS else scores
        return tf.concat([1.0 - positive, positive], axis=-1)
    return tf.nn.softmax(scores, axis=-1) if kind == OUTPUT_LOGITS else scores


def _fit_image(model, pixels: tf.Tensor) -> tf.Tensor:
    """Reshapes/casts a [N, H, W, C] tensor to the model's single input (e.g. [N, H*W*C] for a dense net)."""
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1 or not isinstance(pixels, tf.Tensor):
        return pixels
    wanted = inputs[0].shape
    if wanted.rank is None or not wanted[1:].is_fully_defined():
        return tf.cast(pixels, inputs[0].dtype)
    inner = wanted[1:].as_list()
    if pixels.shape[1:].as_list() != inner:
        have = pixels.shape[1:].num_elements()
        if have != math.prod(inner):
            raise ServingContractError(
                f"the model takes {wanted.as_list()} but the images are {pixels.shape.as_list()}: "
                "pass preprocess= to map one to the other"
            )
        pixels = tf.reshape(pixels, [-1, *inner])
    return tf.cast(pixels, inputs[0].dtype)


def _fit_columns(model, columns: Mapping[str, tf.Tensor], numeric: Sequence[str]) -> Tensors:
    """Feeds {column: [N, 1]} to a model with named inputs, or concatenated numbers to a one-input model."""
    names = list(getattr(model, "input_names", None) or [])
    by_key = {features.input_key(name): name for name in columns}
    if len(names) > 1 or (names and (names[0] in columns or names[0] in by_key)):
        fed = {}
        for name in names:
            column = name if name in columns else by_key.get(name)
            if column is None:
                raise ServingContractError(
                    f"model input {name!r} is not a feature column (columns: {', '.join(columns)}); "
                    "name the Keras inputs after the columns or pass preprocess="
                )
            fed[name] = columns[column]
        dtypes = dict(zip(names, (tensor.dtype for tensor in model.inputs)))
        return {name: value if value.dtype == tf.string else tf.cast(value, dtypes[name]) for name, value in fed.items()}
    strings = [name for name in columns if name not in numeric]
    if strings:
        raise ServingContractError(
            f"the model has one input but columns {strings} hold strings: name Keras inputs after the columns "
            "or pass preprocess= to encode them"
        )
    return tf.concat([columns[name] for name in numeric], axis=-1)


# --- the SavedModel ----------------------------------------------------------------------------


def _class_table(class_names_file: str) -> tf.lookup.StaticHashTable:
    # A file path given to TextFileInitializer is tracked as an Asset and copied into assets/.
    initializer = tf.lookup.TextFileInitializer(
        class_names_file,
        key_dtype=tf.int64,
        key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        value_dtype=tf.string,
        value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
    )
    return tf.lookup.StaticHashTable(initializer, default_value="")


class _ClassifierModule(tf.Module):
    """Holds the Keras model and the class-name table; its tf.functions become the signatures."""

    def __init__(self, model, class_names_file: str, num_classes: int, kind: str, preprocess) -> None:
        super().__init__()
        self.model = model
        self.class_table = _class_table(class_names_file)
        self.num_classes = num_classes
        self._kind = kind
        self.preprocess = preprocess

    def probabilities(self, model_inputs: Tensors) -> tf.Tensor:
        return to_probabilities(self.model(model_inputs, training=False), self._kind)

    def named(self, probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            CLASS_ID_OUTPUT: class_id,
            CLASS_NAME_OUTPUT: self.class_table.lookup(class_id),
        }

    def classify(self, probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        names = self.class_table.lookup(tf.range(self.num_classes, dtype=tf.int64))
        classes = tf.tile(tf.expand_dims(names, 0), [tf.shape(probabilities)[0], 1])
        return {CLASSES_OUTPUT: classes, SCORES_OUTPUT: probabilities}


def _write_class_names(class_names: Sequence[str], directory: str) -> str:
    path = os.path.join(directory, features.CLASS_NAMES_FILE)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in class_names))
    return path


def set_method_name(export_dir: str, signature_name: str, method_name: str) -> None:
    """Rewrites one signature's method_name in saved_model.pb.

    TF2's saver marks every signature `tensorflow/serving/predict`; TF Serving's Classify API
    (and InfraValidator, which picks the RPC by method name) need `tensorflow/serving/classify`.
    """
    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as handle:
        saved_model.ParseFromString(handle.read())
    for meta_graph in saved_model.meta_graphs:
        if signature_name in meta_graph.signature_def:
            meta_graph.signature_def[signature_name].method_name = method_name
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(saved_model.SerializeToString())


def _image_signatures(module: _ClassifierModule, shape: tuple[int, int, int]) -> dict[str, Any]:
    height, width, channels = shape
    spec = features.image_feature_spec(shape)

    def model_inputs(pixels):
        x = module.preprocess(pixels) if module.preprocess else pixels
        return _fit_image(module.model, x)

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, channels], tf.float32, name=IMAGE_INPUT)], autograph=False)
    def serve_pixels(image):
        return module.named(module.probabilities(model_inputs(image)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)], autograph=False)
    def serve_examples(inputs):
        pixels = features.pixels_from_examples(tf.io.parse_example(inputs, spec), shape)
        return module.classify(module.probabilities(model_inputs(pixels)))

    def _decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True)
        return tf.ensure_shape(image, [height, width, channels])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)], autograph=False)
    def serve_image_bytes(image_bytes):
        pixels = tf.map_fn(_decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
        return module.named(module.probabilities(model_inputs(pixels)))

    return {SERVING_DEFAULT: serve_pixels, EXAMPLES_SIGNATURE: serve_examples, IMAGE_BYTES_SIGNATURE: serve_image_bytes}


def _tabular_signatures(module: _ClassifierModule, columns: Mapping[str, tf.DType]) -> dict[str, Any]:
    names = list(columns)
    numeric = [name for name in names if not features.is_string(columns[name])]

    def model_inputs(raw):
        return module.preprocess(raw) if module.preprocess else _fit_columns(module.model, raw, numeric)

    specs = [
        tf.TensorSpec([None], tf.string if features.is_string(columns[name]) else tf.float32, name=features.input_key(name))
        for name in names
    ]

    @tf.function(input_signature=specs, autograph=False)
    def serve_features(*values):
        raw = {name: tf.reshape(value, [-1, 1]) for name, value in zip(names, values)}
        return module.named(module.probabilities(model_inputs(raw)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)], autograph=False)
    def serve_examples(inputs):
        return module.classify(module.probabilities(model_inputs(features.parse_columns(inputs, columns))))

    return {SERVING_DEFAULT: serve_features, EXAMPLES_SIGNATURE: serve_examples}


def save_classifier(
    model,
    export_dir: str,
    *,
    inputs: Union[ImageInputs, TabularInputs],
    class_names: Sequence[str],
    preprocess: Optional[Callable[[Tensors], Tensors]] = None,
    output: str = OUTPUT_AUTO,
) -> str:
    """Saves `model` with the signatures for `inputs` (the core of export_serving_model)."""
    if output not in _OUTPUT_KINDS:
        raise ServingContractError(f"output={output!r}: expected one of {', '.join(_OUTPUT_KINDS)}")
    if len(class_names) < 2 or any(not str(name) or "\n" in str(name) for name in class_names):
        raise ServingContractError(f"class_names must be two or more one-line names, got {list(class_names)[:10]}")
    kind = output_kind(model) if output == OUTPUT_AUTO else output
    with tempfile.TemporaryDirectory() as scratch:
        names_file = _write_class_names([str(name) for name in class_names], scratch)
        module = _ClassifierModule(model, names_file, len(class_names), kind, preprocess)
        if isinstance(inputs, ImageInputs):
            functions = _image_signatures(module, inputs.shape)
        else:
            functions = _tabular_signatures(module, dict(inputs.columns))
        # Trace once here, so a model that does not fit fails with our message before anything is written.
        concrete = {name: function.get_concrete_function() for name, function in functions.items()}
        width = concrete[EXAMPLES_SIGNATURE].structured_outputs[SCORES_OUTPUT].shape[-1]
        if width is not None and width != len(class_names):
            raise ServingContractError(
                f"the model scores {width} classes but there are {len(class_names)} class names {list(class_names)[:10]}"
            )
        for name, function in functions.items():
            setattr(module, f"signature_{name}", function)
        tf.saved_model.save(module, export_dir, signatures=concrete)
    set_method_name(export_dir, EXAMPLES_SIGNATURE, CLASSIFY_METHOD_NAME)
    logger.info("exported %s with signatures %s and %d class names", export_dir, sorted(concrete), len(class_names))
    return export_dir


def _output_width(model) -> Optional[int]:
    outputs = getattr(model, "outputs", None)
    if outputs and len(outputs) == 1 and outputs[0].shape.rank == 2:
        width = outputs[0].shape[-1]
        return 2 if width == 1 else width
    return None


def export_serving_model(
    model,
    fn_args,
    *,
    class_names: Optional[Sequence[str]] = None,
    image_shape: Optional[Sequence[int]] = None,
    preprocess: Optional[Callable[[Tensors], Tensors]] = None,
    output: str = OUTPUT_AUTO,
    label_key: Optional[str] = None,
    export_dir: Optional[str] = None,
) -> str:
    """Exports any Keras classifier with the project's serving contract; returns the export dir.

    model: a Keras model returning class scores [N, K] (softmax, sigmoid for K=2 with one unit,
      or logits: `output` says which when "auto", judged from the last layer, would be wrong).
      Image models take what `preprocess` returns from raw pixels [N, H, W, C] 0-255 (a flat
      [N, H*W*C] input is fed by reshaping); tabular models take named inputs (Keras input name =
      the column, or `features.input_key(column)`) of [N, 1] values, or one [N, F] input of the
      numeric columns in schema order.
    fn_args: TFX's FnArgs as run_fn receives it: `serving_model_dir`, `schema_path`,
      `train_files` (for class_names.txt beside ImageExampleGen's examples), `custom_config`
      (`image_shape`, `label_key`, `class_names` are read from it when not passed here).
    class_names: names of the K classes in output order; default class_names.txt beside the
      examples (image data), else "0".."K-1".
    image_shape: (H, W, C); default custom_config["image_shape"], else derived from the schema's
      `image` feature length (s*s -> grey, s*s*3 -> RGB).
    preprocess: a TF function applied inside the graph before the model (e.g. `lambda x: x / 255`).
    """
    config = dict(getattr(fn_args, "custom_config", None) or {})
    label_key = label_key or config.get("label_key") or features.LABEL_KEY
    export_dir = export_dir or getattr(fn_args, "serving_model_dir", None)
    if not export_dir:
        raise ServingContractError("no export directory: fn_args.serving_model_dir is empty and export_dir= was not given")
    schema_path = getattr(fn_args, "schema_path", None) or getattr(fn_args, "schema_file", None)
    inputs = serving_inputs(schema_path, label_key=label_key, image_shape=image_shape or config.get("image_shape"))
    names = list(class_names or config.get("class_names") or [])
    if not names and isinstance(inputs, ImageInputs) and getattr(fn_args, "train_files", None):
        names = features.read_class_names(fn_args.train_files) or []
    if not names:
        width = _output_width(model)
        if width is None:
            raise ServingContractError("cannot tell how many classes the model scores: pass class_names=[...]")
        names = [str(i) for i in range(width)]
    return save_classifier(model, export_dir, inputs=inputs, class_names=names, preprocess=preprocess, output=output)
