"""Local entry points: BeamDagRunner (default) or LocalDagRunner, SQLite ML Metadata under the root."""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

from tfx.orchestration import metadata

from pipeline import configs
from pipeline.pipeline import InfraValidatorFactory, create_pipeline

RUNNERS = ("beam", "local")


def metadata_config(config: configs.PipelineConfig):
    """SQLite ML Metadata at `<pipeline_root>/metadata.sqlite`."""
    return metadata.sqlite_metadata_connection_config(config.metadata_path)


def run(
    config: configs.PipelineConfig,
    *,
    runner: str = "beam",
    beam_pipeline_args: Sequence[str] = (),
    infra_validator: Optional[InfraValidatorFactory] = None,
) -> None:
    """Builds the pipeline for `config` and runs it to completion (raises on a failed component)."""
    if runner not in RUNNERS:
        raise configs.ConfigError(f"runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    os.makedirs(config.pipeline_root, exist_ok=True)
    pipeline = create_pipeline(
        config=config,
        metadata_connection_config=metadata_config(config),
        beam_pipeline_args=beam_pipeline_args,
        infra_validator=infra_validator,
    )
    dag_runner: Callable[[], object]
    if runner == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

        dag_runner = BeamDagRunner
    else:
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        dag_runner = LocalDagRunner
    dag_runner().run(pipeline)
