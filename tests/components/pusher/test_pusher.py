"""LayoutPusher: construction, and Do() publishing through serving.layout only when blessed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.types import channel_utils, standard_artifacts

from components.pusher import executor, spec
from components.pusher.component import LayoutPusher
from serving import layout


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory) -> standard_artifacts.Model:
    """A Model artifact whose Format-Serving directory holds a real (tiny) SavedModel."""
    root = tmp_path_factory.mktemp("model")
    module = tf.Module()
    module.w = tf.Variable(2.0)
    module.f = tf.function(lambda x: {"y": x * module.w}, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(root / "Format-Serving"), signatures={"serving_default": module.f})
    model = standard_artifacts.Model()
    model.uri = str(root)
    return model


def _blessing(kind, blessed: int, tmp_path: Path, name: str):
    artifact = kind()
    artifact.uri = str(tmp_path / name)
    artifact.set_int_custom_property("blessed", blessed)
    return artifact


def _do(tmp_path: Path, model, *, blessed: int = 1, infra: int | None = None, config: dict | None = None):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{len(list(tmp_path.iterdir()))}")
    inputs = {spec.MODEL_KEY: [model], spec.MODEL_BLESSING_KEY: [_blessing(standard_artifacts.ModelBlessing, blessed, tmp_path, "mb")]}
    if infra is not None:
        inputs[spec.INFRA_BLESSING_KEY] = [_blessing(standard_artifacts.InfraBlessing, infra, tmp_path, "ib")]
    config = config if config is not None else {"serving_dir": str(tmp_path / "serving"), "model_name": "digits"}
    executor.Executor().Do(inputs, {spec.PUSHED_MODEL_KEY: [pushed]}, {spec.CUSTOM_CONFIG_KEY: json.dumps(config)})
    return pushed


def test_construction_wires_blessings_and_destination() -> None:
    model = channel_utils.as_channel([standard_artifacts.Model()])
    blessing = channel_utils.as_channel([standard_artifacts.ModelBlessing()])
    infra = channel_utils.as_channel([standard_artifacts.InfraBlessing()])
    pusher = LayoutPusher(model=model, model_blessing=blessing, infra_blessing=infra, serving_dir="/srv", model_name="digits")
    assert set(pusher.inputs) == {spec.MODEL_KEY, spec.MODEL_BLESSING_KEY, spec.INFRA_BLESSING_KEY}
    assert json.loads(pusher.exec_properties[spec.CUSTOM_CONFIG_KEY]) == {"serving_dir": "/srv", "model_name": "digits"}
    assert pusher.outputs[spec.PUSHED_MODEL_KEY].type == standard_artifacts.PushedModel
    without_infra = LayoutPusher(model=model, model_blessing=blessing, serving_dir="/srv", model_name="digits")
    assert spec.INFRA_BLESSING_KEY not in without_infra.inputs
    with pytest.raises(ValueError, match="serving_dir and model_name are required"):
        LayoutPusher(model=model, model_blessing=blessing, serving_dir="", model_name="digits")


def test_blessed_models_become_consecutive_integer_versions(tmp_path: Path, trained_model) -> None:
    first = _do(tmp_path, trained_model)
    second = _do(tmp_path, trained_model, infra=1)
    model_dir = tmp_path / "serving" / "digits"
    assert layout.list_versions(model_dir) == [1, 2]
    assert first.get_int_custom_property(spec.PUSHED_PROPERTY) == 1
    assert first.get_string_custom_property(spec.PUSHED_VERSION_PROPERTY) == "1"
    assert second.get_string_custom_property(spec.PUSHED_DESTINATION_PROPERTY) == str(model_dir / "2")
    assert layout.is_complete_saved_model(model_dir / "2")
    assert not [p.name for p in model_dir.iterdir() if p.name.startswith(layout.STAGING_PREFIX)]
    assert (Path(second.uri) / "saved_model.pb").is_file()  # archive copy in the pipeline root


@pytest.mark.parametrize("blessed,infra", [(0, None), (1, 0), (0, 1)])
def test_unblessed_models_leave_the_serving_dir_untouched(tmp_path: Path, trained_model, blessed: int, infra) -> None:
    pushed = _do(tmp_path, trained_model, blessed=blessed, infra=infra)
    assert pushed.get_int_custom_property(spec.PUSHED_PROPERTY) == 0
    assert not (tmp_path / "serving").exists()


def test_missing_model_blessing_or_destination_is_an_error(tmp_path: Path, trained_model) -> None:
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    config = json.dumps({"serving_dir": str(tmp_path / "serving"), "model_name": "digits"})
    with pytest.raises(ValueError, match="needs a model_blessing input"):
        executor.Executor().Do({spec.MODEL_KEY: [trained_model]}, {spec.PUSHED_MODEL_KEY: [pushed]}, {spec.CUSTOM_CONFIG_KEY: config})
    with pytest.raises(ValueError, match="must name 'serving_dir' and 'model_name'"):
        _do(tmp_path, trained_model, config={"serving_dir": str(tmp_path / "serving")})
    with pytest.raises(layout.LayoutError, match="model name '../x' is not allowed"):
        _do(tmp_path, trained_model, config={"serving_dir": str(tmp_path / "serving"), "model_name": "../x"})
    assert not (tmp_path / "serving").exists()


def test_warmed_up_model_from_the_infra_blessing_is_pushed(tmp_path: Path, trained_model) -> None:
    import shutil

    infra = _blessing(standard_artifacts.InfraBlessing, 1, tmp_path, "infra")
    infra.set_int_custom_property(spec.HAS_MODEL_PROPERTY, 1)
    stamped = Path(infra.uri) / "stamped_model"
    shutil.copytree(Path(trained_model.uri) / "Format-Serving", stamped)
    (stamped / "assets.extra").mkdir()
    (stamped / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"records")
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    executor.Executor().Do(
        {
            spec.MODEL_KEY: [trained_model],
            spec.MODEL_BLESSING_KEY: [_blessing(standard_artifacts.ModelBlessing, 1, tmp_path, "mb")],
            spec.INFRA_BLESSING_KEY: [infra],
        },
        {spec.PUSHED_MODEL_KEY: [pushed]},
        {spec.CUSTOM_CONFIG_KEY: json.dumps({"serving_dir": str(tmp_path / "serving"), "model_name": "m"})},
    )
    version_dir = tmp_path / "serving" / "m" / "1"
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").read_bytes() == b"records"


def test_a_model_outside_the_local_filesystem_is_copied_locally_before_publishing(
    tmp_path: Path, trained_model
) -> None:
    # TF's in-memory filesystem stands in for gs://: not a local directory, read through TF's gfile.
    from tfx.utils import io_utils

    remote = "ram://pusher-test/model"
    io_utils.copy_dir(str(Path(trained_model.uri) / "Format-Serving"), remote)
    with executor.local_model_copy(remote) as local:
        assert Path(local).is_dir() and layout.is_complete_saved_model(local)
        published = layout.publish(local, tmp_path / "serving", "digits")
    assert not Path(local).exists()
    assert (Path(published.path) / "saved_model.pb").is_file()
    local_dir = str(Path(trained_model.uri) / "Format-Serving")
    with executor.local_model_copy(local_dir) as same:
        assert same == local_dir
