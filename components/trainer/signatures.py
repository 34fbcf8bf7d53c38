"""The one place that builds the exported SavedModel and its serving signatures.

Images:
- `serving_default`: `image` float32 [None, H, W, C] raw pixels 0-255
  -> `probabilities` [None, K], `class_id` int64 [None], `class_name` string [None].
- `serving_examples` (method `tensorflow/serving/classify`): `inputs` serialized tf.Example
  [None] -> `classes` string [None, K] (class names), `scores` float32 [None, K]. Used by TF
  Serving's Classify API, InfraValidator LOAD_AND_QUERY and TFMA (prediction key `scores`).
- `serving_image_bytes`: `image_bytes` encoded PNG/JPEG [None] -> same outputs as serving_default.
Tabular: `serving_default` takes one float32 [None] input per feature column (raw values),
and `serving_examples` as above.

Class names are the asset `assets/class_names.txt`, read through a lookup table, so no
client hard-codes labels. Scaling (pixels / 255, feature normalisation) is inside the model.
"""

from __future__ import annotations

import os
import tempfile
from typing import Mapping, Sequence

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from components.trainer import features

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

    def __init__(self, model, class_names_file: str, num_classes: int) -> None:
        super().__init__()
        self.model = model
        self.class_table = _class_table(class_names_file)
        self.num_classes = num_classes

    def _named(self, probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            CLASS_ID_OUTPUT: class_id,
            CLASS_NAME_OUTPUT: self.class_table.lookup(class_id),
        }

    def _classify(self, probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
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


def export_image_classifier(model, export_dir: str, class_names: Sequence[str], shape: Sequence[int]) -> None:
    """Saves `model` (raw pixels in, probabilities out) with the three image signatures."""
    height, width, channels = (int(v) for v in shape)
    with tempfile.TemporaryDirectory() as scratch:
        module = _ClassifierModule(model, _write_class_names(class_names, scratch), len(class_names))
        spec = features.image_feature_spec((height, width, channels))

        @tf.function(input_signature=[tf.TensorSpec([None, height, width, channels], tf.float32, name=IMAGE_INPUT)])
        def serve_pixels(image):
            return module._named(module.model(image, training=False))  # noqa: SLF001 - the module's own helpers

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
        def serve_examples(inputs):
            parsed = tf.io.parse_example(inputs, spec)
            pixels = features.pixels_from_examples(parsed, (height, width, channels))
            return module._classify(module.model(pixels, training=False))  # noqa: SLF001

        def _decode(data):
            image = tf.io.decode_image(data, channels=channels, expand_animations=False)
            image = tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True)
            return tf.ensure_shape(image, [height, width, channels])

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
        def serve_image_bytes(image_bytes):
            pixels = tf.map_fn(_decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
            return module._named(module.model(pixels, training=False))  # noqa: SLF001

        module.serve_pixels = serve_pixels
        module.serve_examples = serve_examples
        module.serve_image_bytes = serve_image_bytes
        tf.saved_model.save(
            module,
            export_dir,
            signatures={
                SERVING_DEFAULT: serve_pixels,
                EXAMPLES_SIGNATURE: serve_examples,
                IMAGE_BYTES_SIGNATURE: serve_image_bytes,
            },
        )
    set_method_name(export_dir, EXAMPLES_SIGNATURE, CLASSIFY_METHOD_NAME)


def export_tabular_classifier(
    model, export_dir: str, class_names: Sequence[str], feature_dtypes: Mapping[str, tf.DType]
) -> None:
    """Saves a dict-input `model` with raw-feature serving_default and serving_examples."""
    names = list(feature_dtypes)
    spec = features.tabular_feature_spec(feature_dtypes)
    with tempfile.TemporaryDirectory() as scratch:
        module = _ClassifierModule(model, _write_class_names(class_names, scratch), len(class_names))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name=name) for name in names])
        def serve_features(*columns):
            inputs = {name: tf.reshape(column, [-1, 1]) for name, column in zip(names, columns)}
            return module._named(module.model(inputs, training=False))  # noqa: SLF001

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
        def serve_examples(inputs):
            parsed = tf.io.parse_example(inputs, spec)
            columns = {name: tf.reshape(tf.cast(parsed[name], tf.float32), [-1, 1]) for name in names}
            return module._classify(module.model(columns, training=False))  # noqa: SLF001

        module.serve_features = serve_features
        module.serve_examples = serve_examples
        tf.saved_model.save(
            module, export_dir, signatures={SERVING_DEFAULT: serve_features, EXAMPLES_SIGNATURE: serve_examples}
        )
    set_method_name(export_dir, EXAMPLES_SIGNATURE, CLASSIFY_METHOD_NAME)
