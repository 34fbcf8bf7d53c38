"""The TFMA EvalConfig of the Evaluator: accuracy floor, no-regression vs baseline, per-class slices, confusion matrix."""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.trainer import features, signatures

ACCURACY_METRIC = "sparse_categorical_accuracy"


def make_eval_config(*, accuracy_lower_bound: float, max_accuracy_drop: float, label_key: str = features.LABEL_KEY) -> tfma.EvalConfig:
    """Blessed when accuracy >= the floor and >= baseline accuracy - max_accuracy_drop.

    The ModelSpec's signature and prediction key are the built-in models' (`serving_examples`,
    `scores`); the Evaluator's executor replaces them per model with what that model exports
    (components.evaluator.logic.eval_signature). The slice on the
    label gives accuracy per true class (per-class recall); the change threshold is skipped by
    TFMA when there is no blessed baseline yet (first run).
    """
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": accuracy_lower_bound}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_accuracy_drop}
        ),
    )
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=signatures.EXAMPLES_SIGNATURE,
                label_key=label_key,
                prediction_key=signatures.SCORES_OUTPUT,
                model_type=tfma.TF_GENERIC,
            )
        ],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[label_key])],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    # Reported, not gated: the run report draws it (argmax, threshold 0).
                    tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
                    # Thresholds on the overall slice only: per-class slices are reported, not gated.
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        per_slice_thresholds=[
                            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)
                        ],
                    ),
                ]
            )
        ],
    )
