"""TFX's InfraValidator on its stock `local_docker` platform, with this project's serving image.

TFX's own executor (tfx.components.infra_validator.executor) starts the image through the
`docker` package exactly as it starts tensorflow/serving (MODEL_NAME, MODEL_BASE_PATH=/model, the
model bind-mounted read-only, every port published) and queries it with its own gRPC client.
Then the pipeline's `--infra-platform docker` does the same inside a real pipeline run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from container_helpers import SERVING_IMAGE
from container_models import FEATURES, save_examples_model, truncate_variables, write_examples


def stock_infra_validate(tmp_path: Path, build_model) -> bool:
    """Runs TFX's stock InfraValidator executor (LOAD_AND_QUERY) on local_docker; True if blessed."""
    from tfx.components.infra_validator import executor as tfx_executor
    from tfx.dsl.components.base import base_executor
    from tfx.proto import infra_validator_pb2
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.utils import proto_utils

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    build_model(Path(model.uri) / "Format-Serving")
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    rows = np.random.default_rng(0).uniform(0, 16, size=(2, FEATURES)).tolist()
    write_examples(Path(examples.uri) / "Split-eval", rows)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    Path(blessing.uri).mkdir()

    name, _, tag = SERVING_IMAGE.rpartition(":")
    serving_spec = infra_validator_pb2.ServingSpec(
        tensorflow_serving=infra_validator_pb2.TensorFlowServing(image_name=name, tags=[tag]),
        local_docker=infra_validator_pb2.LocalDockerConfig(),
        model_name="digits",
    )
    exec_properties = {
        "serving_spec": proto_utils.proto_to_json(serving_spec),
        "validation_spec": proto_utils.proto_to_json(
            infra_validator_pb2.ValidationSpec(max_loading_time_seconds=120, num_tries=1)
        ),
        "request_spec": proto_utils.proto_to_json(
            infra_validator_pb2.RequestSpec(
                tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(),
                split_name="eval",
                num_examples=2,
            )
        ),
    }
    context = base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / "tmp"), unique_id="1")
    tfx_executor.Executor(context).Do(
        {"model": [model], "examples": [examples]}, {"blessing": [blessing]}, exec_properties
    )
    blessed = (Path(blessing.uri) / "INFRA_BLESSED").exists()
    assert blessed != (Path(blessing.uri) / "INFRA_NOT_BLESSED").exists()
    assert blessing.get_int_custom_property("blessed") == int(blessed)
    return blessed


@pytest.mark.e2e
def test_stock_infra_validator_blesses_a_good_model_in_the_serving_image(tmp_path: Path) -> None:
    assert stock_infra_validate(tmp_path, save_examples_model) is True


@pytest.mark.e2e
def test_stock_infra_validator_refuses_a_model_the_server_cannot_load(tmp_path: Path) -> None:
    assert stock_infra_validate(tmp_path, lambda path: truncate_variables(save_examples_model(path))) is False


@pytest.mark.e2e
def test_pipeline_run_with_infra_platform_docker(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "pipeline", "run", "--data", "digits", "--runner", "local",
        "--pipeline-root", str(tmp_path / "root"), "--serving-dir", str(tmp_path / "serving"),
        "--epochs", "3", "--no-live-check",
        "--infra-platform", "docker", "--infra-image", SERVING_IMAGE,
    ]

    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert (tmp_path / "serving" / "digits" / "1" / "saved_model.pb").is_file(), output[-4000:]
    blessings = list((tmp_path / "root").glob("InfraValidator/blessing/*/INFRA_BLESSED"))
    assert len(blessings) == 1, output[-4000:]
    assert SERVING_IMAGE in output, output[-4000:]
