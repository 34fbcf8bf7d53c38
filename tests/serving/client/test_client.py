"""ServingClient and the CLI: arguments, then real loopback round trips against `python -m serving.server`.

The model under test is built here and its answers are known: a "brightness classifier" on
4x4x1 raw pixels whose probability of class 1 is mean(pixels) / 255, and whose class names carry
the version ("dark-v2", "bright-v2"), so every answer also shows which version served it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from serving.client import ClientError, ModelMetadata, ServingClient, SignatureSpec, TensorSpec
from serving.client.cli import main as cli_main
from serving.process import free_port
from serving.saved_model import CLASSIFY_METHOD, REGRESS_METHOD

MODEL = "bright"


# ---------------------------------------------------------------------------------------------
# the model


def build_brightness_model(export_dir: Path, version: int, set_method_names) -> Path:
    """SavedModel with serving_default (image), serving_bytes (image_bytes), classify, regress."""
    import tensorflow as tf

    names = [f"dark-v{version}", f"bright-v{version}"]

    class Brightness(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(1.0 / 255.0, name="scale")
            self.names = tf.constant(names)

        def _head(self, pixels):
            bright = tf.reduce_mean(pixels, axis=[1, 2, 3]) * self.scale
            probabilities = tf.stack([1.0 - bright, bright], axis=1)
            class_id = tf.argmax(probabilities, axis=1)
            return {"probabilities": probabilities, "class_id": class_id,
                    "class_name": tf.gather(self.names, class_id)}

        def _parse(self, serialized):
            features = tf.io.parse_example(serialized, {"image": tf.io.FixedLenFeature([16], tf.float32)})
            return tf.reshape(features["image"], [-1, 4, 4, 1])

        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32, name="image")])
        def serve(self, image):
            return self._head(image)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve_bytes(self, image_bytes):
            def decode(data):
                pixels = tf.io.decode_image(data, channels=1, expand_animations=False)
                return tf.image.resize(tf.cast(pixels, tf.float32), [4, 4])

            return self._head(tf.map_fn(decode, image_bytes, fn_output_signature=tf.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs):
            scores = self._head(self._parse(inputs))["probabilities"]
            classes = tf.tile(self.names[None, :], [tf.shape(inputs)[0], 1])
            return {"classes": classes, "scores": scores}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs):
            return {"outputs": self._head(self._parse(inputs))["probabilities"][:, 1]}

    module = Brightness()
    tf.saved_model.save(
        module,
        str(export_dir),
        signatures={
            "serving_default": module.serve,
            "serving_bytes": module.serve_bytes,
            "classify": module.classify,
            "regress": module.regress,
        },
    )
    # TF2's saver writes the predict method for every signature; TF Serving routes Classify and
    # Regress by method name.
    set_method_names(export_dir, {"classify": CLASSIFY_METHOD, "regress": REGRESS_METHOD})
    return export_dir


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, serve, method_namer):
    """Versions 1 and 2 of `bright` served together, labels stable=1 and canary=2."""
    root = tmp_path_factory.mktemp("client")
    base = root / MODEL
    for version in (1, 2):
        build_brightness_model(base / str(version), version, method_namer)
    config = root / "models.config"
    config.write_text(
        "model_config_list {\n  config {\n"
        f'    name: "{MODEL}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
        "    model_version_policy { all {} }\n"
        '    version_labels { key: "stable" value: 1 }\n'
        '    version_labels { key: "canary" value: 2 }\n'
        "  }\n}\n"
    )
    with serve(config_file=config) as process:
        yield process


def endpoint(server, protocol: str) -> str:
    return f"127.0.0.1:{server.rest_port if protocol == 'rest' else server.grpc_port}"


def gray(value: float, rows: int = 1) -> np.ndarray:
    return np.full((rows, 4, 4, 1), value, dtype=np.float32)


PROTOCOLS = pytest.mark.parametrize("protocol", ["rest", "grpc"])


# ---------------------------------------------------------------------------------------------
# without a server


def test_constructor_validates_its_arguments():
    with pytest.raises(ClientError, match=r"give a version \(1\) or a label \('x'\), not both"):
        ServingClient("localhost:8501", "rest", MODEL, version=1, label="x")
    with pytest.raises(ClientError, match="protocol 'http' is not supported"):
        ServingClient("localhost:8501", "http", MODEL)  # type: ignore[arg-type]
    with pytest.raises(ClientError, match="timeout must be a positive number"):
        ServingClient("localhost:8501", "rest", MODEL, timeout=-1)


def test_bytes_encoding_needs_a_bytes_signature(monkeypatch, tmp_path):
    only_pixels = ModelMetadata("m", 1, {"serving_default": SignatureSpec(
        "serving_default", "tensorflow/serving/predict",
        {"image": TensorSpec("image", "DT_FLOAT", (-1, 4, 4, 1))}, {})})
    client = ServingClient("127.0.0.1:1", "rest", "m")
    monkeypatch.setattr(client, "metadata", lambda **_: only_pixels)
    with pytest.raises(ClientError, match=r"has no signature with an 'image_bytes' string input"):
        client.predict_images([tmp_path / "x.png"], encoding="bytes")


# ---------------------------------------------------------------------------------------------
# loopback round trips


@PROTOCOLS
def test_status_and_metadata(server, protocol):
    with ServingClient(endpoint(server, protocol), protocol, MODEL) as client:
        states = {s.version: s.state for s in client.status()}
        assert states == {1: "AVAILABLE", 2: "AVAILABLE"}
        metadata = client.metadata()
        assert metadata.version == 2
        assert set(metadata.signatures) >= {"serving_default", "serving_bytes", "classify", "regress"}
        assert metadata.signatures["serving_default"].inputs["image"] == TensorSpec("image", "DT_FLOAT", (-1, 4, 4, 1))
        assert metadata.signatures["classify"].method_name == CLASSIFY_METHOD
    with ServingClient(endpoint(server, protocol), protocol, MODEL, label="stable") as client:
        assert [(s.version, s.state) for s in client.status()] == [(1, "AVAILABLE")]


@PROTOCOLS
def test_predict_arrays_by_version_and_label(server, protocol):
    address = endpoint(server, protocol)
    with ServingClient(address, protocol, MODEL) as latest:
        outputs = latest.predict(np.concatenate([gray(204.0), gray(51.0)]))
    np.testing.assert_allclose(outputs["probabilities"], [[0.2, 0.8], [0.8, 0.2]], rtol=1e-5)
    assert outputs["class_id"].tolist() == [1, 0]
    assert outputs["class_name"].tolist() == [b"bright-v2", b"dark-v2"]
    for pin, expected in ((dict(version=1), b"bright-v1"), (dict(label="stable"), b"bright-v1"),
                          (dict(label="canary"), b"bright-v2"), (dict(version=2), b"bright-v2")):
        with ServingClient(address, protocol, MODEL, **pin) as client:
            assert client.predict({"image": gray(250.0)})["class_name"].tolist() == [expected], pin


@PROTOCOLS
@pytest.mark.parametrize("encoding", ["pixels", "bytes", "auto"])
def test_predict_images_png_and_jpeg(server, protocol, encoding, tmp_path):
    from PIL import Image

    Image.fromarray(np.full((12, 10), 230, np.uint8)).save(tmp_path / "light.png")
    Image.fromarray(np.full((5, 7, 3), 20, np.uint8)).save(tmp_path / "dark.jpg", quality=95)
    with ServingClient(endpoint(server, protocol), protocol, MODEL, version=1) as client:
        rows = client.predict_images([tmp_path / "light.png", tmp_path / "dark.jpg"], encoding=encoding)
    assert [(Path(r.source).name, r.class_name) for r in rows] == [("light.png", "bright-v1"), ("dark.jpg", "dark-v1")]
    assert rows[0].probability == pytest.approx(230 / 255, abs=0.01)
    assert rows[1].probability == pytest.approx(1 - 20 / 255, abs=0.02)


@PROTOCOLS
def test_classify_and_regress_use_the_models_labels(server, protocol):
    with ServingClient(endpoint(server, protocol), protocol, MODEL) as client:
        results = client.classify([{"image": [204.0] * 16}, {"image": np.full(16, 51.0)}], signature_name="classify")
        values = client.regress([{"image": [102.0] * 16}], signature_name="regress")
    assert [[label for label, _ in row] for row in results] == [["dark-v2", "bright-v2"]] * 2
    np.testing.assert_allclose([[s for _, s in row] for row in results], [[0.2, 0.8], [0.8, 0.2]], rtol=1e-5)
    assert values == pytest.approx([0.4])


def _labelled_set() -> tuple[np.ndarray, np.ndarray, int]:
    levels = np.linspace(10, 245, 20)
    images = np.stack([gray(v)[0] for v in levels])
    labels = (levels > 127.5).astype(np.int64)
    flipped = [0, 5, 17]
    labels[flipped] = 1 - labels[flipped]
    return images, labels, 20 - len(flipped)


@PROTOCOLS
def test_evaluate_reports_known_accuracy(server, protocol):
    images, labels, expected_correct = _labelled_set()
    with ServingClient(endpoint(server, protocol), protocol, MODEL) as client:
        report = client.evaluate(images, labels, concurrency=4, batch_size=3)
        named = client.evaluate(images, np.where(labels == 1, "bright-v2", "dark-v2"), concurrency=2)
    assert (report.examples, report.correct, report.failed_requests) == (20, expected_correct, 0)
    assert report.accuracy == pytest.approx(0.85) and report.error_rate == pytest.approx(0.15)
    assert report.requests == 7 and len(report.latencies_ms) == 7
    assert 0 < report.latency_percentile(50) <= report.latency_percentile(99)
    assert report.throughput > 0
    assert named.correct == expected_correct and named.requests == 20


@PROTOCOLS
def test_unknown_model_and_version_give_tf_serving_errors(server, protocol):
    with ServingClient(endpoint(server, protocol), protocol, "nope") as client:
        with pytest.raises(ClientError, match=r"Could not find any versions of model nope") as info:
            client.status()
        assert info.value.code == "NOT_FOUND"
        with pytest.raises(ClientError, match=r"Servable not found for request: Latest\(nope\)") as info:
            client.predict(gray(1.0))
        assert info.value.code == "NOT_FOUND"
        if protocol == "rest":
            assert info.value.http_status == 404
    with ServingClient(endpoint(server, protocol), protocol, MODEL, version=9) as client:
        with pytest.raises(ClientError, match=r"Servable not found for request: Specific\(bright, 9\)"):
            client.metadata()


@PROTOCOLS
def test_bad_input_gives_the_servers_error_text(server, protocol):
    with ServingClient(endpoint(server, protocol), protocol, MODEL) as client:
        with pytest.raises(ClientError, match="failed with") as info:
            client.predict(np.zeros((1, 3, 3, 1), np.float32))
    assert info.value.code == "INVALID_ARGUMENT"


@PROTOCOLS
def test_closed_port_is_unavailable(protocol):
    port = free_port()
    with ServingClient(f"127.0.0.1:{port}", protocol, MODEL, timeout=5) as client:
        began = time.monotonic()
        with pytest.raises(ClientError, match=f"cannot reach the .* endpoint .*127.0.0.1:{port}") as info:
            client.status()
    assert info.value.code == "UNAVAILABLE"
    assert time.monotonic() - began < 5


@PROTOCOLS
def test_deadline_is_enforced_against_a_silent_server(protocol):
    # A socket that accepts connections (kernel backlog) but never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with ServingClient(f"127.0.0.1:{port}", protocol, MODEL, timeout=0.5) as client:
            began = time.monotonic()
            with pytest.raises(ClientError, match=r"deadline of 0.5 s exceeded") as info:
                client.status()
            elapsed = time.monotonic() - began
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert 0.4 < elapsed < 3.0


def test_wait_until_available(server):
    with ServingClient(endpoint(server, "grpc"), "grpc", MODEL, label="canary") as client:
        assert [(s.version, s.state) for s in client.wait_until_available(timeout=10)] == [(2, "AVAILABLE")]
    with ServingClient(f"127.0.0.1:{free_port()}", "rest", MODEL, timeout=0.2) as client:
        began = time.monotonic()
        with pytest.raises(ClientError, match=r"was not AVAILABLE within 0.5 s: cannot reach") as info:
            client.wait_until_available(timeout=0.5)
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert time.monotonic() - began < 3


@PROTOCOLS
def test_messages_larger_than_grpcs_4mib_default(protocol, serve, bytes_model_dir):
    # gRPC clients refuse answers over 4 MiB unless told otherwise (TF Serving issue 1382); the
    # echo model answers with its input, so this goes over the limit in both directions.
    payload = np.random.default_rng(0).integers(0, 256, 6 * 2**20, dtype=np.uint8).tobytes()
    with serve(bytes_model_dir, model_name="bytes_model") as bytes_server:
        with ServingClient(endpoint(bytes_server, protocol), protocol, "bytes_model") as client:
            array = np.empty(1, dtype=object)
            array[0] = payload
            outputs = client.predict({"image_bytes": array})
        if protocol == "grpc":  # the option is what makes it work: gRPC's own limit refuses it
            small = ServingClient(endpoint(bytes_server, protocol), protocol, "bytes_model",
                                  max_message_bytes=4 * 2**20)
            with small, pytest.raises(ClientError, match="RESOURCE_EXHAUSTED") as info:
                small.predict({"image_bytes": array})
            assert info.value.code == "RESOURCE_EXHAUSTED"
    assert outputs["echo_bytes"].tolist() == [payload]
    assert outputs["length"].tolist() == [len(payload)]


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_predict_status_metadata_and_evaluate(server, tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.full((8, 8), 240, np.uint8)).save(tmp_path / "x.png")
    grpc = ["--endpoint", endpoint(server, "grpc"), "--protocol", "grpc", "--model", MODEL]
    rest = ["--endpoint", endpoint(server, "rest"), "--model", MODEL]
    assert cli_main(["predict", *rest, "--label", "stable", str(tmp_path / "x.png")]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'x.png'}: bright-v1 (class 1, p=0.94" in out
    assert "top class ids [1: 0.94" in out
    assert cli_main(["status", *grpc]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == ["version 1: AVAILABLE", "version 2: AVAILABLE"]
    assert cli_main(["metadata", *rest, "--version", "1"]) == 0
    out = capsys.readouterr().out
    assert "signature serving_default (tensorflow/serving/predict)" in out
    assert "input  image: DT_FLOAT [-1, 4, 4, 1]" in out
    images, labels, _ = _labelled_set()
    np.savez(tmp_path / "set.npz", images=images, labels=labels)
    assert cli_main(["evaluate", *grpc, "--data", str(tmp_path / "set.npz"), "--concurrency", "3"]) == 0
    out = capsys.readouterr().out
    assert "20 examples, 20 requests of 1 row(s), 3 concurrent" in out
    assert "accuracy 0.8500  inference error rate 15.00%  failed requests 0" in out
    assert "latency ms p50 " in out and "examples/s" in out


def test_cli_errors_are_one_line_and_nonzero(server, capsys):
    code = cli_main(["status", "--endpoint", endpoint(server, "rest"), "--model", "nope"])
    err = capsys.readouterr().err
    assert code != 0
    assert err == f"error: GET http://{endpoint(server, 'rest')}/v1/models/nope failed with HTTP 404: " \
                  "Could not find any versions of model nope\n"
    port = free_port()
    completed = subprocess.run(
        [sys.executable, "-m", "serving.client", "status", "--endpoint", f"127.0.0.1:{port}", "--model", MODEL],
        capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode != 0
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach the REST endpoint http://127.0.0.1:{port}")
