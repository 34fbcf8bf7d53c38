"""Training history from the TensorBoard logs a Keras module writes (as TFX tutorial modules do)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from pipeline.report import history  # noqa: E402


def test_keras_tensorboard_logs_become_epoch_series(tmp_path: Path) -> None:
    import numpy as np
    import tf_keras as keras

    model = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    x = np.random.default_rng(1).normal(size=(40, 3)).astype("float32")
    y = (x[:, 1] > 0).astype("int64")
    # The TFX penguin tutorial's callback: batch-level scalars and the graph too.
    board = keras.callbacks.TensorBoard(log_dir=str(tmp_path), update_freq="batch")
    fitted = model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=8, verbose=0, callbacks=[board])

    result = history.read_history(str(tmp_path))
    assert result is not None and result.source == str(tmp_path)
    assert set(result.series) == {"train loss", "validation loss", "train sparse_categorical_accuracy",
                                  "validation sparse_categorical_accuracy"}
    for name, key in (("train loss", "loss"), ("validation loss", "val_loss"),
                      ("validation sparse_categorical_accuracy", "val_sparse_categorical_accuracy")):
        assert [epoch for epoch, _ in result.series[name]] == [1, 2, 3]
        assert [value for _, value in result.series[name]] == pytest.approx(fitted.history[key], rel=1e-5)
    assert result.epochs == 3


def test_no_event_files_is_no_history(tmp_path: Path) -> None:
    (tmp_path / "best_weights").mkdir()
    (tmp_path / "best_weights" / "checkpoint").write_text("not an event file")
    assert history.read_history(str(tmp_path)) is None
    assert history.read_history(str(tmp_path / "missing")) is None


def test_series_names() -> None:
    assert history.series_name("train", "epoch_loss") == "train loss"
    assert history.series_name("", "my_metric") == "my_metric"
