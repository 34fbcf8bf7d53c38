"""Versions, policies, labels, failed loads and config reloads, in process (no sleeping:
each test drives `poll_once` itself)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import layout
from serving.server.model_store import ModelStore, single_model_config
from serving.errors import Code, ServingError


def _store(config, **kwargs) -> ModelStore:
    store = ModelStore(config, poll_wait_seconds=0, **kwargs)
    store.start()
    return store


def _predict(store: ModelStore, name: str, x: float, **spec) -> float:
    servable = store.get_servable(name, **spec)
    signature = servable.signature("")
    return float(servable.run(signature, {"x": np.array([x], np.float32)})["y"][0])


def _states(store: ModelStore, name: str) -> dict[int, str]:
    return {status.version: status.state for status in store.version_status(name)}


def test_latest_version_is_served_and_a_new_one_replaces_it(
    tmp_path: Path, half_plus_two_model: Path, half_plus_three_model: Path
):
    base = tmp_path / "m"
    shutil.copytree(half_plus_two_model, base / "1")
    shutil.copytree(half_plus_two_model, base / "00000002")  # zero padded is version 2
    (base / "v3").mkdir()  # not a version
    store = _store(single_model_config("m", str(base)))
    assert _states(store, "m") == {2: "AVAILABLE"}
    assert store.get_servable("m").version == 2

    published = layout.publish(half_plus_three_model, tmp_path, "m")
    assert published.version == 3
    store.poll_once()
    assert _states(store, "m") == {3: "AVAILABLE", 2: "END"}
    assert _predict(store, "m", 1.0) == 3.5  # 0.5 * 1 + 3: the new model
    with pytest.raises(ServingError) as info:
        store.get_servable("m", version=2)
    assert info.value.code == Code.NOT_FOUND
    assert info.value.message == "Servable not found for request: Specific(m, 2)"


def test_incomplete_version_is_not_loaded(tmp_path: Path, half_plus_two_model: Path):
    base = tmp_path / "m"
    shutil.copytree(half_plus_two_model, base / "1")
    partial = base / "2"
    partial.mkdir(parents=True)
    (partial / "variables").mkdir()  # copy in progress: no saved_model.pb yet
    store = _store(single_model_config("m", str(base)))
    assert _states(store, "m") == {1: "AVAILABLE"}
    shutil.copytree(half_plus_two_model / "variables", partial / "variables", dirs_exist_ok=True)
    shutil.copy(half_plus_two_model / "saved_model.pb", partial / "saved_model.pb")
    store.poll_once()
    assert _states(store, "m") == {2: "AVAILABLE", 1: "END"}


def test_failed_version_is_reported_and_the_old_one_keeps_serving(
    tmp_path: Path, half_plus_two_model: Path, broken_model: Path
):
    base = tmp_path / "m"
    shutil.copytree(half_plus_two_model, base / "1")
    store = _store(single_model_config("m", str(base)))
    shutil.copytree(broken_model, base / "2")
    store.poll_once()
    status = {s.version: s for s in store.version_status("m")}
    assert status[1].state == "AVAILABLE"
    assert status[2].state == "END"
    assert status[2].error_code != "OK" and status[2].error_message
    assert store.get_servable("m").version == 1
    assert _predict(store, "m", 2.0) == 3.0
    store.poll_once()  # not retried on every poll
    assert {s.version: s.state for s in store.version_status("m")}[2] == "END"


def test_all_and_specific_policies(tmp_path: Path, half_plus_two_model: Path):
    base = tmp_path / "m"
    for version in (1, 2, 3):
        shutil.copytree(half_plus_two_model, base / str(version))
    config = single_model_config("m", str(base))
    config.model_config_list.config[0].model_version_policy.all.SetInParent()
    store = _store(config)
    assert _states(store, "m") == {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}

    config = single_model_config("m", str(base))
    config.model_config_list.config[0].model_version_policy.specific.versions.extend([1, 3])
    store = _store(config)
    assert _states(store, "m") == {1: "AVAILABLE", 3: "AVAILABLE"}

    config = single_model_config("m", str(base))
    config.model_config_list.config[0].model_version_policy.latest.num_versions = 2
    store = _store(config)
    assert _states(store, "m") == {2: "AVAILABLE", 3: "AVAILABLE"}


def _config(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_labels_and_several_models(tmp_path: Path, half_plus_two_model: Path, half_plus_three_model: Path):
    shutil.copytree(half_plus_two_model, tmp_path / "a" / "1")
    shutil.copytree(half_plus_three_model, tmp_path / "a" / "2")
    shutil.copytree(half_plus_three_model, tmp_path / "b" / "5")
    config = _config(
        f"""
        model_config_list {{
          config {{
            name: "a" base_path: "{tmp_path / 'a'}" model_platform: "tensorflow"
            model_version_policy {{ specific {{ versions: 1 versions: 2 }} }}
            version_labels {{ key: "stable" value: 1 }}
            version_labels {{ key: "canary" value: 2 }}
          }}
          config {{ name: "b" base_path: "{tmp_path / 'b'}" }}
        }}
        """
    )
    store = _store(config)
    assert _predict(store, "a", 1.0, label="stable") == 2.5
    assert _predict(store, "a", 1.0, label="canary") == 3.5
    assert _predict(store, "b", 1.0) == 3.5
    assert store.version_status("a", label="canary")[0].version == 2
    with pytest.raises(ServingError) as info:
        store.get_servable("a", label="prod")
    assert (info.value.code, info.value.message) == (
        Code.INVALID_ARGUMENT,
        "Unrecognized servable version label: prod",
    )


def test_label_on_unavailable_version_fails_like_tf_serving(tmp_path: Path, half_plus_two_model: Path):
    shutil.copytree(half_plus_two_model, tmp_path / "a" / "1")
    config = _config(
        f"""model_config_list {{ config {{ name: "a" base_path: "{tmp_path / 'a'}"
        version_labels {{ key: "stable" value: 7 }} }} }}"""
    )
    with pytest.raises(ServingError) as info:
        _store(config)
    assert info.value.code == Code.FAILED_PRECONDITION
    assert info.value.message == (
        "Request to assign label to version 7 of model a, which is not currently available for inference"
    )
    store = _store(config, allow_labels_for_unavailable=True)
    with pytest.raises(ServingError) as info:
        store.get_servable("a", label="stable")
    assert info.value.message == "Servable not found for request: Specific(a, 7)"


def test_reload_config_supersedes_the_old_one(tmp_path: Path, half_plus_two_model: Path):
    shutil.copytree(half_plus_two_model, tmp_path / "a" / "1")
    shutil.copytree(half_plus_two_model, tmp_path / "b" / "1")
    store = _store(single_model_config("a", str(tmp_path / "a")))
    store.reload_config(single_model_config("b", str(tmp_path / "b")))
    assert store.model_names() == ["b"]
    with pytest.raises(ServingError) as info:
        store.get_servable("a")
    assert info.value.message == "Servable not found for request: Latest(a)"


@pytest.mark.parametrize("name", ["../etc", "a/b", ".."])
def test_model_names_that_are_paths_are_rejected(tmp_path: Path, name: str):
    with pytest.raises(ServingError) as info:
        ModelStore(single_model_config(name, str(tmp_path)))
    assert info.value.code == Code.INVALID_ARGUMENT


def test_request_names_never_touch_the_file_system(tmp_path: Path, half_plus_two_model: Path):
    shutil.copytree(half_plus_two_model, tmp_path / "a" / "1")
    shutil.copytree(half_plus_two_model, tmp_path / "secret" / "1")
    store = _store(single_model_config("a", str(tmp_path / "a")))
    for name in ("../secret", "a/../secret", "secret"):
        with pytest.raises(ServingError) as info:
            store.get_servable(name)
        assert info.value.code == Code.NOT_FOUND
    with pytest.raises(ServingError):
        store.get_servable("a", label="../../secret")


def test_warmup_failure_fails_the_load(tmp_path: Path, half_plus_two_model: Path):
    shutil.copytree(half_plus_two_model, tmp_path / "a" / "1")

    def warmup(servable):
        raise ServingError(Code.INVALID_ARGUMENT, "warmup request 0 failed")

    store = _store(single_model_config("a", str(tmp_path / "a")), warmup=warmup)
    (status,) = store.version_status("a")
    assert (status.version, status.state, status.error_message) == (1, "END", "warmup request 0 failed")


def test_truncating_casts_are_refused(slow_model: Path):
    from serving.server.servable import load_servable

    servable = load_servable("slow", 1, slow_model)
    signature = servable.signature("")
    assert servable.run(signature, {"n": np.array([3], np.int64)})["y"].tolist() == [3]
    with pytest.raises(ServingError) as info:
        servable.run(signature, {"n": np.array([1.7], np.float32)})
    assert info.value.code == Code.INVALID_ARGUMENT
    assert info.value.message == "Expects arg[0] to be int32 but float is provided"


def test_reload_with_a_new_base_path_loads_from_there(
    tmp_path: Path, half_plus_two_model: Path, half_plus_three_model: Path
):
    shutil.copytree(half_plus_two_model, tmp_path / "old" / "1")
    shutil.copytree(half_plus_three_model, tmp_path / "new" / "1")
    store = _store(single_model_config("m", str(tmp_path / "old")))
    assert _predict(store, "m", 1.0) == 2.5
    store.reload_config(single_model_config("m", str(tmp_path / "new")))
    assert _predict(store, "m", 1.0) == 3.5
    assert store.get_servable("m").path == str(tmp_path / "new" / "1")
