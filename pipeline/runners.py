"""Local entry points: BeamDagRunner (default) or LocalDagRunner, SQLite ML Metadata under the root."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Optional, Sequence

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


@contextlib.contextmanager
def _output_to(path: str) -> Iterator[None]:
    """Points this process's stdout and stderr (file descriptors, so subprocesses too) at `path`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def package_user_modules(pipeline: tfx_pipeline.Pipeline, *, log: Optional[str] = None) -> None:
    """Packages module files as TFX does (wheels under `<pipeline_root>/_wheels/`), quietly.

    TFX's runners resolve these pip dependencies themselves when they start; resolving first
    (a second resolve is a no-op) keeps `setup.py bdist_wheel`'s output in the local file `log`
    (default `<pipeline_root>/_wheels/build.log`), written only when there is a module to package.
    """
    from tfx.dsl.components.base import base_component

    components = [c for c in pipeline.components if isinstance(c, base_component.BaseComponent)]
    if not any(getattr(c, "_pip_dependencies", None) for c in components):
        return
    root = pipeline.pipeline_info.pipeline_root
    log = log or os.path.join(root, "_wheels", "build.log")
    try:
        with _output_to(log):
            for component in components:
                component._resolve_pip_dependencies(root)  # pylint: disable=protected-access  # noqa: SLF001 - TFX's own wheel packaging step, run early
    except (RuntimeError, ValueError, OSError) as error:
        raise configs.ConfigError(f"packaging the Trainer module as a wheel failed: {error} (see {log})") from None


def run_pipeline(pipeline: tfx_pipeline.Pipeline, *, runner: str = "beam") -> None:
    """Runs a built pipeline to completion; raises when a component fails."""
    if runner not in RUNNERS:
        raise configs.ConfigError(f"runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    os.makedirs(pipeline.pipeline_info.pipeline_root, exist_ok=True)
    package_user_modules(pipeline)
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
