"""The CLI's progress: epoch formatting, the live line on a terminal, quiet otherwise, epoch records routed."""

from __future__ import annotations

import io
import logging

import pytest

from components.trainer.progress import EPOCH_RECORD_ATTR, EpochProgress
from pipeline import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _epoch(epoch: int = 3, epochs: int = 20, seconds: float = 6.0) -> EpochProgress:
    return EpochProgress(epoch, epochs, seconds, {"loss": 0.41234, "accuracy": 0.881, "val_loss": 0.5, "val_accuracy": 0.9021})


def test_epoch_line_has_k_of_n_metrics_and_time_left() -> None:
    # 6 s for 3 epochs: 2 s each, 17 to go.
    assert progress.format_epoch(_epoch()) == (
        "epoch 3/20: loss 0.4123, accuracy 0.8810, val_loss 0.5000, val_accuracy 0.9021, up to 34 s left"
    )
    assert progress.format_epoch(_epoch(epoch=20, seconds=40.0)).endswith("val_accuracy 0.9021")
    unknown_total = EpochProgress(2, None, 3.0, {"loss": 1.0, "sparse_categorical_accuracy": 0.5})
    assert progress.format_epoch(unknown_total) == "epoch 2: loss 1.0000, sparse_categorical_accuracy 0.5000"


def test_status_names_the_running_step_and_the_epoch() -> None:
    tracker = progress.ProgressTracker(emit=lambda line: None, total=9)
    tracker.observe("node ExampleGen is running.")
    tracker.observe("node ExampleGen is finished.")
    tracker.observe("node StatisticsGen is running.")
    assert tracker.status().startswith("[2/9] StatisticsGen 0 s: computing data statistics (TFDV)")
    tracker.observe("node StatisticsGen is finished.")
    tracker.observe("node Trainer is running.")
    assert tracker.status().endswith("Trainer 0 s: training")
    tracker.observe_epoch(_epoch())
    assert tracker.status() == "[3/9] Trainer 0 s: " + progress.format_epoch(_epoch())
    tracker.observe("node Trainer is finished.")
    assert tracker.status() == ""


def test_live_line_on_a_terminal_is_cleared_before_each_finished_line() -> None:
    stream = Terminal()
    lines: list[str] = []
    tracker = progress.ProgressTracker(emit=lambda line: (lines.append(line), stream.write(line + "\n")), total=2)
    with progress.live(tracker, stream):
        tracker.observe("node Trainer is running.")
        tracker.observe_epoch(_epoch(epoch=1, epochs=2, seconds=1.0))
        tracker.observe("node Trainer is finished.")
    text = stream.getvalue()
    assert "\r\x1b[K[1/2] Trainer 0 s: epoch 1/2: loss 0.4123" in text
    # The live line is erased before the component's line, and nothing is left on the line at the end.
    assert "\r\x1b[K[1/2] Trainer" in text.split("\n")[0] and text.split("\n")[0].endswith(lines[0])
    assert text.endswith(lines[0] + "\n") and tracker.live is None


@pytest.mark.parametrize("stream, show", [(io.StringIO(), True), (Terminal(), False)])
def test_quiet_when_not_a_terminal_or_not_shown(stream: io.StringIO, show: bool) -> None:
    tracker = progress.ProgressTracker(emit=lambda line: stream.write(line + "\n"), total=1)
    with progress.live(tracker, stream, show=show):
        tracker.observe("node Trainer is running.")
        tracker.observe_epoch(_epoch())
        tracker.observe("node Trainer is finished.")
    assert "\x1b" not in stream.getvalue() and stream.getvalue().count("\n") == 1
    assert stream.getvalue().startswith("[1/1] Trainer")


def test_epoch_records_reach_the_tracker_and_are_hidden_unless_verbose() -> None:
    shown: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    record = logging.LogRecord("components.trainer.progress", logging.INFO, __file__, 1, "training epoch 3/20", None, None)
    setattr(record, EPOCH_RECORD_ATTR, _epoch())
    for verbose, expected in ((False, []), (True, ["training epoch 3/20"])):
        shown.clear()
        tracker = progress.ProgressTracker(emit=lambda line: None)
        progress.ProgressHandler(tracker, verbose=verbose, passthrough=Collect()).handle(record)
        assert tracker.epoch == _epoch() and shown == expected
