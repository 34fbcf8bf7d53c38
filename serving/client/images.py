"""Images for a classifier: PNG/JPEG files as pixels resized to a signature's input, or as bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from serving.client.types import ClientError, ModelMetadata, SignatureSpec, describe_specs
from serving.images import ImageError, check_encoded_image, decode_image


def find_bytes_signature(metadata: ModelMetadata) -> tuple[str, str] | None:
    """(signature, input) of a signature taking encoded image bytes, if the model has one."""
    for sig in metadata.signatures.values():
        for name, spec in sig.inputs.items():
            if name == "image_bytes" and spec.dtype == "DT_STRING" and len(sig.inputs) == 1:
                return sig.name, name
    return None


def image_input(signature: SignatureSpec) -> tuple[str, int, int, int]:
    """(input name, height, width, channels) of a signature taking one [N, H, W, C] image tensor."""
    if "image" in signature.inputs:
        spec = signature.inputs["image"]
    elif len(signature.inputs) == 1:
        (spec,) = signature.inputs.values()
    else:
        spec = None
    if spec is None or spec.shape is None or len(spec.shape) != 4:
        raise ClientError(
            f"signature {signature.name!r} does not take an [N, H, W, C] image tensor; its inputs "
            f"are {describe_specs(signature.inputs)}",
            code="INVALID_ARGUMENT",
        )
    _, height, width, channels = spec.shape
    if min(height, width, channels) <= 0:
        raise ClientError(
            f"input {spec.name!r} of signature {signature.name!r} has shape {list(spec.shape)}: the "
            "height, width and channels must be fixed to resize images for it",
            code="INVALID_ARGUMENT",
        )
    return spec.name, height, width, channels


def load_image(
    source: str | os.PathLike[str] | bytes, height: int, width: int, channels: int
) -> np.ndarray:
    """A PNG/JPEG file (or its bytes) -> float32 [H, W, C] raw pixels 0-255, resized to fit."""
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        return decode_image(data, height, width, channels, source_name(source))
    except OSError as err:
        raise ClientError(
            f"cannot read image {source_name(source)}: {err}; expected a PNG or JPEG file",
            code="INVALID_ARGUMENT",
        ) from err
    except ImageError as err:
        raise ClientError(str(err), code="INVALID_ARGUMENT") from err


def source_name(source: Any) -> str:
    return "<bytes>" if isinstance(source, bytes) else str(source)


def encoded_image(source: str | os.PathLike[str] | bytes) -> bytes:
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        return check_encoded_image(data, source_name(source))
    except OSError as err:
        message = f"cannot read image {source_name(source)}: {err}"
        raise ClientError(message, code="INVALID_ARGUMENT") from err
    except ImageError as err:
        raise ClientError(str(err), code="INVALID_ARGUMENT") from err
