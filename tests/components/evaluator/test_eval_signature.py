"""The Evaluator reads each model's signature: which one TFMA calls and which output holds the scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tf_keras as keras

from components.evaluator import executor, logic
from components.evaluator.eval_config import make_eval_config
from components.trainer.export import serving_signature_defs

FEATURES = ["culmen_length_mm", "culmen_depth_mm"]


def _keras_logits_model(path: Path) -> str:
    """As TFX's penguin tutorial saves it: named float inputs, logits out, model.save(save_format='tf')."""
    inputs = [keras.layers.Input(shape=(1,), name=name) for name in FEATURES]
    outputs = keras.layers.Dense(3)(keras.layers.concatenate(inputs))
    keras.Model(inputs=inputs, outputs=outputs).save(str(path), save_format="tf")
    return str(path)


def _module_model(path: Path, outputs: dict, *, serialized: bool = False) -> str:
    """A tf.Module whose serving_default returns `outputs` (name -> last dimension)."""
    spec = tf.TensorSpec([None], tf.string, name="examples") if serialized else tf.TensorSpec([None, 2], tf.float32, name="x")

    class Model(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, x):
            rows = tf.shape(x)[0]
            return {name: tf.zeros([rows, size]) if size else tf.zeros([rows]) for name, size in outputs.items()}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return str(path)


def test_tutorial_keras_model_is_evaluated_on_named_features_and_its_logits(tmp_path: Path) -> None:
    model_dir = _keras_logits_model(tmp_path / "keras")
    signature = logic.eval_signature(serving_signature_defs(model_dir))
    assert signature == logic.EvalSignature("serving_default", signature.prediction_key, takes_examples=False)
    assert signature.prediction_key.startswith("dense")  # Keras names the only output after its layer


def test_serialized_example_signature_and_one_unnamed_output(tmp_path: Path) -> None:
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            return tf.zeros([tf.shape(examples)[0], 3])  # a bare tensor: TF names it output_0

    model = Model()
    tf.saved_model.save(model, str(tmp_path / "m"), signatures={"serving_default": model.serve})
    assert logic.eval_signature(serving_signature_defs(str(tmp_path / "m"))) == logic.EvalSignature(
        "serving_default", "output_0", takes_examples=True
    )


def test_several_outputs_pick_the_one_named_as_scores(tmp_path: Path) -> None:
    model_dir = _module_model(tmp_path / "m", {"class_id": 0, "probabilities": 3, "embedding": 8})
    assert logic.eval_signature(serving_signature_defs(model_dir)).prediction_key == "probabilities"


def test_builtin_models_keep_their_classify_signature(tmp_path: Path) -> None:
    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def examples(self, inputs):
            rows = tf.shape(inputs)[0]
            return {"classes": tf.fill([rows, 3], "a"), "scores": tf.zeros([rows, 3])}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            return {"probabilities": tf.zeros([tf.shape(x)[0], 3])}

    model = Model()
    tf.saved_model.save(model, str(tmp_path / "m"), signatures={"serving_default": model.serve, "serving_examples": model.examples})
    assert logic.eval_signature(serving_signature_defs(str(tmp_path / "m"))) == logic.EvalSignature(
        "serving_examples", "scores", takes_examples=True
    )


@pytest.mark.parametrize("outputs, message", [
    ({"a": 3, "b": 3}, r"serving_default returns a, b, none of them named as class scores: expected a single output"),
    ({"probability": 1}, r"output 'probability' is not \[batch, classes\] with 2 or more classes.*export both columns"),
    ({"score": 0}, r"output 'score' is not \[batch, classes\]"),
])
def test_outputs_the_evaluator_cannot_score_are_said_in_one_line(tmp_path: Path, outputs: dict, message: str) -> None:
    model_dir = _module_model(tmp_path / "m", outputs)
    with pytest.raises(logic.SignatureError, match=message):
        logic.eval_signature(serving_signature_defs(model_dir), model_dir)


def test_a_model_without_serving_default_is_refused(tmp_path: Path) -> None:
    model = tf.Module()
    model.f = tf.function(lambda x: {"y": x}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(model, str(tmp_path / "m"), signatures={"predict": model.f})
    with pytest.raises(logic.SignatureError, match=r"has no 'serving_default' signature \(it has: predict\)"):
        logic.eval_signature(serving_signature_defs(str(tmp_path / "m")), str(tmp_path / "m"))


def test_candidate_and_baseline_each_get_their_own_signature(tmp_path: Path) -> None:
    candidate = _module_model(tmp_path / "candidate", {"output_0": 3}, serialized=True)
    baseline = _keras_logits_model(tmp_path / "baseline")
    template = make_eval_config(accuracy_lower_bound=0.9, max_accuracy_drop=0.01, label_key="species")
    derived = executor.derive_eval_config(template, candidate, baseline)
    first, second = derived.model_specs
    assert (first.name, first.is_baseline, first.signature_name, first.prediction_key) == (
        tfma.CANDIDATE_KEY, False, "serving_default", "output_0")
    assert (second.name, second.is_baseline, second.signature_name) == (tfma.BASELINE_KEY, True, "serving_default")
    assert second.prediction_key.startswith("dense")
    assert first.label_key == second.label_key == "species"
    assert derived.metrics_specs == template.metrics_specs
    # Without a baseline there is one unnamed spec, which TFX's Evaluator completes as usual.
    (only,) = executor.derive_eval_config(template, candidate, None).model_specs
    assert (only.name, only.prediction_key) == ("", "output_0")
