"""Construction of the InfraValidator component and its pipeline factory (no server needed)."""

from __future__ import annotations

import json

import pytest
from tfx.components import Pusher
from tfx.proto import infra_validator_pb2, pusher_pb2
from tfx.types import channel, standard_artifacts
from tfx.utils import proto_utils

from components.infra_validator import InfraValidator, local_serving_spec, make_infra_validator
from components.infra_validator import spec


def _channels():
    return channel.Channel(type=standard_artifacts.Model), channel.Channel(type=standard_artifacts.Examples)


def _serving_spec(component) -> infra_validator_pb2.ServingSpec:
    value = component.exec_properties["serving_spec"]
    if isinstance(value, str):
        return proto_utils.json_to_proto(value, infra_validator_pb2.ServingSpec())
    return value


def test_default_component_runs_locally_and_outputs_standard_infra_blessing():
    model, examples = _channels()
    component = InfraValidator(model=model)

    assert component.id == "InfraValidator"
    assert component.outputs["blessing"].type is standard_artifacts.InfraBlessing
    assert set(component.inputs) == {"model"}
    serving_spec = _serving_spec(component)
    assert serving_spec.WhichOneof("serving_platform") is None  # the local-process platform
    assert serving_spec.model_name == spec.DEFAULT_MODEL_NAME
    assert component.exec_properties[spec.LOCAL_SERVER_KEY] == "auto"
    assert component.exec_properties["request_spec"] is None


def test_factory_builds_load_and_query_with_eval_examples_and_warmup():
    model, examples = _channels()
    component = make_infra_validator(signature_names=("serving_examples",), num_examples=3)(model, examples)

    assert component.inputs["examples"] is examples
    request_spec = component.exec_properties["request_spec"]
    if isinstance(request_spec, str):
        request_spec = proto_utils.json_to_proto(request_spec, infra_validator_pb2.RequestSpec())
    assert request_spec.split_name == "eval"
    assert request_spec.num_examples == 3
    assert request_spec.make_warmup
    assert list(request_spec.tensorflow_serving.signature_names) == ["serving_examples"]
    validation_spec = component.exec_properties["validation_spec"]
    if isinstance(validation_spec, str):
        validation_spec = proto_utils.json_to_proto(validation_spec, infra_validator_pb2.ValidationSpec())
    assert validation_spec.num_tries == 3


def test_factory_load_only_drops_examples():
    model, examples = _channels()
    component = make_infra_validator(mode="LOAD_ONLY")(model, examples)
    assert "examples" not in component.inputs
    assert component.exec_properties["request_spec"] is None


@pytest.mark.parametrize("platform", ["local_docker", "kubernetes"])
def test_factory_keeps_tfx_platforms(platform):
    model, examples = _channels()
    component = make_infra_validator(serving_platform=platform, image_tags=("2.16.1",))(model, examples)
    serving_spec = _serving_spec(component)
    assert serving_spec.WhichOneof("serving_platform") == platform
    assert list(serving_spec.tensorflow_serving.tags) == ["2.16.1"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"serving_platform": "docker"}, "serving_platform='docker'"),
        ({"local_server": "gunicorn"}, "local_server='gunicorn'"),
        ({"mode": "QUERY"}, "mode='QUERY'"),
        ({"num_tries": 0}, "must be >= 1"),
    ],
)
def test_factory_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_infra_validator(**kwargs)


def test_load_and_query_without_examples_is_refused():
    model, _ = _channels()
    with pytest.raises(ValueError, match="LOAD_AND_QUERY needs an examples channel"):
        make_infra_validator()(model, None)
    with pytest.raises(ValueError, match="request_spec is set but examples is not"):
        InfraValidator(model=model, request_spec=infra_validator_pb2.RequestSpec())


def test_stock_pusher_accepts_the_blessing():
    model, examples = _channels()
    validator = make_infra_validator()(model, examples)
    pusher = Pusher(
        model=model,
        infra_blessing=validator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory="/tmp/unused")
        ),
    )
    assert pusher.inputs["infra_blessing"].type is standard_artifacts.InfraBlessing


def test_local_serving_spec_round_trips_through_json():
    text = proto_utils.proto_to_json(local_serving_spec("digits"))
    assert json.loads(text)["model_name"] == "digits"
