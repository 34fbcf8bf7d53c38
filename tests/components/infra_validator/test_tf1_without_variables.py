"""A TF1 SavedModel whose graph has no variables (empty `variables/`) is blessed and pushed.

TF Serving serves it; the InfraValidator (executor Do() on real artifacts, embedded server
process, LOAD_AND_QUERY) must bless it and `python -m serving.push` must publish it as served.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import iv_artifacts
import iv_saved_models
from components.infra_validator import read_blessing
from serving import layout, process, push, validate
from serving.client import ServingClient


def _has_empty_variables_dir(export_dir: Path) -> bool:
    return (export_dir / "variables").is_dir() and not any((export_dir / "variables").iterdir())


@pytest.mark.e2e
def test_infra_validator_blesses_and_queries_it(tmp_path: Path):
    model = iv_artifacts.model_artifact(tmp_path, iv_saved_models.build_tf1_without_variables)
    assert _has_empty_variables_dir(Path(model.uri) / "Format-Serving")
    examples = iv_artifacts.examples_artifact(tmp_path, [[1.0, 2.0, 3.0, 4.0]])

    blessing = iv_artifacts.run_infra_validator(tmp_path, model, examples, num_examples=1)

    result = read_blessing(blessing)
    assert result.blessed, result.failure_reason
    assert (Path(blessing.uri) / "INFRA_BLESSED").exists()
    assert json.loads(blessing.get_string_custom_property("infra_requests")) == [
        "Predict on signature 'serving_default' from eval example features"
    ]


@pytest.mark.e2e
def test_push_publishes_it_and_the_server_answers(tmp_path: Path):
    model = iv_saved_models.build_tf1_without_variables(tmp_path / "tf1")
    serving_dir = tmp_path / "serving"

    code = push.main([str(model), "--serving-dir", str(serving_dir), "--model-name", "tf1", "--server", "embedded"])

    assert code == push.EXIT_OK
    assert layout.list_versions(serving_dir / "tf1") == [1]
    assert _has_empty_variables_dir(serving_dir / "tf1" / "1")
    with process.ModelServerProcess(
        model_name="tf1", model_base_path=serving_dir / "tf1", server="embedded"
    ) as server:
        deadline = time.time() + 90
        server.wait_until_serving(deadline)
        validate.wait_until_available(server.grpc_endpoint, "tf1", deadline=deadline, is_alive=server.is_alive)
        for endpoint, protocol in ((server.rest_endpoint, "rest"), (server.grpc_endpoint, "grpc")):
            out = ServingClient(endpoint, protocol, "tf1").predict({"x": np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)})
            np.testing.assert_allclose(out["y"], [7.0])
