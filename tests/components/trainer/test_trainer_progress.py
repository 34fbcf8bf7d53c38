"""Epoch progress records from a real tf_keras fit(): the built-in callback and the one injected into any module."""

from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from components.trainer import progress  # noqa: E402


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.epochs: list[progress.EpochProgress] = []

    def emit(self, record: logging.LogRecord) -> None:
        value = getattr(record, progress.EPOCH_RECORD_ATTR, None)
        if value is not None:
            self.epochs.append(value)


@pytest.fixture
def records():
    handler = Records()
    logger = logging.getLogger(progress.__name__)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _fit(epochs: int, callbacks=()) -> None:
    import numpy as np
    import tf_keras as keras

    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=8, verbose=0, callbacks=list(callbacks))
    model.evaluate(x, y, verbose=0)  # evaluate() gets the injected callback too; it must stay silent


def test_built_in_callback_reports_every_epoch(records: Records) -> None:
    _fit(3, [progress.epoch_callback()])
    assert [(e.epoch, e.epochs) for e in records.epochs] == [(1, 3), (2, 3), (3, 3)]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(records.epochs[-1].metrics)
    assert records.epochs[-1].seconds >= records.epochs[0].seconds > 0


def test_injected_into_a_module_that_did_not_ask(records: Records) -> None:
    from tf_keras.src import callbacks

    original = callbacks.CallbackList._add_default_callbacks
    with progress.injected_into_keras_fit():
        _fit(2)
    assert [(e.epoch, e.epochs) for e in records.epochs] == [(1, 2), (2, 2)]
    assert callbacks.CallbackList._add_default_callbacks is original
    records.epochs.clear()
    _fit(1)  # outside the block: nothing injected
    assert records.epochs == []


def test_not_doubled_when_the_module_has_the_callback(records: Records) -> None:
    with progress.injected_into_keras_fit():
        _fit(2, [progress.epoch_callback()])
    assert [e.epoch for e in records.epochs] == [1, 2]


def test_time_left_is_the_mean_epoch_time_times_the_epochs_to_go() -> None:
    assert progress.EpochProgress(4, 10, 8.0).seconds_left == pytest.approx(12.0)
    assert progress.EpochProgress(4, None, 8.0).seconds_left is None
    assert progress.EpochProgress(2, 10, 1.0, {"loss": 0.5}).describe() == "epoch 2/10 loss 0.5000"
