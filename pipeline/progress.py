"""Progress lines for the CLI from the orchestrators' own log records, and quieting the rest.

BeamDagRunner logs `node <id> is running.` / `node <id> is finished.`, LocalDagRunner
`Component <id> is running.` / `... is finished.`, and the launcher `A cached execution <n> is
used.` in between. A logging handler turns those into one line per component with its time.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

_START = re.compile(r"^(?:node|Component) (?P<node>\S+) is running\.$")
_END = re.compile(r"^(?:node|Component) (?P<node>\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")


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
    _current: threading.local = field(default_factory=threading.local)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
            self.emit(self.format_line(progress, done))
            return True
        return False

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
