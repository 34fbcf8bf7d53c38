"""Per-epoch training history from the TensorBoard event files under a Trainer's ModelRun directory.

Keras' TensorBoard callback (the built-in Trainer's, and the one TFX tutorial modules log to
`fn_args.model_run_dir`) writes `epoch_<metric>` scalars to `<dir>/train` and `<dir>/validation`;
they become series such as `train loss` and `validation accuracy`. Other layouts keep their
directory and tag names.
"""

from __future__ import annotations

import logging
import os
from typing import Iterable, Optional

from pipeline.report.model import TrainingHistory

logger = logging.getLogger(__name__)

_EPOCH_PREFIX = "epoch_"


def event_files(log_dir: str) -> list[str]:
    """Every `events.out.tfevents.*` file below `log_dir`, sorted."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(log_dir):
        return []
    return sorted(
        os.path.join(root, name)
        for root, _, names in tf.io.gfile.walk(log_dir)
        for name in names
        if name.startswith("events.out.tfevents")
    )


def scalars(path: str) -> Iterable[tuple[str, int, float]]:
    """(tag, step, value) of every scalar summary in one event file."""
    import tensorflow as tf

    for record in tf.data.TFRecordDataset(path):
        event = tf.compat.v1.Event.FromString(record.numpy())
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                yield value.tag, int(event.step), float(value.simple_value)
            elif kind == "tensor" and not value.tensor.tensor_shape.dim:
                array = tf.make_ndarray(value.tensor)
                if array.dtype.kind in "fiu":
                    yield value.tag, int(event.step), float(array)


def series_name(run: str, tag: str) -> str:
    """`train`, `epoch_loss` -> `train loss`; a root-level tag keeps its own name."""
    metric = tag[len(_EPOCH_PREFIX):] if tag.startswith(_EPOCH_PREFIX) else tag
    return f"{run} {metric}".strip()


def read_history(log_dir: str) -> Optional[TrainingHistory]:
    """The scalars per epoch below `log_dir` (epochs count from 1), or None when there are none.

    When `epoch_*` tags exist only they are kept (batch-level and evaluation-vs-iteration
    scalars are not epochs); the last value written for an epoch wins (a resumed run).
    """
    found: dict[str, dict[int, float]] = {}
    for path in event_files(log_dir):
        run = os.path.relpath(os.path.dirname(path), log_dir)
        run = "" if run == "." else run.replace(os.sep, "/")
        try:
            for tag, step, value in scalars(path):
                found.setdefault(f"{run}\0{tag}", {})[step] = value
        except Exception as exc:  # a truncated file of a crashed run: keep what was read  # noqa: BLE001 - a report part that cannot be read is named as missing, not fatal
            logger.warning("could not read all of %s: %s", path, exc)
    if not found:
        return None
    if any(key.split("\0", 1)[1].startswith(_EPOCH_PREFIX) for key in found):
        found = {key: steps for key, steps in found.items() if key.split("\0", 1)[1].startswith(_EPOCH_PREFIX)}
    series = {
        series_name(*key.split("\0", 1)): [(step + 1, value) for step, value in sorted(steps.items())]
        for key, steps in sorted(found.items())
    }
    return TrainingHistory(series=series, source=log_dir)
