"""Signature inputs from tf.Examples, and the predicted class from a signature's outputs.

A signature that takes one DT_STRING [None] input gets the serialized tf.Examples themselves
(TFX's serving_default convention); any other gets each input from the examples' feature of the
same name (validate.input_row). The predicted class is a `class_output` when the model returns
one, else the arg-max of its only [batch, classes] output, or of the one named like class scores.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from serving import validate

SCORE_OUTPUTS = ("scores", "probabilities", "probs", "predictions", "logits", "output_0")


def parse_examples(examples: Sequence[bytes]) -> list:
    from tensorflow.core.example import example_pb2

    parsed = []
    for record in examples:
        example = example_pb2.Example()
        example.ParseFromString(record)
        parsed.append(example)
    return parsed


def signature_inputs(signature_def, examples: Sequence[bytes]) -> dict[str, np.ndarray]:
    """One row per example for each input of `signature_def` (one zero row when there are none)."""
    if examples and validate._is_serialized_input(signature_def):  # noqa: SLF001 - TFX's rule, one copy
        key = next(iter(signature_def.inputs))
        return {key: np.array(list(examples), dtype=object)}
    rows: dict[str, list[np.ndarray]] = {key: [] for key in signature_def.inputs}
    for example in parse_examples(examples) or [None]:
        for key, info in signature_def.inputs.items():
            array, _ = validate.input_row(key, info, example)
            rows[key].append(array)
    return {key: np.concatenate(values, axis=0) for key, values in rows.items()}


def predicted_classes(outputs: Mapping[str, np.ndarray], class_output: str | None, rows: int) -> np.ndarray | None:
    """Class ids per row from `class_output`, else from class scores; None when there are none."""
    if class_output and class_output in outputs:
        return np.asarray(outputs[class_output]).reshape(-1).astype(np.int64)
    candidates = list(outputs) if len(outputs) == 1 else [name for name in SCORE_OUTPUTS if name in outputs]
    for name in candidates:
        scores = np.asarray(outputs[name])
        if scores.ndim == 2 and scores.shape[0] == rows and scores.shape[1] >= 2 and scores.dtype.kind == "f":
            return scores.argmax(axis=1).astype(np.int64)
    return None
