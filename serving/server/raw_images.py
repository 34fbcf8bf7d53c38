"""The opt-in `:classify_image` REST extension: an image file as the request body, the top-k classes back.

    curl --data-binary @digit.png 'http://HOST:PORT/v1/models/NAME[/versions/V|/labels/L]:classify_image?top_k=3'

Off unless `--enable_raw_image_api`. TF Serving's REST grammar has only the verbs `:predict`,
`:classify` and `:regress` (and GET metadata/status); it answers any other verb with 400
"Malformed request", so `:classify_image` cannot collide with its API, and with the flag off this
server answers it exactly so. The image goes through the model's encoded-image signature when it
has one (one DT_STRING input `image_bytes`, as components/trainer/signatures.py exports
`serving_image_bytes`), else it is decoded and resized here (serving/images.py) to the
[N, H, W, C] input of a raw-pixel signature (`serving_default` first). The answer names each
class from the model's `assets/class_names.txt` (its index when the model has none):

    {"model_spec": {"name": ..., "version": "3", "signature_name": ...},
     "top_k": [{"class_id": 7, "class_name": "7", "probability": 0.93}, ...]}
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from serving.errors import invalid
from serving.images import ImageError, decode_image, is_encoded_image
from serving.saved_model import DEFAULT_SIGNATURE, DT_STRING, SCORE_OUTPUTS, read_class_names, score_output
from serving.server.core import ServingCore
from serving.server.servable import PredictCall, Servable, Signature

API = "classify_image"
DEFAULT_TOP_K = 5
BYTES_INPUT = "image_bytes"


def top_k_from_query(query: str) -> int:
    """`top_k` of a query string (default 5); INVALID_ARGUMENT unless a whole number >= 1."""
    values = parse_qs(query, keep_blank_values=True).get("top_k")
    if not values:
        return DEFAULT_TOP_K
    text = values[-1]
    if not text.isdigit() or int(text) < 1:
        raise invalid(f"top_k={text!r} in the query: expected a whole number of classes >= 1, e.g. ?top_k=3")
    return int(text)


def _bytes_signature(servable: Servable) -> Signature | None:
    for signature in sorted(servable.signatures.values(), key=lambda s: s.name != "serving_image_bytes"):
        spec = signature.input_specs.get(BYTES_INPUT)
        if spec is not None and spec.dtype == DT_STRING and len(signature.input_specs) == 1:
            return signature
    return None


def _pixel_input(signature: Signature) -> tuple[str, tuple[int, int, int]] | None:
    """(input, (H, W, C)) of a signature taking one numeric [N, H, W, C] tensor of fixed size."""
    if len(signature.input_specs) != 1:
        return None
    (name,) = signature.input_specs
    dims = signature.input_dims.get(name)
    if dims is None or len(dims) != 4 or min(dims[1:]) < 1 or signature.input_dtypes[name].kind not in "fiu":
        return None
    return name, (dims[1], dims[2], dims[3])


def _pixel_signature(servable: Servable) -> tuple[Signature, str, tuple[int, int, int]] | None:
    for signature in sorted(servable.signatures.values(), key=lambda s: s.name != DEFAULT_SIGNATURE):
        found = _pixel_input(signature)
        if found is not None:
            return signature, *found
    return None


def _probabilities(signature: Signature, outputs: dict[str, np.ndarray]) -> np.ndarray:
    name = score_output(outputs)
    if name is None or outputs[name].ndim != 2 or outputs[name].shape[0] != 1:
        raise invalid(
            f"signature {signature.name!r} has no [1, K] class-probability output (expected one named "
            f"{' or '.join(SCORE_OUTPUTS)}, or a single float [N, K] output); it gives {sorted(outputs)}"
        )
    return outputs[name][0]


@functools.lru_cache(maxsize=256)
def _class_names(version_dir: str) -> tuple[str, ...] | None:
    # A published version directory never changes (new versions get new directories).
    names = read_class_names(version_dir)
    return tuple(names) if names is not None else None


def classify_image(core: ServingCore, servable: Servable, body: bytes, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
    """The top-k classes of the PNG/JPEG `body` with their probabilities, as the JSON answer."""
    if not is_encoded_image(body):
        raise invalid(
            f"the request body ({len(body)} bytes, starting {body[:8]!r}) is not a PNG or JPEG image: expected "
            "the image file's bytes as the body, e.g. curl --data-binary @image.png URL"
        )
    signature = _bytes_signature(servable)
    if signature is not None:
        inputs = {BYTES_INPUT: np.array([body], dtype=object)}
    else:
        found = _pixel_signature(servable)
        if found is None:
            raise invalid(
                f"model {servable.name!r} version {servable.version} has no signature taking an image: expected "
                f"one DT_STRING input {BYTES_INPUT!r} or one [N, H, W, C] tensor of fixed size; its signatures "
                f"are {sorted(servable.signatures)}"
            )
        signature, name, (height, width, channels) = found
        try:
            pixels = decode_image(body, height, width, channels, "in the request body")
        except ImageError as error:
            raise invalid(str(error)) from None
        inputs = {name: pixels[None].astype(signature.input_dtypes[name])}
    probabilities = _probabilities(signature, core.predict(PredictCall(servable, signature, inputs)))
    names = _class_names(servable.path)
    if names is not None and len(names) != len(probabilities):
        names = None
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    return {
        "model_spec": {"name": servable.name, "version": str(servable.version), "signature_name": signature.name},
        "top_k": [
            {
                "class_id": int(index),
                "class_name": names[index] if names is not None else str(int(index)),
                "probability": float(probabilities[index]),
            }
            for index in order
        ],
    }
