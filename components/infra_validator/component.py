"""InfraValidator component: TFX's spec and InfraBlessing, serving platforms local/Docker/Kubernetes.

Usage (what `make_infra_validator` builds for the pipeline):

    infra_validator = InfraValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        request_spec=infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(),
            split_name="eval", num_examples=2, make_warmup=True),
    )
    pusher = Pusher(model=..., model_blessing=..., infra_blessing=infra_validator.outputs["blessing"], ...)

With no `serving_spec` (or one whose serving_platform is unset) the model server runs as a local
process: `tensorflow_model_server` when it is on PATH, else `python -m serving.server`. A
ServingSpec with `local_docker` or `kubernetes` behaves exactly as in TFX.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, base_driver, executor_spec
from tfx.proto import infra_validator_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components.infra_validator import executor, spec
from serving.process import SERVER_AUTO, SERVER_CHOICES


class InfraValidatorSpec(standard_component_specs.InfraValidatorSpec):
    """TFX's InfraValidatorSpec plus `local_server` (auto, tensorflow_model_server or embedded)."""

    PARAMETERS = {
        **standard_component_specs.InfraValidatorSpec.PARAMETERS,
        spec.LOCAL_SERVER_KEY: ExecutionParameter(type=str, optional=True),
    }


def local_serving_spec(model_name: str = spec.DEFAULT_MODEL_NAME) -> infra_validator_pb2.ServingSpec:
    """A ServingSpec for the local-process platform (TF Serving binary, no serving_platform set)."""
    return infra_validator_pb2.ServingSpec(
        tensorflow_serving=infra_validator_pb2.TensorFlowServing(tags=["latest"]),
        model_name=model_name,
    )


class InfraValidator(base_component.BaseComponent):
    """Loads the model in a real model server (and queries it) before it may be pushed.

    Outputs `blessing`: a standard InfraBlessing; the stock Pusher takes it as `infra_blessing`.
    Its custom properties carry the failure reason and timings (see `spec`), and
    `report.summarize_blessing` turns them into one line.
    """

    SPEC_CLASS = InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
    DRIVER_CLASS = base_driver.BaseDriver

    def __init__(
        self,
        model: types.BaseChannel,
        serving_spec: Optional[infra_validator_pb2.ServingSpec] = None,
        examples: Optional[types.BaseChannel] = None,
        request_spec: Optional[infra_validator_pb2.RequestSpec] = None,
        validation_spec: Optional[infra_validator_pb2.ValidationSpec] = None,
        local_server: str = SERVER_AUTO,
    ) -> None:
        if local_server not in SERVER_CHOICES:
            raise ValueError(
                f"local_server={local_server!r}: expected one of {', '.join(SERVER_CHOICES)}"
            )
        if serving_spec is None:
            serving_spec = local_serving_spec()
        if serving_spec.WhichOneof("serving_binary") != "tensorflow_serving":
            raise ValueError("serving_spec must set tensorflow_serving (the only serving binary TFX knows)")
        if request_spec is not None and examples is None:
            raise ValueError("request_spec is set but examples is not: LOAD_AND_QUERY needs both")
        super().__init__(
            spec=InfraValidatorSpec(
                model=model,
                examples=examples,
                blessing=types.Channel(type=standard_artifacts.InfraBlessing),
                serving_spec=serving_spec,
                validation_spec=validation_spec,
                request_spec=request_spec,
                local_server=local_server,
            )
        )


InfraValidatorFactory = Callable[[types.BaseChannel, Optional[types.BaseChannel]], InfraValidator]


def make_infra_validator(
    *,
    serving_platform: str = spec.PLATFORM_LOCAL,
    local_server: str = SERVER_AUTO,
    mode: str = spec.LOAD_AND_QUERY,
    signature_names: Sequence[str] = (),
    split_name: str = "eval",
    num_examples: int = 2,
    make_warmup: bool = True,
    max_loading_time_seconds: int = 120,
    num_tries: int = 3,
    model_name: str = spec.DEFAULT_MODEL_NAME,
    image_tags: Sequence[str] = ("latest",),
    image_name: str = "",
) -> InfraValidatorFactory:
    """A `(model_channel, examples_channel) -> InfraValidator` factory for `create_pipeline`.

    serving_platform: "local" (a server process on this machine), "local_docker" or "kubernetes"
      (TFX's, running the `<image_name>:<image_tags>` image; image_name defaults to TFX's
      `tensorflow/serving`, and this project's serving image is a drop-in for it).
    mode: "LOAD_AND_QUERY" (requests from `num_examples` examples of `split_name`, per
      signature) or "LOAD_ONLY".
    signature_names: signatures to query; empty queries every signature a request can be
      built for without guessing (classify/regress from tf.Examples, named-tensor predict).
    make_warmup: write the requests as TF Serving warmup records into the model the Pusher pushes.
    """
    if serving_platform not in spec.PLATFORMS:
        raise ValueError(f"serving_platform={serving_platform!r}: expected one of {', '.join(spec.PLATFORMS)}")
    if local_server not in SERVER_CHOICES:
        raise ValueError(f"local_server={local_server!r}: expected one of {', '.join(SERVER_CHOICES)}")
    if mode not in spec.MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(spec.MODES)}")
    if num_examples < 1 or max_loading_time_seconds < 1 or num_tries < 1:
        raise ValueError(
            "num_examples, max_loading_time_seconds and num_tries must be >= 1; got "
            f"{num_examples}, {max_loading_time_seconds}, {num_tries}"
        )
    serving_spec = infra_validator_pb2.ServingSpec(
        tensorflow_serving=infra_validator_pb2.TensorFlowServing(tags=list(image_tags), image_name=image_name),
        model_name=model_name,
    )
    if serving_platform == spec.PLATFORM_LOCAL_DOCKER:
        serving_spec.local_docker.SetInParent()
    elif serving_platform == spec.PLATFORM_KUBERNETES:
        serving_spec.kubernetes.SetInParent()
    validation_spec = infra_validator_pb2.ValidationSpec(
        max_loading_time_seconds=max_loading_time_seconds, num_tries=num_tries
    )
    request_spec = None
    if mode == spec.LOAD_AND_QUERY:
        request_spec = infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(
                signature_names=list(signature_names)
            ),
            split_name=split_name,
            num_examples=num_examples,
            make_warmup=make_warmup,
        )

    def factory(model: types.BaseChannel, examples: Optional[types.BaseChannel]) -> InfraValidator:
        if request_spec is not None and examples is None:
            raise ValueError("LOAD_AND_QUERY needs an examples channel; pass one or use mode='LOAD_ONLY'")
        return InfraValidator(
            model=model,
            examples=examples if request_spec is not None else None,
            serving_spec=serving_spec,
            request_spec=request_spec,
            validation_spec=validation_spec,
            local_server=local_server,
        )

    return factory
