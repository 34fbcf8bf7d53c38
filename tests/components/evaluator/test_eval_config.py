"""The Evaluator's TFMA config: the signature TFMA calls, the thresholds, the per-class slice."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.evaluator.eval_config import make_eval_config
from components.trainer import signatures


def test_model_is_evaluated_through_the_classify_signature() -> None:
    config = make_eval_config(accuracy_lower_bound=0.95, max_accuracy_drop=0.02)
    (spec,) = config.model_specs
    assert spec.signature_name == signatures.EXAMPLES_SIGNATURE
    assert spec.prediction_key == signatures.SCORES_OUTPUT
    assert spec.label_key == "label"
    assert spec.model_type == tfma.TF_GENERIC


def test_accuracy_floor_and_no_regression_apply_to_the_overall_slice_only() -> None:
    config = make_eval_config(accuracy_lower_bound=0.95, max_accuracy_drop=0.02, label_key="y")
    metrics = {m.class_name: m for m in config.metrics_specs[0].metrics}
    accuracy = metrics["SparseCategoricalAccuracy"]
    assert not accuracy.HasField("threshold")
    (per_slice,) = accuracy.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
    assert per_slice.threshold.value_threshold.lower_bound.value == 0.95
    change = per_slice.threshold.change_threshold
    assert change.absolute.value == -0.02
    assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["y"]]
