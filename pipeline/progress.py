"""Progress lines for the CLI from the orchestrators' own log records, and quieting the rest.

BeamDagRunner logs `node <id> is running.` / `node <id> is finished.`, LocalDagRunner
`Component <id> is running.` / `... is finished.`, and the launcher `A cached execution <n> is
used.` in between. A logging handler turns those into one line per component with its time.
On a terminal a live line below them says what the running step does, and for the Trainer
which epoch it is in (from `components.trainer.progress` records), with the time left.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, TextIO

from components.trainer.progress import EPOCH_RECORD_ATTR, EpochProgress, injected_into_keras_fit
from pipeline import configs

_START = re.compile(r"^(?:node|Component) (?P<node>\S+) is running\.$")
_END = re.compile(r"^(?:node|Component) (?P<node>\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")

# What each long step is doing, for the live line.
STEP_DESCRIPTIONS = {
    configs.EXAMPLE_GEN_ID: "reading the data into train/eval examples",
    configs.STATISTICS_GEN_ID: "computing data statistics (TFDV)",
    configs.SCHEMA_GEN_ID: "inferring the schema",
    configs.EXAMPLE_VALIDATOR_ID: "checking the data against the schema",
    configs.TRAINER_ID: "training",
    configs.RESOLVER_ID: "looking up the latest blessed model",
    configs.EVALUATOR_ID: "evaluating on the eval split (TFMA) against the thresholds and the baseline",
    configs.INFRA_VALIDATOR_ID: "loading the model in a model server and sending requests",
    configs.PUSHER_ID: "publishing the next version",
}
_LIVE_REFRESH_SECONDS = 1.0


def format_epoch(progress: EpochProgress) -> str:
    """`epoch 3/20: loss 0.4120, accuracy 0.8810, val_accuracy 0.9020, up to 14 s left` (early stopping may end sooner)."""
    metrics = progress.metrics
    train_acc = next((k for k in metrics if "acc" in k and not k.startswith("val_")), None)
    val_acc = next((k for k in metrics if "acc" in k and k.startswith("val_")), None)
    shown = [k for k in ("loss", train_acc, "val_loss", val_acc) if k and k in metrics]
    head = f"epoch {progress.epoch}/{progress.epochs}" if progress.epochs else f"epoch {progress.epoch}"
    text = head + (": " + ", ".join(f"{k} {metrics[k]:.4f}" for k in shown) if shown else "")
    left = progress.seconds_left
    if left is not None and progress.epoch < (progress.epochs or 0):
        text += f", up to {left:.0f} s left"
    return text


@dataclass
class LiveLine:
    """One terminal line rewritten in place (carriage return and erase-line)."""

    stream: TextIO
    width: int = 120
    shown: bool = False

    def show(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + text[: self.width])
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


@dataclass
class NodeProgress:
    node_id: str
    started: float
    finished: Optional[float] = None
    cached: bool = False

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started


@dataclass
class ProgressTracker:
    """Follows node start/finish records; `emit` receives one line per finished component."""

    emit: Callable[[str], None]
    total: int = 0
    nodes: dict[str, NodeProgress] = field(default_factory=dict)
    live: Optional[LiveLine] = None  # a terminal: show what is running, refreshed
    epoch: Optional[EpochProgress] = None  # the Trainer's latest finished epoch
    _current: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Log records and the ticker thread both write the terminal: one at a time.
    _output: threading.RLock = field(default_factory=threading.RLock)

    def observe(self, message: str) -> bool:
        """Feeds one log message; True when it was a progress record."""
        if match := _START.match(message):
            node = match["node"]
            with self._lock:
                self.nodes[node] = NodeProgress(node, time.monotonic())
            self._current.node = node
            return True
        if _CACHED.match(message):
            node = getattr(self._current, "node", None)
            if node in self.nodes:
                self.nodes[node].cached = True
            return True
        if match := _END.match(message):
            node = match["node"]
            with self._lock:
                progress = self.nodes.setdefault(node, NodeProgress(node, time.monotonic()))
                progress.finished = time.monotonic()
                done = sum(1 for p in self.nodes.values() if p.finished is not None)
            with self._output:
                if self.live is not None:
                    self.live.clear()
                self.emit(self.format_line(progress, done))
                self.refresh()
            return True
        return False

    def observe_epoch(self, progress: EpochProgress) -> None:
        self.epoch = progress
        self.refresh()

    def status(self) -> str:
        """What is running now, e.g. `[6/9] Trainer 12 s: epoch 3/20: loss 0.4120, ...`."""
        with self._lock:
            running = [p for p in self.nodes.values() if p.finished is None]
            done = sum(1 for p in self.nodes.values() if p.finished is not None)
        if not running:
            return ""
        parts = []
        for node in running:
            doing = STEP_DESCRIPTIONS.get(node.node_id, "running")
            if node.node_id == configs.TRAINER_ID and self.epoch is not None:
                doing = format_epoch(self.epoch)
            parts.append(f"{node.node_id} {node.seconds:.0f} s: {doing}")
        count = f"[{done + 1}/{self.total}]" if self.total else f"[{done + 1}]"
        return f"{count} " + "; ".join(parts)

    def refresh(self) -> None:
        with self._output:
            if self.live is not None:
                text = self.status()
                if text:
                    self.live.show(text)
                else:
                    self.live.clear()

    def format_line(self, progress: NodeProgress, done: int) -> str:
        count = f"[{done}/{self.total}]" if self.total else f"[{done}]"
        state = "cached" if progress.cached else "done"
        return f"{count} {progress.node_id:<32} {state:<6} {progress.seconds:6.1f} s"

    def running(self) -> list[str]:
        """Components started and not finished (the one that failed, after an error)."""
        return [p.node_id for p in self.nodes.values() if p.finished is None]


class ProgressHandler(logging.Handler):
    """Routes orchestrator records to the tracker; in quiet mode drops everything else below ERROR
    that does not come from this project's own loggers."""

    def __init__(self, tracker: ProgressTracker, *, verbose: bool, passthrough: logging.Handler) -> None:
        super().__init__(level=logging.DEBUG)
        self.tracker = tracker
        self.verbose = verbose
        self.passthrough = passthrough

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record from a third-party logger
            return
        epoch = getattr(record, EPOCH_RECORD_ATTR, None)
        if isinstance(epoch, EpochProgress):
            self.tracker.observe_epoch(epoch)
            if not self.verbose:
                return
        if self.tracker.observe(message) and not self.verbose:
            return
        if self.verbose or (record.levelno >= logging.WARNING and record.name.split(".")[0] in ("pipeline", "components", "serving")):
            self.passthrough.handle(record)


def install(tracker: ProgressTracker, *, verbose: bool, stream=None) -> ProgressHandler:
    """Replaces the root handlers with a ProgressHandler; absl INFO records are let through to it."""
    passthrough = logging.StreamHandler(stream)
    passthrough.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler = ProgressHandler(tracker, verbose=verbose, passthrough=passthrough)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    # TensorFlow gives its logger a stream handler of its own when imported before this ran.
    tf_logger = logging.getLogger("tensorflow")
    for existing in list(tf_logger.handlers):
        tf_logger.removeHandler(existing)
    tf_logger.propagate = True
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Beam executors parse absl flags, which re-applies absl's verbosity; pin it to INFO so the
    # orchestrators' records reach the handler (which drops them in quiet mode).
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("absl").setLevel(logging.INFO)
    return handler


@contextlib.contextmanager
def live(tracker: ProgressTracker, stream: TextIO, *, show: bool = True) -> Iterator[None]:
    """While the pipeline runs: epoch records from any Keras fit(), and on a terminal a live status line.

    Quiet when `stream` is not a terminal (or `show` is off, e.g. with logs shown): only the
    per-component lines are printed.
    """
    stop = threading.Event()
    ticker = None
    if show and stream.isatty():
        tracker.live = LiveLine(stream)

        def tick() -> None:
            while not stop.wait(_LIVE_REFRESH_SECONDS):
                tracker.refresh()

        ticker = threading.Thread(target=tick, name="progress-line", daemon=True)
        ticker.start()
    try:
        with injected_into_keras_fit():
            yield
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
        if tracker.live is not None:
            tracker.live.clear()
            tracker.live = None
