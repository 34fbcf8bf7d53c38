"""`ModelServer` in this process: start() serves both transports, stop() closes them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.server.flags import build_parser
from serving.server.model_server import ModelServer, StartError


def _args(*argv: str):
    return build_parser().parse_args(["--pick_unused_ports", "--file_system_poll_wait_seconds=1", *argv])


def test_model_server_starts_serves_both_transports_and_stops(half_plus_two_dir, predict_request):
    with ModelServer(_args("--model_name=half_plus_two", f"--model_base_path={half_plus_two_dir}")) as server:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.rest_port}/v1/models/half_plus_two:predict",
            data=json.dumps({"instances": [1.0, 2.0]}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"predictions": [2.5, 3.0]}
        grpc_request = predict_request("half_plus_two", x=np.array([4.0], np.float32))
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            answer = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(grpc_request, timeout=30)
        assert list(answer.outputs["y"].float_val) == [4.0]
        assert answer.model_spec.version.value == 1
    for port in (server.rest_port, server.grpc_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    server.stop()  # a second stop is harmless


def test_model_server_refuses_bad_flags_with_exit_status_2(tmp_path):
    with pytest.raises(StartError, match="Both --model_base_path and --model_config_file are empty") as info:
        ModelServer(_args()).start()
    assert info.value.exit_code == 2


def test_tensorflow_is_imported_without_keras_and_keras_stays_importable():
    """In a fresh interpreter (as `python -m serving.server` starts): TF's eager import of Keras is
    skipped, and nothing is left blocked, so code that needs Keras later still imports it."""
    code = (
        "import os, sys, json\n"
        "os.environ['TF_USE_LEGACY_KERAS'] = '1'\n"
        "from serving.server.model_server import import_tensorflow_without_keras\n"
        "tf = import_tensorflow_without_keras()\n"
        "before = sorted(m for m in ('tf_keras', 'keras') if m in sys.modules)\n"
        "import tf_keras.src.optimizers\n"
        "print(json.dumps({'before': before, 'tf': tf.__name__, 'after': 'tf_keras' in sys.modules}))\n"
    )
    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1]) == {"before": [], "tf": "tensorflow", "after": True}


@pytest.mark.parametrize("optimizer", ["legacy", "current"])
def test_server_process_serves_a_keras_model_saved_with_its_optimizer(serve, tmp_path, optimizer):
    """A trained tf_keras model saved with its optimizer: with Keras not imported at start-up,
    tf.saved_model.load imports it itself for a legacy OptimizerV2, and restores the current
    optimizer as a plain object; either way the server answers what the model computes."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.layers.Input((3,)), tf_keras.layers.Dense(2)])
    adam = tf_keras.optimizers.legacy.Adam() if optimizer == "legacy" else tf_keras.optimizers.Adam()
    model.compile(optimizer=adam, loss="mse")
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    model.fit(x, np.ones((4, 2), np.float32), epochs=1, verbose=0)
    model.save(str(tmp_path / "models" / "keras_model" / "1"), save_format="tf")
    with serve(tmp_path / "models" / "keras_model", model_name="keras_model") as server:
        request = urllib.request.Request(
            f"{server.rest_endpoint}/v1/models/keras_model:predict",
            data=json.dumps({"instances": x.tolist()}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = np.array(json.loads(response.read())["predictions"], np.float32)
    np.testing.assert_allclose(predictions, model(x).numpy(), rtol=1e-5, atol=1e-6)
