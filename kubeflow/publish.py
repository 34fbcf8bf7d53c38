"""Publish a SavedModel from any URI TensorFlow reads into the serving volume, as the next version.

This is how new versions reach the models volume on Kubernetes: a Job that mounts the volume
(kubeflow/manifests/jobs/publish-model.yaml) runs `python -m kubeflow publish --source URI`.
The model is downloaded when remote (gs://, or any scheme TensorFlow's file system has), then
handed to `serving.push.push_model`, which loads it in a model server first and publishes it
with `serving.layout.publish` (write aside, then rename), so a polling server never sees a
half-written or unloadable version. Remote access and validation are the only additions here.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import tensorflow as tf

from serving import layout
from serving.push import PushError, PushResult, push_model

logger = logging.getLogger(__name__)

# Where TFX's Trainer puts the SavedModel inside its `model` artifact.
TRAINER_SERVING_SUBDIR = "Format-Serving"


class PublishError(ValueError):
    """A source that is not a SavedModel, or a destination that cannot take it."""


def resolve_saved_model(source: str) -> str:
    """`source` when it holds saved_model.pb, else its Format-Serving child (a Trainer artifact)."""
    source = source.rstrip("/")
    for candidate in (source, f"{source}/{TRAINER_SERVING_SUBDIR}"):
        if tf.io.gfile.exists(f"{candidate}/saved_model.pb"):
            return candidate
    raise PublishError(
        f"{source} holds no SavedModel: expected saved_model.pb in it or in {TRAINER_SERVING_SUBDIR}/ "
        "(pass the Pusher's pushed_model or the Trainer's model artifact URI)"
    )


def _download(source: str, destination: Path) -> None:
    for directory, _, files in tf.io.gfile.walk(source):
        relative = directory[len(source):].strip("/")
        target = destination / relative
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            tf.io.gfile.copy(f"{directory.rstrip('/')}/{name}", str(target / name), overwrite=True)


def publish_from(
    source: str,
    serving_dir: str | Path,
    model_name: str,
    *,
    max_loading_seconds: float = 120.0,
) -> PushResult:
    """Validates the SavedModel at `source` and publishes it as `<serving_dir>/<model_name>/<next>/`."""
    layout.check_model_name(model_name)
    if not Path(serving_dir).is_dir():
        raise PublishError(f"serving dir {serving_dir} does not exist: expected the mounted models volume")
    model = resolve_saved_model(source)
    if "://" not in model:
        return push_model(model, serving_dir, model_name, max_loading_seconds=max_loading_seconds)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        local = Path(tmp) / "model"
        logger.info("downloading %s", model)
        _download(model, local)
        return push_model(local, serving_dir, model_name, max_loading_seconds=max_loading_seconds)


__all__ = ["PublishError", "PushError", "publish_from", "resolve_saved_model"]
