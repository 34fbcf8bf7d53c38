"""`python -m pipeline run --infra-platform docker --infra-image NAME[:TAG]`: parsing and the
ServingSpec it gives the InfraValidator (the run itself: tests/containers, which need Docker)."""

from __future__ import annotations

import pytest
from tfx import types
from tfx.proto import infra_validator_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from pipeline import cli


def serving_spec(argv: list[str]) -> infra_validator_pb2.ServingSpec:
    args = cli.build_parser().parse_args(["run", *argv])
    component = cli.infra_validator_factory(args)(
        types.Channel(type=standard_artifacts.Model), types.Channel(type=standard_artifacts.Examples)
    )
    return proto_utils.json_to_proto(component.exec_properties["serving_spec"], infra_validator_pb2.ServingSpec())


def test_default_is_a_local_server_process() -> None:
    spec = serving_spec([])

    assert spec.WhichOneof("serving_platform") is None


@pytest.mark.parametrize(
    "image, name, tag",
    [
        (None, "tfx-serving-kit-server", "local"),
        ("tensorflow/serving:2.16.1", "tensorflow/serving", "2.16.1"),
        ("registry.example.com:5000/team/server", "registry.example.com:5000/team/server", "latest"),
        ("server", "server", "latest"),
    ],
)
def test_docker_runs_tfx_local_docker_with_the_image(image: str | None, name: str, tag: str) -> None:
    spec = serving_spec(["--infra-platform", "docker"] + (["--infra-image", image] if image else []))

    assert spec.WhichOneof("serving_platform") == "local_docker"
    assert (spec.tensorflow_serving.image_name, list(spec.tensorflow_serving.tags)) == (name, [tag])


@pytest.mark.parametrize("bad", ["", ":tag", "server:", "a server:1", "server@sha256:abc"])
def test_a_bad_image_is_one_line_naming_it(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["run", "--infra-platform", "docker", "--infra-image", bad])

    assert exit_info.value.code == 2
    assert f"expected an image as NAME[:TAG] such as tensorflow/serving:2.16.1, got {bad!r}" in capsys.readouterr().err
