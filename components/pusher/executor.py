"""LayoutPusher executor: the stock Pusher's blessing checks, publishing through serving.layout."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from typing import Any, Iterator

from tfx import types
from tfx.components.pusher import executor as stock_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, json_utils, path_utils

from components.pusher import spec
from serving import layout

logger = logging.getLogger(__name__)


def read_destination(exec_properties: dict[str, Any]) -> tuple[str, str]:
    """(serving_dir, model_name) from the custom_config; ValueError naming what is missing."""
    raw = exec_properties.get(spec.CUSTOM_CONFIG_KEY)
    config = json_utils.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    serving_dir = config.get(spec.SERVING_DIR_CONFIG) if isinstance(config, dict) else None
    model_name = config.get(spec.MODEL_NAME_CONFIG) if isinstance(config, dict) else None
    if not serving_dir or not model_name:
        raise ValueError(
            f"Pusher custom_config must name {spec.SERVING_DIR_CONFIG!r} and {spec.MODEL_NAME_CONFIG!r}, got {config!r}"
        )
    layout.check_model_name(model_name)
    return serving_dir, model_name


def warmed_up_model_path(input_dict: dict[str, list[types.Artifact]]) -> str | None:
    """The InfraValidator's copy of the model with warmup requests, when it made one."""
    blessings = input_dict.get(spec.INFRA_BLESSING_KEY)
    if not blessings:
        return None
    blessing = artifact_utils.get_single_instance(blessings)
    if blessing.has_custom_property(spec.HAS_MODEL_PROPERTY) and blessing.get_int_custom_property(spec.HAS_MODEL_PROPERTY):
        return path_utils.stamped_model_path(blessing.uri)
    return None


@contextlib.contextmanager
def local_model_copy(model_path: str) -> Iterator[str]:
    """`model_path` itself when local; else a local copy (a gs:// pipeline root on Kubeflow).

    The serving directory must be a local or mounted path (e.g. the serving PVC), because the
    atomic publish renames a complete copy into place.
    """
    if os.path.isdir(model_path):
        yield model_path
        return
    with tempfile.TemporaryDirectory(prefix="pusher-") as scratch:
        local = os.path.join(scratch, "model")
        io_utils.copy_dir(model_path, local)
        yield local


class Executor(stock_executor.Executor):
    """Pushes only a blessed model (and infra-blessed when InfraValidator runs) as the next version."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        serving_dir, model_name = read_destination(exec_properties)
        if not input_dict.get(spec.MODEL_BLESSING_KEY):
            raise ValueError("LayoutPusher needs a model_blessing input: it never pushes an unevaluated model")
        model_push = artifact_utils.get_single_instance(output_dict[spec.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            logger.info("model not blessed: nothing pushed to %s/%s", serving_dir, model_name)
            return
        # The stock Pusher pushes the warmed-up copy only without a `model` input; prefer it always,
        # so TF Serving replays the InfraValidator's requests before a version takes traffic.
        model_path = warmed_up_model_path(input_dict) or self.GetModelPath(input_dict)
        with local_model_copy(model_path) as local_path:
            published = layout.publish(local_path, serving_dir, model_name)
        # Archive copy inside the pipeline root, as the stock Pusher keeps one.
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=published.path, pushed_version=str(published.version))
        logger.info("pushed version %d to %s", published.version, published.path)
