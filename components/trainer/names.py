"""Column names as model inputs: the one naming rule, shared by the CSV check and the signatures (no TensorFlow import)."""

from __future__ import annotations

import re

_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def input_key(column: str) -> str:
    """The signature input and Keras input name of a CSV column.

    SavedModel signature keys must be plain identifiers, so a header name such as
    `sepal length (cm)` or `2nd.col` becomes `sepal_length_cm` / `f_2nd_col`; a plain name
    (`sepal_length`) is kept as it is. The tf.Example feature keeps the column's own name.
    """
    if _PLAIN_NAME.fullmatch(column):
        return column
    key = re.sub(r"[^A-Za-z0-9]+", "_", column).strip("_")
    return key if key[:1].isalpha() else f"f_{key}"
