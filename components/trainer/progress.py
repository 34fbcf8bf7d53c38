"""Per-epoch progress of Keras training as log records, from the built-in Trainer or injected into any module's fit().

Each finished epoch logs one INFO record on this module's logger with an `EpochProgress` in the
record attribute `EPOCH_RECORD_ATTR`, so any orchestrator's logs show the epochs and the CLI's
progress line can show "epoch k of N" without parsing text. Importing this module does not import
TensorFlow: the Keras callback class is built on first use.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

logger = logging.getLogger(__name__)

EPOCH_RECORD_ATTR = "epoch_progress"


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch: `epoch` counts from 1 up to `epochs` (the maximum; early stopping may end sooner)."""

    epoch: int
    epochs: Optional[int]
    seconds: float  # since training began
    metrics: Mapping[str, float] = field(default_factory=dict)  # Keras' logs: loss, accuracy, val_loss, ...

    @property
    def seconds_left(self) -> Optional[float]:
        """At the mean epoch time so far, until the maximum epoch (an upper bound with early stopping)."""
        if not self.epochs or self.epoch <= 0:
            return None
        return self.seconds / self.epoch * max(0, self.epochs - self.epoch)

    def describe(self) -> str:
        head = f"epoch {self.epoch}/{self.epochs}" if self.epochs else f"epoch {self.epoch}"
        values = " ".join(f"{name} {value:.4f}" for name, value in self.metrics.items())
        return f"{head} {values}".strip()


def _as_float(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=None)
def callback_class() -> type:
    """The Keras (tf_keras) callback class, built once on first use."""
    import tf_keras as keras

    class EpochProgressLogger(keras.callbacks.Callback):
        """Logs an EpochProgress record at the end of every epoch; never interferes with training."""

        def __init__(self) -> None:
            super().__init__()
            self._started = time.monotonic()

        def on_train_begin(self, logs=None) -> None:
            self._started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None) -> None:
            try:
                metrics = {k: v for k, v in ((k, _as_float(v)) for k, v in (logs or {}).items()) if v is not None}
                epochs = (self.params or {}).get("epochs")
                progress = EpochProgress(epoch + 1, int(epochs) if epochs else None, time.monotonic() - self._started, metrics)
                logger.info("training %s", progress.describe(), extra={EPOCH_RECORD_ATTR: progress})
            except Exception:  # progress is informational: a failure here must not stop training
                logger.debug("could not report epoch progress", exc_info=True)

    return EpochProgressLogger


def epoch_callback() -> Any:  # a tf_keras Callback
    """A fresh callback for `model.fit(callbacks=[...])`."""
    return callback_class()()


@contextlib.contextmanager
def injected_into_keras_fit() -> Iterator[None]:
    """Within the block, every tf_keras `fit()` also gets the progress callback, unless it already has one.

    For Trainer modules this project did not write (they need not change): tf_keras builds each
    fit's CallbackList and adds its default callbacks (History, progress bar) in
    `CallbackList._add_default_callbacks`; ours is added there too and removed on exit.
    """
    try:
        from tf_keras.src import callbacks as keras_callbacks
    except ImportError:  # no tf_keras: nothing to inject into
        yield
        return
    original = keras_callbacks.CallbackList._add_default_callbacks  # noqa: SLF001 - tf_keras has no public hook for default callbacks

    def add_default_callbacks(self, add_history, add_progbar):
        original(self, add_history, add_progbar)
        try:
            cls = callback_class()
            if add_history and not any(isinstance(cb, cls) for cb in self.callbacks):
                self.callbacks.append(cls())
        except Exception:  # never break the user's fit() for a progress line
            logger.debug("could not add the progress callback", exc_info=True)

    keras_callbacks.CallbackList._add_default_callbacks = add_default_callbacks  # noqa: SLF001 - tf_keras has no public hook for default callbacks
    try:
        yield
    finally:
        keras_callbacks.CallbackList._add_default_callbacks = original  # noqa: SLF001 - tf_keras has no public hook for default callbacks
