"""Tiny digits-shaped SavedModels and Examples artifacts for the container tests.

- `save_scores_model`: `serving_default` maps `x` float32 [None, 64] to `scores` [None, 10]
  (named tensors, as REST and gRPC Predict clients send them).
- `save_examples_model`: `serving_default` takes serialized tf.Examples (`examples` [None],
  feature `x`: 64 floats), the one Predict input TFX's stock InfraValidator knows how to send.
- `truncate_variables`: breaks a saved model so that no server can load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

FEATURES = 64  # the digits model's 8x8 pixels, flattened
CLASSES = 10


def weights(version: int) -> tuple[np.ndarray, np.ndarray]:
    """Different, reproducible weights per version, so answers tell versions apart."""
    rng = np.random.default_rng(version)
    return rng.normal(size=(FEATURES, CLASSES)).astype(np.float32), np.full(CLASSES, version, np.float32)


def expected_scores(version: int, rows: np.ndarray) -> np.ndarray:
    w, b = weights(version)
    return rows @ w + b


def save_scores_model(export_dir: Path, version: int) -> Path:
    import tensorflow as tf

    w, b = weights(version)

    class Digits(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.b = tf.Variable(w), tf.Variable(b)

        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": tf.matmul(x, self.w) + self.b}

    module = Digits()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return export_dir


def save_examples_model(export_dir: Path, version: int = 1) -> Path:
    import tensorflow as tf

    w, b = weights(version)

    class DigitsFromExamples(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.b = tf.Variable(w), tf.Variable(b)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples: tf.Tensor) -> dict[str, tf.Tensor]:
            x = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([FEATURES], tf.float32)})["x"]
            return {"scores": tf.matmul(x, self.w) + self.b}

    module = DigitsFromExamples()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    return export_dir


def truncate_variables(export_dir: Path) -> Path:
    for data in sorted((export_dir / "variables").glob("variables.data-*")):
        content = data.read_bytes()
        data.write_bytes(content[: len(content) // 3])
    return export_dir


def write_examples(split_dir: Path, rows: Sequence[Sequence[float]]) -> None:
    """One gzipped TFRecord file of tf.Examples with float feature `x`, as ExampleGen writes."""
    import tensorflow as tf

    split_dir.mkdir(parents=True)
    serialized = [
        tf.train.Example(features=tf.train.Features(feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=row))}))
        .SerializeToString()
        for row in rows
    ]
    writer = tf.data.experimental.TFRecordWriter(str(split_dir / "data_tfrecord-00000-of-00001.gz"), compression_type="GZIP")
    writer.write(tf.data.Dataset.from_tensor_slices(serialized))
