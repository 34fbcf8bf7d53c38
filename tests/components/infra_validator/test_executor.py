"""The InfraValidator executor and local runner against the real embedded server process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tfx.components.infra_validator import serving_bins
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

import iv_artifacts
import iv_saved_models
from components.infra_validator import local_serving_spec, read_blessing, summarize_blessing
from components.infra_validator.runner import LocalProcessRunner, create_model_server_runner
from serving import validate
from serving.client import ServingClient
from serving.errors import UnservableModel
from serving.saved_model import read_signature_defs

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]]


@pytest.fixture(scope="module")
def good_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return iv_saved_models.build_good(tmp_path_factory.mktemp("good") / "model")


def _stock_push(root: Path, model, blessing) -> Path:
    """Runs TFX's stock Pusher executor with a blessed ModelBlessing; returns its destination.

    With `model=None` the Pusher pushes the InfraBlessing's warmed-up model copy (TFX's rule).
    """
    model_blessing = standard_artifacts.ModelBlessing()
    model_blessing.uri = str(root / "model_blessing")
    model_blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(root / "pushed")
    destination = root / "serving" / "m"
    pusher_executor.Executor().Do(
        {"model_blessing": [model_blessing], "infra_blessing": [blessing], **({"model": [model]} if model else {})},
        {"pushed_model": [pushed]},
        {
            "push_destination": proto_utils.proto_to_json(
                pusher_pb2.PushDestination(
                    filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(destination))
                )
            ),
            "custom_config": "null",
        },
    )
    return destination


@pytest.mark.e2e
def test_good_model_is_blessed_queried_warmed_up_and_pushed_by_the_stock_pusher(tmp_path: Path):
    model = iv_artifacts.model_artifact(tmp_path, iv_saved_models.build_good)
    examples = iv_artifacts.examples_artifact(tmp_path, ROWS)

    blessing = iv_artifacts.run_infra_validator(tmp_path, model, examples)

    assert (Path(blessing.uri) / "INFRA_BLESSED").exists()
    result = read_blessing(blessing)
    assert result.blessed and result.mode == "LOAD_AND_QUERY" and result.attempts == 1
    assert result.server.startswith("embedded server")
    assert result.load_seconds is not None and result.server_start_seconds > 0
    # Two eval examples, each through the classify signature and the named-tensor serving_default.
    requests = json.loads(blessing.get_string_custom_property("infra_requests"))
    assert requests == [
        "Classify on signature 'classify' from eval example",
        "Classify on signature 'classify' from eval example",
        "Predict on signature 'serving_default' from eval example features",
        "Predict on signature 'serving_default' from eval example features",
    ]
    assert summarize_blessing(blessing).startswith("InfraValidator: blessed (LOAD_AND_QUERY) by embedded server")

    warmup = Path(blessing.uri) / "stamped_model" / "assets.extra" / "tf_serving_warmup_requests"
    assert warmup.is_file() and blessing.get_int_custom_property("has_model") == 1
    import tensorflow as tf

    assert sum(1 for _ in tf.data.TFRecordDataset(str(warmup))) == 4

    destination = _stock_push(tmp_path, None, blessing)
    (version_dir,) = list(destination.iterdir())
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    assert (version_dir / "saved_model.pb").is_file()


@pytest.mark.e2e
def test_local_runner_runs_the_embedded_server_and_reports_logs(good_model_dir: Path, tmp_path: Path):
    import shutil

    model_path = tmp_path / "base" / "infra-validation-model" / "7"
    shutil.copytree(good_model_dir, model_path)
    serving_spec = local_serving_spec()
    binary = serving_bins.TensorFlowServing(model_name=serving_spec.model_name, tag="local")
    runner = create_model_server_runner(str(model_path), binary, serving_spec, local_server="embedded")
    assert isinstance(runner, LocalProcessRunner)
    with pytest.raises(AssertionError, match="not running yet"):
        runner.GetEndpoint()
    try:
        runner.Start()
        runner.WaitUntilRunning(time.time() + 90)
        endpoint = runner.GetEndpoint()
        assert endpoint.startswith("127.0.0.1:")
        validate.wait_until_available(endpoint, serving_spec.model_name, deadline=time.time() + 30)
        with ServingClient(endpoint, "grpc", serving_spec.model_name) as client:
            (status,) = client.status()
        assert (status.version, status.state) == (7, "AVAILABLE")
    finally:
        runner.Stop()
    assert not runner.process.is_alive()
    assert "SERVING grpc=" in runner.GetLogs()
    runner.Stop()  # a second Stop() is harmless


def test_non_local_platforms_go_to_tfx_runners(monkeypatch: pytest.MonkeyPatch):
    from tfx.components.infra_validator import executor as tfx_executor

    created = []
    monkeypatch.setattr(tfx_executor, "_create_model_server_runner", lambda **kwargs: created.append(kwargs) or "tfx")
    serving_spec = local_serving_spec()
    serving_spec.local_docker.SetInParent()
    binary = serving_bins.TensorFlowServing(model_name=serving_spec.model_name, tag="latest")
    assert create_model_server_runner("/m/infra-validation-model/1", binary, serving_spec) == "tfx"
    assert created[0]["serving_spec"] is serving_spec


# ---- request building (no server) -------------------------------------------------------------


def _example(**features) -> bytes:
    import tensorflow as tf

    example = tf.train.Example()
    for key, values in features.items():
        if isinstance(values[0], int):
            example.features.feature[key].int64_list.value.extend(values)
        else:
            example.features.feature[key].float_list.value.extend(values)
    return example.SerializeToString()


def test_named_tensor_requests_take_matching_features_else_zeros(good_model_dir: Path):
    import tensorflow as tf

    signatures = read_signature_defs(good_model_dir)
    plan = validate.build_requests(
        signatures,
        model_name="m",
        examples=[_example(x=[1.0, 2.0, 3.0, 4.0]), _example(other=[1.0])],
        signature_names=["serving_default"],
    )
    first, second = plan.requests
    assert first.source == "eval example features" and second.source == "signature inputs"
    assert tf.make_ndarray(first.request.inputs["x"]).tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert tf.make_ndarray(second.request.inputs["x"]).tolist() == [[0.0, 0.0, 0.0, 0.0]]
    assert first.request.model_spec.signature_name == "serving_default"


def test_auto_plan_skips_ambiguous_string_inputs_and_classify_without_examples(tmp_path: Path):
    import tensorflow as tf

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def raw(self, image_bytes):
            return {"n": tf.strings.length(image_bytes)}

        @tf.function(input_signature=[tf.TensorSpec([None, 2, 2, 1], tf.float32, name="image")])
        def pixels(self, image):
            return {"s": tf.reduce_sum(image, axis=[1, 2, 3])}

    module = Two()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"bytes": module.raw, "serving_default": module.pixels})
    signatures = read_signature_defs(tmp_path / "m")

    plan = validate.build_requests(signatures, model_name="m", examples=[_example(image=[1, 2, 3, 4])])

    (only,) = plan.requests
    assert only.signature_name == "serving_default" and only.source == "eval example features"
    assert tf.make_ndarray(only.request.inputs["image"]).reshape(-1).tolist() == [1.0, 2.0, 3.0, 4.0]
    assert any("'bytes'" in s and "single string input" in s for s in plan.skipped)
    # Named explicitly, the string signature gets the serialized examples, as in TFX.
    explicit = validate.build_requests(signatures, model_name="m", examples=[b"\n\x00"], signature_names=["bytes"])
    assert tf.make_ndarray(explicit.requests[0].request.inputs["image_bytes"]).tolist() == [b"\n\x00"]


def test_plan_names_missing_signatures_and_classify_needs_examples(good_model_dir: Path):
    signatures = read_signature_defs(good_model_dir)
    with pytest.raises(UnservableModel, match="no signature 'serving_examples'; it has: 'classify', 'serving_default'"):
        validate.build_requests(signatures, model_name="m", signature_names=["serving_examples"])
    with pytest.raises(ValueError, match="takes tf.Examples, but no examples were given"):
        validate.build_requests(signatures, model_name="m", signature_names=["classify"])
    auto = validate.build_requests(signatures, model_name="m")
    assert [r.signature_name for r in auto.requests] == ["serving_default"]
    assert auto.skipped == ("'classify': classify signature needs tf.Examples and none were given",)


def test_summary_of_a_failed_blessing_names_the_reason():
    blessing = standard_artifacts.InfraBlessing()
    blessing.set_int_custom_property("blessed", 0)
    blessing.set_int_custom_property("infra_attempts", 1)
    blessing.set_string_custom_property("infra_failure_reason", "version 1 of 'm' failed to load: boom")
    assert summarize_blessing(blessing) == (
        "InfraValidator: NOT blessed after 1 attempt(s): version 1 of 'm' failed to load: boom"
    )


def test_auto_plan_falls_back_to_tfx_default_for_a_serialized_example_serving_default(tmp_path: Path):
    import tensorflow as tf

    class Estimatorish(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            return {"n": tf.strings.length(examples)}

    module = Estimatorish()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    signatures = read_signature_defs(tmp_path / "m")
    record = _example(x=[1.0])

    plan = validate.build_requests(signatures, model_name="m", examples=[record])

    (only,) = plan.requests
    assert (only.signature_name, only.source) == ("serving_default", "serialized eval example")
    assert tf.make_ndarray(only.request.inputs["examples"]).tolist() == [record]
    assert plan.skipped == ()
    # Without examples there is nothing to send it: load-only, with the reason recorded.
    assert validate.build_requests(signatures, model_name="m").requests == ()


def test_asking_for_a_missing_tensorflow_model_server_is_a_configuration_error(tmp_path: Path, monkeypatch):
    import shutil as shutil_module

    if shutil_module.which("tensorflow_model_server"):
        monkeypatch.setenv("PATH", str(tmp_path))  # hide a real binary
    model = iv_artifacts.model_artifact(tmp_path, iv_saved_models.build_no_signatures)
    from tfx.dsl.components.base import base_executor
    from components.infra_validator import executor as executor_lib

    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    with pytest.raises(ValueError, match="tensorflow_model_server is not on PATH"):
        executor_lib.Executor(base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path), unique_id="1")).Do(
            {"model": [model]},
            {"blessing": [blessing]},
            {"serving_spec": proto_utils.proto_to_json(local_serving_spec()), "local_server": "tensorflow_model_server"},
        )
