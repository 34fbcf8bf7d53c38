"""TF1-format SavedModels (graph-mode SavedModelBuilder, like TF Serving's own half_plus_two
testdata) serve; version directories that are skipped as incomplete say why, once."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.server.model_store import ModelStore, single_model_config
from serving.errors import Code, ServingError
from serving.server.servable import load_servable


def build_v1_half_plus_two(export_dir: Path, with_variables: bool = True) -> Path:
    """y = a*x + b with tf.compat.v1 placeholders, Session and SavedModelBuilder."""
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 1], name="x")
        if with_variables:
            a = tf1.Variable(0.5, name="a")
            b = tf1.Variable(2.0, name="b")
            y = tf.add(a * x, b, name="y")
        else:
            y = tf.add(0.5 * x, 2.0, name="y")
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            builder = tf1.saved_model.builder.SavedModelBuilder(str(export_dir))
            signature = tf1.saved_model.signature_def_utils.predict_signature_def({"image": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()
    return export_dir


@pytest.fixture(scope="module")
def v1_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_v1_half_plus_two(tmp_path_factory.mktemp("v1") / "1")


def test_tf1_saved_model_predicts_in_process(v1_model: Path):
    servable = load_servable("v1", 1, v1_model)
    signature = servable.signature("")
    out = servable.run(signature, {"image": np.array([[1.0], [2.0], [5.0]], np.float32)})
    np.testing.assert_allclose(out["y"], [[2.5], [3.0], [4.5]])
    # float64 input is cast as for TF2 models
    out = servable.run(signature, {"image": np.array([[4.0]], np.float64)})
    np.testing.assert_allclose(out["y"], [[4.0]])


def _grpc_y(server, request) -> np.ndarray:
    """Output `y` of a gRPC Predict."""
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return tf.make_ndarray(stub.Predict(request, timeout=30).outputs["y"])


def _rest(server, model: str, body: dict) -> dict:
    """The JSON answer of a REST Predict, which must succeed."""
    response = requests.post(f"{server.rest_endpoint}/v1/models/{model}:predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_tf1_saved_model_over_rest_and_grpc(tmp_path: Path, v1_model: Path, serve, predict_request):
    base = tmp_path / "v1"
    shutil.copytree(v1_model, base / "1")
    with serve(base, model_name="v1", args=["--enable_batching"]) as server:
        assert _rest(server, "v1", {"instances": [[1.0], [2.0]]}) == {"predictions": [[2.5], [3.0]]}
        assert _rest(server, "v1", {"inputs": {"image": [[6.0]]}}) == {"outputs": [[5.0]]}
        np.testing.assert_allclose(_grpc_y(server, predict_request("v1", image=np.array([[10.0]], np.float32))), [[7.0]])


def test_tf1_model_without_variables_is_served_with_its_empty_variables_dir(tmp_path: Path, serve, predict_request):
    """SavedModelBuilder leaves an empty variables/ for a graph without variables; TF Serving
    serves it, and so do we: the MetaGraph says no checkpoint is needed."""
    base = tmp_path / "novars"
    version_dir = build_v1_half_plus_two(base / "1", with_variables=False)
    assert (version_dir / "variables").is_dir() and not any((version_dir / "variables").iterdir())
    with serve(base, model_name="novars") as server:
        assert _rest(server, "novars", {"instances": [[2.0]]}) == {"predictions": [[3.0]]}
        np.testing.assert_allclose(_grpc_y(server, predict_request("novars", image=np.array([[6.0]], np.float32))), [[5.0]])
        assert "not loading" not in server.logs()


def test_tf1_model_with_variables_half_copied_is_skipped_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, v1_model: Path
):
    """The same empty variables/ is refused when the graph has variables: a copy in progress."""
    base = tmp_path / "half"
    version_dir = base / "1"
    version_dir.mkdir(parents=True)
    shutil.copy(v1_model / "saved_model.pb", version_dir / "saved_model.pb")
    (version_dir / "variables").mkdir()
    caplog.set_level(logging.INFO, logger="serving.server.model_store")
    store = ModelStore(single_model_config("half", str(base)), poll_wait_seconds=0)
    store.start()
    try:
        store.poll_once()
        store.poll_once()
        # TF Serving's status semantics are kept ...
        with pytest.raises(ServingError) as raised:
            store.get_servable("half")
        assert raised.value.code == Code.NOT_FOUND
        with pytest.raises(ServingError) as raised:
            store.version_status("half")
        assert raised.value.code == Code.NOT_FOUND
        assert "Could not find any versions" in raised.value.message
        # ... and the log says which directory was skipped and why, once (not on every poll).
        skipped = [r for r in caplog.records if "not loading" in r.getMessage()]
        assert len(skipped) == 1, [r.getMessage() for r in caplog.records]
        assert skipped[0].levelno == logging.WARNING
        assert str(version_dir) in skipped[0].getMessage()
        assert "variables/ directory is empty but the graph has variables" in skipped[0].getMessage()

        # The index alone is not enough either: every data shard must be there.
        shutil.copy(v1_model / "variables" / "variables.index", version_dir / "variables")
        store.poll_once()
        skipped = [r.getMessage() for r in caplog.records if "not loading" in r.getMessage()]
        assert len(skipped) == 2 and "no variables.data-* shard" in skipped[1], skipped

        # Once the copy is whole it is served.
        for data in (v1_model / "variables").glob("variables.data-*"):
            shutil.copy(data, version_dir / "variables")
        store.poll_once()
        servable = store.get_servable("half")
        out = servable.run(servable.signature(""), {"image": np.array([[2.0]], np.float32)})
        np.testing.assert_allclose(out["y"], [[3.0]])
    finally:
        store.stop()


def test_missing_saved_model_pb_is_logged_once_and_again_when_the_reason_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, half_plus_two_model: Path
):
    base = tmp_path / "m"
    (base / "3").mkdir(parents=True)
    caplog.set_level(logging.INFO, logger="serving.server.model_store")
    store = ModelStore(single_model_config("m", str(base)), poll_wait_seconds=0)
    store.start()
    try:
        store.poll_once()
        store.poll_once()
        messages = [r.getMessage() for r in caplog.records if "not loading" in r.getMessage()]
        assert messages == [f"not loading {base / '3'}: it has no saved_model.pb (or saved_model.pbtxt)"]
        shutil.copy(half_plus_two_model / "saved_model.pb", base / "3" / "saved_model.pb")
        (base / "3" / "variables").mkdir()
        (base / "3" / "variables" / "variables.data-00000-of-00001").write_bytes(b"partial")
        store.poll_once()
        store.poll_once()
        messages = [r.getMessage() for r in caplog.records if "not loading" in r.getMessage()]
        assert len(messages) == 2 and "variables/variables.index is missing" in messages[1]
    finally:
        store.stop()
