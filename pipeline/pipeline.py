"""create_pipeline: wiring only. Data in, checks, train, evaluate, (infra-validate), push."""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

# Direct imports rather than `tfx.v1`: its extensions pull in google-cloud-aiplatform (~4 s).
from tfx.components import CsvExampleGen, SchemaGen, StatisticsGen
from tfx.dsl.components.base import base_node
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from components.data_validation.component import StrictExampleValidator
from components.evaluator.component import Evaluator
from components.evaluator.eval_config import make_eval_config
from components.example_gen.component import ImageExampleGen
from components.pusher.component import LayoutPusher
from components.trainer.component import Trainer
from components.trainer.module_file import BUILTIN_RUN_FN
from pipeline import configs
from pipeline.trainer_args import trainer_module

# (model channel, examples channel) -> a component whose output `blessing` is an InfraBlessing.
InfraValidatorFactory = Callable[[Channel, Channel], base_node.BaseNode]

TRAINER_RUN_FN = BUILTIN_RUN_FN


def _example_gen(config: configs.PipelineConfig):
    if config.data.kind == "csv":
        # A URI (gs://...) stays as it is for the cluster; a local path is made absolute.
        path = config.data.path if "://" in config.data.path else os.path.abspath(config.data.path)
        return CsvExampleGen(
            input_base=os.path.dirname(path),
            input_config=example_gen_pb2.Input(
                splits=[example_gen_pb2.Input.Split(name="single", pattern=os.path.basename(path))]
            ),
            output_config=example_gen_pb2.Output(
                split_config=example_gen_pb2.SplitConfig(
                    splits=[
                        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - config.eval_percent),
                        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=config.eval_percent),
                    ]
                )
            ),
        )
    return ImageExampleGen(
        source_kind=config.data.kind,
        source_path=config.data.path,
        image_size=config.image_size,
        eval_percent=config.eval_percent,
        source_fingerprint=config.data_fingerprint,
    )


def create_pipeline(
    *,
    config: configs.PipelineConfig,
    metadata_connection_config=None,
    beam_pipeline_args: Sequence[str] = (),
    infra_validator: Optional[InfraValidatorFactory] = None,
) -> tfx_pipeline.Pipeline:
    """The pipeline for `config`; `infra_validator` fills the InfraValidator slot when given."""
    # Why: turns the configured source into train/eval tf.Examples, read at execution time.
    example_gen = _example_gen(config).with_id(configs.EXAMPLE_GEN_ID)

    # Why: per-feature statistics are what schema inference and validation compare.
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        configs.STATISTICS_GEN_ID
    )

    # Why: infers the expected types and shapes (the image feature's fixed length) from the data.
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True
    ).with_id(configs.SCHEMA_GEN_ID)

    # Why: any anomaly fails here, and the Trainer waits for it, so bad data never trains a model.
    example_validator = StrictExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    ).with_id(configs.EXAMPLE_VALIDATOR_ID)

    # Why: runs the module's run_fn (TFX's contract; the built-in trainer by default) and checks
    # that it saved a SavedModel with a serving_default signature.
    trainer = Trainer(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(num_steps=config.train_steps),
        eval_args=trainer_pb2.EvalArgs(num_steps=config.eval_steps),
        **trainer_module(config),
    ).with_id(configs.TRAINER_ID)
    trainer.add_upstream_node(example_validator)

    # Why: the latest blessed model is the baseline the candidate must not fall behind.
    model_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing),
    ).with_id(configs.RESOLVER_ID)

    # Why: TFMA blesses the model only above the accuracy floor and not worse than the baseline;
    # it calls the signature each model exports (the schema decodes named-feature inputs).
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        schema=schema_gen.outputs["schema"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=make_eval_config(
            accuracy_lower_bound=config.evaluation.accuracy_lower_bound,
            max_accuracy_drop=config.evaluation.max_accuracy_drop,
            label_key=config.label_key,
        ),
    ).with_id(configs.EVALUATOR_ID)

    components = [example_gen, statistics_gen, schema_gen, example_validator, trainer, model_resolver, evaluator]
    infra_blessing = None
    if infra_validator is not None:
        # Why: proves the model loads and answers in a model server before it is pushed.
        infra = infra_validator(trainer.outputs["model"], example_gen.outputs["examples"]).with_id(
            configs.INFRA_VALIDATOR_ID
        )
        components.append(infra)
        infra_blessing = infra.outputs["blessing"]

    # Why: publishes a blessed model atomically as the next integer version TF Serving loads.
    pusher = LayoutPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_blessing,
        serving_dir=config.serving_dir,
        model_name=config.model_name,
    ).with_id(configs.PUSHER_ID)
    components.append(pusher)

    return tfx_pipeline.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.pipeline_root,
        components=components,
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
