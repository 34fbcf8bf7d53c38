"""Evaluator component: TFX's Evaluator whose executor reads each model's signature first.

Usage (as TFX's; pass the schema so TFMA can decode named-feature inputs):

    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"],
        schema=schema_gen.outputs["schema"],
        eval_config=make_eval_config(accuracy_lower_bound=0.9, max_accuracy_drop=0.01, label_key="label"),
    )

The eval_config's ModelSpec gives the label and model type; its signature_name and
prediction_key are filled per model at run time (executor.derive_eval_config).
"""

from __future__ import annotations

from tfx.components import Evaluator as TfxEvaluator
from tfx.dsl.components.base import executor_spec

from components.evaluator import executor


class Evaluator(TfxEvaluator):
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
