"""Feature keys, parsing specs and column naming shared by ExampleGen, Trainer, Evaluator and the signatures."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import tensorflow as tf

from components.trainer.names import input_key  # noqa: F401 (one naming rule, importable without TensorFlow)
from components.trainer.settings import LABEL_KEY  # noqa: F401 (the label key lives with the settings)

# tf.Example keys written by components/example_gen: raw pixels 0-255 as int64, row-major HWC,
# and LABEL_KEY (int64 class id).
IMAGE_KEY = "image"
# Class names, one per line, line i = class id i: beside the splits of an Examples artifact
# and as an asset of the exported SavedModel.
CLASS_NAMES_FILE = "class_names.txt"

def image_feature_spec(shape: Sequence[int]) -> dict[str, tf.io.FixedLenFeature]:
    """Parsing spec of an image example without its label (what a serving request carries)."""
    height, width, channels = shape
    return {IMAGE_KEY: tf.io.FixedLenFeature([height * width * channels], tf.int64)}


def image_training_spec(shape: Sequence[int]) -> dict[str, tf.io.FixedLenFeature]:
    spec = image_feature_spec(shape)
    spec[LABEL_KEY] = tf.io.FixedLenFeature([], tf.int64)
    return spec


def pixels_from_examples(parsed: Mapping[str, tf.Tensor], shape: Sequence[int]) -> tf.Tensor:
    """float32 [N, H, W, C] raw pixels (0-255) from parsed examples."""
    return tf.reshape(tf.cast(parsed[IMAGE_KEY], tf.float32), [-1, *shape])


def is_string(dtype: tf.DType) -> bool:
    return dtype == tf.string


def parse_columns(serialized: tf.Tensor, columns: Mapping[str, tf.DType]) -> dict[str, tf.Tensor]:
    """{column: [N, 1]} from serialized tf.Examples: numbers as float32, strings as string.

    `columns` maps a feature name to its tf.Example type (int64, float32 or string). CsvExampleGen
    writes an empty cell as a feature with no values: it reaches the model as NaN (numbers) or
    "" (strings), so the model decides how to fill it.
    """
    parsed = tf.io.parse_example(serialized, {name: tf.io.VarLenFeature(dtype) for name, dtype in columns.items()})
    result = {}
    for name, dtype in columns.items():
        missing = "" if is_string(dtype) else float("nan")
        values = parsed[name] if is_string(dtype) else tf.cast(parsed[name], tf.float32)
        dense = tf.sparse.to_dense(values, default_value=missing)
        # A column with no value in the whole batch has width 0: pad before taking the first value.
        filler = tf.fill([tf.shape(dense)[0], 1], tf.constant(missing, dense.dtype))
        result[name] = tf.reshape(tf.concat([dense, filler], axis=1)[:, :1], [-1, 1])
    return result


def examples_dir(file_patterns: Sequence[str]) -> str:
    """The Examples artifact directory from Trainer's `<uri>/Split-<name>/*` patterns."""
    return os.path.dirname(os.path.dirname(file_patterns[0]))


def read_class_names(file_patterns: Sequence[str]) -> list[str] | None:
    """class_names.txt written by ImageExampleGen beside the splits, or None (CsvExampleGen)."""
    path = os.path.join(examples_dir(file_patterns), CLASS_NAMES_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return [line.rstrip("\n") for line in handle if line.rstrip("\n")]


def read_schema(schema_path: str):
    """SchemaGen's schema.pbtxt as a tensorflow_metadata Schema proto."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    with tf.io.gfile.GFile(schema_path) as handle:
        text_format.Parse(handle.read(), schema)
    return schema


def schema_columns(schema) -> dict[str, tf.DType]:
    """Every feature of the schema with its tf.Example type: int64, float32 or string."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    kinds = {schema_pb2.INT: tf.int64, schema_pb2.FLOAT: tf.float32, schema_pb2.BYTES: tf.string}
    return {feature.name: kinds[feature.type] for feature in schema.feature if feature.type in kinds}


def image_length(schema) -> int | None:
    """Length of the fixed-shape int `image` feature (H*W*C), or None when the data is not images."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    for feature in schema.feature:
        if feature.name == IMAGE_KEY and feature.type == schema_pb2.INT and feature.HasField("shape"):
            dims = [dim.size for dim in feature.shape.dim]
            return dims[0] if len(dims) == 1 else None
    return None
