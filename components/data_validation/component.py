"""StrictExampleValidator: the stock ExampleValidator whose execution fails on any anomaly.

Usage:

    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    trainer.add_upstream_node(example_validator)  # anomalies stop the run before training

Same inputs, outputs and properties as `tfx.components.ExampleValidator`.
"""

from __future__ import annotations

from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from components.data_validation import executor


class StrictExampleValidator(ExampleValidator):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
