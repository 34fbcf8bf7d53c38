"""Feature keys and parsing specs shared by ExampleGen, Trainer, Evaluator and the signatures."""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

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


def tabular_feature_spec(feature_dtypes: Mapping[str, tf.DType]) -> dict[str, tf.io.FixedLenFeature]:
    """Scalar numeric columns; a missing value parses as 0 (SchemaGen flags missing values)."""
    return {
        name: tf.io.FixedLenFeature([], dtype, default_value=tf.zeros([], dtype))
        for name, dtype in feature_dtypes.items()
    }


def pixels_from_examples(parsed: Mapping[str, tf.Tensor], shape: Sequence[int]) -> tf.Tensor:
    """float32 [N, H, W, C] raw pixels (0-255) from parsed examples."""
    return tf.reshape(tf.cast(parsed[IMAGE_KEY], tf.float32), [-1, *shape])
