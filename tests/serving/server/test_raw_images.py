"""The opt-in `:classify_image` REST extension: real PNGs posted to a real server on loopback."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from serving.errors import Code, ServingError
from serving.server import raw_images
from serving.server.flags import build_parser
from serving.server.rest import parse_route

PIXEL_NAMES = ["left", "right"]
PIXEL_W = np.linspace(-1.0, 1.0, 32, dtype=np.float32).reshape(16, 2)
PIXEL_B = np.array([0.1, -0.1], np.float32)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _build_pixel_model(export_dir: Path) -> Path:
    """Only a raw-pixel signature: `image` float32 [None, 4, 4, 1] -> softmax(x/255 @ W + b); class
    names as the asset the project's exports carry."""
    import tensorflow as tf

    class Pixels(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 1], tf.float32, name="image")])
        def serve(self, image):
            flat = tf.reshape(image, [-1, 16]) / 255.0
            return {"probabilities": tf.nn.softmax(tf.matmul(flat, PIXEL_W) + PIXEL_B)}

    module = Pixels()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
    (export_dir / "assets").mkdir(exist_ok=True)
    (export_dir / "assets" / "class_names.txt").write_text("".join(f"{n}\n" for n in PIXEL_NAMES))
    return export_dir


@pytest.fixture(scope="module")
def image_server(tmp_path_factory, classifier_model: Path, half_plus_two_model: Path, serve):
    root = tmp_path_factory.mktemp("raw_images")
    models = {
        "classifier": lambda d: shutil.copytree(classifier_model, d),
        "pixels": _build_pixel_model,
        "half_plus_two": lambda d: shutil.copytree(half_plus_two_model, d),
    }
    entries = []
    for name, build in models.items():
        build(root / name / "1")
        entries.append(
            f'config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
        )
    config = root / "models.config"
    config.write_text("model_config_list { " + " ".join(entries) + " }")
    with serve(config_file=config, args=["--enable_raw_image_api"]) as server:
        yield server


def _classify(server, model: str, body: bytes, suffix: str = "", query: str = "") -> requests.Response:
    return requests.post(f"{server.rest_endpoint}/v1/models/{model}{suffix}:classify_image{query}", data=body, timeout=30)


def test_flag_is_off_by_default_and_the_url_is_then_malformed_as_in_tf_serving():
    assert build_parser().parse_args([]).enable_raw_image_api is False
    assert build_parser().parse_args(["--enable_raw_image_api"]).enable_raw_image_api is True
    with pytest.raises(ServingError) as caught:
        parse_route("POST", "/v1/models/m:classify_image")
    assert caught.value.code == Code.INVALID_ARGUMENT
    assert caught.value.message == "Malformed request: POST /v1/models/m:classify_image"
    route = parse_route("POST", "/v1/models/m/labels/stable:classify_image", image_api=True)
    assert (route.api, route.model, route.version, route.label) == ("classify_image", "m", None, "stable")
    assert parse_route("POST", "/v1/models/m:predict", image_api=True).api == "predict"


@pytest.mark.parametrize("query, want", [("", 5), ("top_k=2", 2), ("a=1&top_k=10", 10)])
def test_top_k_query(query: str, want: int):
    assert raw_images.top_k_from_query(query) == want


@pytest.mark.parametrize("query", ["top_k=0", "top_k=-1", "top_k=two", "top_k="])
def test_bad_top_k_names_what_was_expected(query: str):
    with pytest.raises(ServingError, match="expected a whole number of classes >= 1"):
        raw_images.top_k_from_query(query)


@pytest.mark.e2e
def test_image_bytes_signature_answers_top_classes_as_predict_does(image_server):
    pixels = (np.arange(64).reshape(8, 8) * 4 % 256).astype(np.uint8)
    png = _png(pixels)
    response = _classify(image_server, "classifier", png)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_spec"] == {"name": "classifier", "version": "1", "signature_name": "serving_image_bytes"}
    top = answer["top_k"]
    assert sorted(entry["class_name"] for entry in top) == ["bird", "cat", "dog"]  # K = 3 < the default 5
    assert [e["probability"] for e in top] == sorted((e["probability"] for e in top), reverse=True)
    # The same image through TF Serving's own predict API gives the same probabilities.
    predict = requests.post(
        f"{image_server.rest_endpoint}/v1/models/classifier:predict",
        json={"signature_name": "serving_image_bytes",
              "instances": [{"image_bytes": {"b64": base64.b64encode(png).decode()}}]},
        timeout=30,
    ).json()["predictions"][0]
    for entry in top:
        assert entry["probability"] == pytest.approx(predict["probabilities"][entry["class_id"]], rel=1e-6)
    assert top[0]["class_name"] == predict["class_name"]

    one = _classify(image_server, "classifier", png, "/versions/1", "?top_k=1").json()["top_k"]
    assert one == top[:1]


@pytest.mark.e2e
def test_raw_pixel_signature_is_fed_the_decoded_image(image_server):
    pixels = np.array([[0, 255, 10, 20], [30, 40, 50, 60], [70, 80, 90, 100], [200, 210, 220, 230]], np.uint8)
    response = _classify(image_server, "pixels", _png(pixels), query="?top_k=2")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_spec"]["signature_name"] == "serving_default"
    logits = pixels.reshape(1, 16).astype(np.float32) / 255.0 @ PIXEL_W + PIXEL_B
    want = np.exp(logits[0]) / np.exp(logits[0]).sum()
    got = {entry["class_name"]: entry["probability"] for entry in answer["top_k"]}
    assert got == pytest.approx(dict(zip(PIXEL_NAMES, want.tolist())), rel=1e-5)
    # A bigger image is resized to the signature's 4x4 in the server.
    big = _classify(image_server, "pixels", _png(np.full((16, 12), 128, np.uint8)))
    assert big.status_code == 200, big.text
    assert sum(e["probability"] for e in big.json()["top_k"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.e2e
@pytest.mark.parametrize(
    "model, body, status, message",
    [
        ("classifier", b'{"instances": [1]}', 400, "is not a PNG or JPEG image: expected the image file's bytes"),
        ("classifier", b"", 400, "(0 bytes, starting b'') is not a PNG or JPEG image"),
        ("pixels", b"\x89PNG\r\n\x1a\n" + b"garbage", 400, "cannot read image in the request body"),
        ("half_plus_two", "png", 400, "has no signature taking an image: expected one DT_STRING input 'image_bytes'"),
        ("nope", "png", 404, "Servable not found for request"),
    ],
)
def test_bad_requests_name_what_was_expected(image_server, model: str, body, status: int, message: str):
    body = _png(np.zeros((4, 4), np.uint8)) if body == "png" else body
    response = _classify(image_server, model, body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


@pytest.mark.e2e
def test_bad_top_k_over_http(image_server):
    response = _classify(image_server, "classifier", _png(np.zeros((8, 8), np.uint8)), query="?top_k=0")
    assert response.status_code == 400
    assert "top_k='0' in the query: expected a whole number" in response.json()["error"]
