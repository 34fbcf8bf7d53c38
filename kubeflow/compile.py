"""Compile the project's pipeline for Kubeflow Pipelines v2 with TFX's KubeflowV2DagRunner.

The pipeline is the very same `pipeline.pipeline.create_pipeline` the local runners use; this
module only picks the container image, the output file and the Beam arguments.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

from tfx import v1 as tfx

from kubeflow.beam import validate_beam_args
from pipeline.configs import PipelineConfig
from pipeline.pipeline import InfraValidatorFactory, create_pipeline
from pipeline.runners import package_user_modules

logger = logging.getLogger(__name__)

DEFAULT_OUTPUT = Path("runs") / "kubeflow" / "pipeline.json"
# KFP (and KubeflowV2DagRunner) accept only these pipeline names.
_PIPELINE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# A Docker image reference: [registry[:port]/]repository[:tag][@sha256:digest].
_IMAGE_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)
_REMOTE_ROOT_RE = re.compile(r"^[a-z][a-z0-9+.-]*://")


class CompileError(ValueError):
    """A value the compiled pipeline cannot use; the message says what was expected."""


def validate_pipeline_name(name: str) -> str:
    if not _PIPELINE_NAME_RE.match(name):
        raise CompileError(
            f"pipeline name {name!r} is not allowed on Kubeflow: expected [a-z0-9][a-z0-9-]* "
            f"(lower case, digits and '-', starting with a letter or digit; "
            f"e.g. {re.sub(r'[^a-z0-9-]+', '-', name.lower()).strip('-') or 'my-pipeline'!r})"
        )
    return name


def validate_image(image: str) -> str:
    if not _IMAGE_RE.match(image or ""):
        raise CompileError(
            f"image {image!r} is not a Docker image reference: expected "
            "[registry/]repository[:tag][@sha256:digest], e.g. ghcr.io/you/tfx-serving-kit:0.1.0"
        )
    return image


def is_remote_uri(path: str) -> bool:
    """True for URIs every pod can reach (gs://, s3://, ...), False for local paths."""
    return bool(_REMOTE_ROOT_RE.match(path))


def compile_pipeline(
    *,
    config: PipelineConfig,
    image: str,
    output: str | Path = DEFAULT_OUTPUT,
    beam_pipeline_args: Sequence[str] = (),
    display_name: str | None = None,
    infra_validator: InfraValidatorFactory | None = None,
) -> Path:
    """Writes the KFP v2 pipeline for `config` to `output` and returns its path.

    `output` ending in .json gets the runner's PipelineJob JSON (pipelineSpec plus the
    runtime config holding the pipeline root); .yaml/.yml gets a bare PipelineSpec, the form
    the KFP UI's "Upload pipeline" takes. `infra_validator` fills the pipeline's InfraValidator
    slot exactly as for the local runners.
    """
    validate_pipeline_name(config.pipeline_name)
    validate_image(image)
    output = Path(output)
    if output.suffix not in (".json", ".yaml", ".yml"):
        raise CompileError(f"output {output} must end in .json, .yaml or .yml")
    if output.is_dir():
        raise CompileError(f"output {output} is a directory: expected a file name ending in .json")
    validate_beam_args(beam_pipeline_args)
    places = [("pipeline root", config.pipeline_root), ("serving dir", config.serving_dir)]
    if config.data.path:
        places.append(("data path", config.data.path))
    for name, value in places:
        if not is_remote_uri(value):
            logger.warning(
                "%s %r is a local path: each Kubeflow task runs in its own pod, so use a URI "
                "all pods reach (e.g. gs://BUCKET/...), see docs/kubeflow.md",
                name,
                value,
            )
    pipeline = create_pipeline(
        config=config, beam_pipeline_args=list(beam_pipeline_args), infra_validator=infra_validator
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            default_image=image, display_name=display_name or config.pipeline_name
        ),
        output_dir=str(output.parent.resolve()),
        output_filename=output.name,
    )
    # A module file becomes a wheel under the pipeline root now, as TFX does (the root may be a
    # gs:// URI); the build's output goes to a log beside the compiled file.
    package_user_modules(pipeline, log=str(output.resolve().parent / f"{output.stem}.wheel-build.log"))
    runner.run(pipeline)
    logger.info("compiled %s (%d components) to %s", config.pipeline_name, len(pipeline.components), output)
    return output
