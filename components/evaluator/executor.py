"""Evaluator executor: TFX's, with each model's signature and prediction key read from the model.

The pipeline's EvalConfig (eval_config.make_eval_config) holds the metrics, thresholds and label;
which signature TFMA calls depends on what the Trainer module exported, known only once it ran.
Here the candidate's and the baseline's ModelSpecs are filled from their own signatures
(logic.eval_signature), so a baseline from another module still compares.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

import tensorflow_model_analysis as tfma
from tfx import types
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import path_utils, proto_utils

from components.evaluator.logic import eval_signature
from components.trainer.export import serving_signature_defs

logger = logging.getLogger(__name__)


def _model_dir(artifact: types.Artifact) -> str:
    return path_utils.serving_model_path(artifact.uri, path_utils.is_old_model_artifact(artifact))


def _fill(spec: "tfma.ModelSpec", model_dir: str) -> None:
    signature = eval_signature(serving_signature_defs(model_dir), model_dir)
    spec.signature_name = signature.signature_name
    spec.prediction_key = signature.prediction_key
    logger.info("evaluating %s through %s[%s]", model_dir, signature.signature_name, signature.prediction_key)


def derive_eval_config(eval_config: "tfma.EvalConfig", model_dir: str, baseline_dir: str | None) -> "tfma.EvalConfig":
    """`eval_config` with one ModelSpec per model, each filled from that model's signatures."""
    derived = tfma.EvalConfig()
    derived.CopyFrom(eval_config)
    template = tfma.ModelSpec()
    template.CopyFrom(eval_config.model_specs[0])
    del derived.model_specs[:]
    candidate = derived.model_specs.add()
    candidate.CopyFrom(template)
    _fill(candidate, model_dir)
    if baseline_dir:
        candidate.name = tfma.CANDIDATE_KEY
        baseline = derived.model_specs.add()
        baseline.CopyFrom(template)
        baseline.name, baseline.is_baseline = tfma.BASELINE_KEY, True
        _fill(baseline, baseline_dir)
    return derived


class Executor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor on an EvalConfig derived from the models' signatures."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        config_json = exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY)
        if config_json and input_dict.get(standard_component_specs.MODEL_KEY):
            eval_config = proto_utils.json_to_proto(config_json, tfma.EvalConfig())
            model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
            baselines = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY) or []
            derived = derive_eval_config(eval_config, _model_dir(model), _model_dir(baselines[0]) if baselines else None)
            exec_properties = {**exec_properties, standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(derived)}
        super().Do(input_dict, output_dict, exec_properties)
