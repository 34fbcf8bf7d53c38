"""The one model call every peer app makes: a SavedModel's serving_default, numpy in, plain lists out.

Runs inside each peer's own venv (Python 3.11, tensorflow-cpu 2.17.1), so it imports nothing from
the project. TF Serving's row format is what the REST peers answer: `{"predictions": [...]}`.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


class Signature:
    """`serving_default` of one SavedModel with one input; call it with a numpy array."""

    def __init__(self, model_dir: str):
        self.function = tf.saved_model.load(model_dir).signatures["serving_default"]
        (self.input_name, spec), *rest = self.function.structured_input_signature[1].items()
        if rest:
            raise SystemExit(f"{model_dir}: serving_default has several inputs; the peers need one")
        self.dtype = spec.dtype.as_numpy_dtype

    def __call__(self, array: Any) -> dict[str, np.ndarray]:
        tensor = tf.convert_to_tensor(np.asarray(array, dtype=self.dtype))
        return {name: value.numpy() for name, value in self.function(**{self.input_name: tensor}).items()}


def plain(array: np.ndarray) -> list:
    """A JSON-ready nested list; byte strings decoded as UTF-8."""
    if array.dtype.kind in "SO":
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else str(v), otypes=[object])(
            array).tolist()
    return array.tolist()


def rows(outputs: dict[str, np.ndarray]) -> list:
    """TF Serving's row format: one value per row for one output, one object per row for several."""
    columns = {name: plain(value) for name, value in outputs.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    count = len(next(iter(columns.values())))
    return [{name: column[i] for name, column in columns.items()} for i in range(count)]
