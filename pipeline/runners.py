"""Local entry points: BeamDagRunner (default) or LocalDagRunner, SQLite ML Metadata under the root."""

from __future__ import annotations

import os
from typing import Optional, Sequence

from tfx.orchestration import metadata
from tfx.orchestration import pipeline as tfx_pipeline

from pipeline import configs
from pipeline.pipeline import InfraValidatorFactory, create_pipeline

RUNNERS = ("beam", "local")


def metadata_config(config: configs.PipelineConfig):
    """SQLite ML Metadata at `<pipeline_root>/metadata.sqlite`."""
    return metadata.sqlite_metadata_connection_config(config.metadata_path)


def build(
    config: configs.PipelineConfig,
    *,
    beam_pipeline_args: Sequence[str] = (),
    infra_validator: Optional[InfraValidatorFactory] = None,
) -> tfx_pipeline.Pipeline:
    """The pipeline for `config` with the local SQLite ML Metadata store."""
    return create_pipeline(
        config=config,
        metadata_connection_config=metadata_config(config),
        beam_pipeline_args=beam_pipeline_args,
        infra_validator=infra_validator,
    )


def run_pipeline(pipeline: tfx_pipeline.Pipeline, *, runner: str = "beam") -> None:
    """Runs a built pipeline to completion; raises when a component fails."""
    if runner not in RUNNERS:
        raise configs.ConfigError(f"runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    os.makedirs(pipeline.pipeline_info.pipeline_root, exist_ok=True)
    if runner == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        BeamDagRunner().run(pipeline)
    else:
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        LocalDagRunner().run(pipeline)


def run(
    config: configs.PipelineConfig,
    *,
    runner: str = "beam",
    beam_pipeline_args: Sequence[str] = (),
    infra_validator: Optional[InfraValidatorFactory] = None,
) -> None:
    """Builds and runs the pipeline for `config`."""
    if runner not in RUNNERS:
        raise configs.ConfigError(f"runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    run_pipeline(build(config, beam_pipeline_args=beam_pipeline_args, infra_validator=infra_validator), runner=runner)
