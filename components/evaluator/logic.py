"""Which signature and output TFMA evaluates, read from the model's own signatures (no TFX import).

- The project's built-in models: `serving_examples` (serialized tf.Example in, `scores` out), what
  TF Serving's Classify API serves.
- Any other model: `serving_default`, TFX's convention. Its input is serialized tf.Examples (one
  DT_STRING [None] input) or named features, which TFMA decodes from the examples with the schema.
  Its output is the only one, or the one named like class scores (`scores`, `probabilities`,
  `probs`, `predictions`, `logits`, `output_0`), shaped [batch, classes]: logits and
  probabilities alike, since accuracy takes the arg-max.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from serving.saved_model import DEFAULT_SIGNATURE, DT_STRING, SCORE_OUTPUTS

BUILTIN_SIGNATURE = "serving_examples"
BUILTIN_SCORES = "scores"


class SignatureError(ValueError):
    """The model has no signature TFMA can evaluate; the message says what to export."""


@dataclass(frozen=True)
class EvalSignature:
    signature_name: str
    prediction_key: str
    takes_examples: bool  # serialized tf.Examples in; else named features decoded with the schema


def _takes_examples(signature_def) -> bool:
    if len(signature_def.inputs) != 1:
        return False
    info = next(iter(signature_def.inputs.values()))
    return info.dtype == DT_STRING and not info.tensor_shape.unknown_rank and len(info.tensor_shape.dim) == 1


def _classes(info) -> int | None:
    """The last dimension of an output ([batch, classes]); None when unknown, 0 for rank < 2."""
    shape = info.tensor_shape
    if shape.unknown_rank:
        return None
    if len(shape.dim) < 2:
        return 0
    size = shape.dim[-1].size
    return None if size < 0 else size


def eval_signature(signature_defs: Mapping[str, object], model_dir: str = "the model") -> EvalSignature:
    """The signature and prediction key TFMA evaluates `model_dir` with; SignatureError if none fits."""
    builtin = signature_defs.get(BUILTIN_SIGNATURE)
    if builtin is not None and BUILTIN_SCORES in builtin.outputs:
        return EvalSignature(BUILTIN_SIGNATURE, BUILTIN_SCORES, True)
    default = signature_defs.get(DEFAULT_SIGNATURE)
    if default is None:
        raise SignatureError(
            f"{model_dir} has no {DEFAULT_SIGNATURE!r} signature (it has: {', '.join(signature_defs) or 'none'}): "
            "the Evaluator evaluates it; export one (Keras model.save does)"
        )
    outputs = list(default.outputs)
    if len(outputs) == 1:
        key = outputs[0]
    else:
        named = [name for name in SCORE_OUTPUTS if name in default.outputs]
        if not named:
            raise SignatureError(
                f"{model_dir}: {DEFAULT_SIGNATURE} returns {', '.join(sorted(outputs))}, none of them named as "
                f"class scores: expected a single output, or one named {', '.join(SCORE_OUTPUTS)}, "
                "of shape [batch, classes]"
            )
        key = named[0]
    classes = _classes(default.outputs[key])
    if classes is not None and classes < 2:
        raise SignatureError(
            f"{model_dir}: {DEFAULT_SIGNATURE} output {key!r} is not [batch, classes] with 2 or more classes: "
            "the Evaluator blesses by accuracy over class scores (logits or probabilities); for a binary model "
            "export both columns, e.g. [1 - p, p]"
        )
    return EvalSignature(DEFAULT_SIGNATURE, key, _takes_examples(default))
