"""Publish a SavedModel from any URI TensorFlow can read into a serving volume, as the next version.

This is how new versions reach the models volume on Kubernetes: a Job mounting the volume
(kubeflow/manifests/jobs/publish-model.yaml) runs `python -m kubeflow publish --source URI`,
which downloads the model (gs://, s3:// with the right plugins, or a local path), then hands it
to `serving.layout.publish`, the same atomic write-aside-then-rename the Pusher uses, so a
polling server never sees a half-written version.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import tensorflow as tf

from serving import layout

logger = logging.getLogger(__name__)

# Where TFX's Trainer puts the SavedModel inside its `model` artifact.
TRAINER_SERVING_SUBDIR = "Format-Serving"


class PublishError(ValueError):
    """A source that is not a SavedModel, or a destination that cannot take it."""


def resolve_saved_model(source: str) -> str:
    """`source` itself when it holds saved_model.pb, or its Format-Serving child (a Trainer artifact)."""
    source = source.rstrip("/")
    for candidate in (source, f"{source}/{TRAINER_SERVING_SUBDIR}"):
        if tf.io.gfile.exists(f"{candidate}/saved_model.pb") or tf.io.gfile.exists(f"{candidate}/saved_model.pbtxt"):
            return candidate
    raise PublishError(
        f"{source} holds no SavedModel: expected saved_model.pb in it or in {TRAINER_SERVING_SUBDIR}/ "
        "(pass the Pusher's pushed_model or the Trainer's model artifact URI)"
    )


def _download(source: str, destination: Path) -> None:
    for directory, _, files in tf.io.gfile.walk(source):
        relative = directory[len(source):].lstrip("/")
        target = destination / relative
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            tf.io.gfile.copy(f"{directory.rstrip('/')}/{name}", str(target / name), overwrite=True)


def publish_from(source: str, serving_dir: str | Path, model_name: str) -> layout.Published:
    """Copies the SavedModel at `source` into `<serving_dir>/<model_name>/<next version>/`."""
    layout.check_model_name(model_name)
    if not Path(serving_dir).is_dir():
        raise PublishError(f"serving dir {serving_dir} does not exist: expected the mounted models volume")
    model = resolve_saved_model(source)
    if "://" not in model:
        return layout.publish(model, serving_dir, model_name)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        local = Path(tmp) / "model"
        logger.info("downloading %s", model)
        _download(model, local)
        return layout.publish(local, serving_dir, model_name)
