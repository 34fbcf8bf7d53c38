"""Server-side dynamic batching, parameterised like TF Serving's batching_parameters_file.

Concurrent requests to the same signature of the same servable, whose inputs agree on dtype
and on every dimension but the first, are concatenated along dimension 0 into one signature
call of at most `max_batch_size` rows, and the outputs are split back. A batch is formed as
soon as a batch thread is free: it takes what is queued, waiting at most `batch_timeout_micros`
after the oldest task for more. With all `num_batch_threads` busy, tasks queue up (and so form
bigger batches) until `max_enqueued_batches * max_batch_size` rows are waiting; beyond that a
request gets RESOURCE_EXHAUSTED (HTTP 429), as in TF Serving.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from serving.protocol import Code, ServingError
from serving.servable import Servable, Signature

logger = logging.getLogger(__name__)

_IDLE_EXIT_SECONDS = 30.0


@dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's BatchingParameters with its defaults (session_bundle_config.proto)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = os.cpu_count() or 1
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_proto(cls, params) -> "BatchingOptions":
        """From a `BatchingParameters` message (see serving.config_protos)."""
        defaults = cls()

        def wrapped(field: str, default: int) -> int:
            return getattr(params, field).value if params.HasField(field) else default

        options = cls(
            max_batch_size=wrapped("max_batch_size", defaults.max_batch_size),
            batch_timeout_micros=wrapped("batch_timeout_micros", defaults.batch_timeout_micros),
            max_enqueued_batches=wrapped("max_enqueued_batches", defaults.max_enqueued_batches),
            num_batch_threads=wrapped("num_batch_threads", defaults.num_batch_threads),
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            pad_variable_length_inputs=params.pad_variable_length_inputs,
        )
        options.validate()
        return options

    def validate(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.num_batch_threads < 1:
            raise ValueError(f"num_batch_threads must be >= 1, got {self.num_batch_threads}")
        if self.max_enqueued_batches < 1:
            raise ValueError(f"max_enqueued_batches must be >= 1, got {self.max_enqueued_batches}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")
        sizes = self.allowed_batch_sizes
        if sizes:
            if list(sizes) != sorted(set(sizes)) or sizes[0] < 1:
                raise ValueError(f"allowed_batch_sizes must be increasing positive sizes, got {list(sizes)}")
            if sizes[-1] != self.max_batch_size:
                raise ValueError(
                    f"the last entry of allowed_batch_sizes ({sizes[-1]}) must equal max_batch_size "
                    f"({self.max_batch_size})"
                )


class _Task:
    __slots__ = ("inputs", "size", "future", "enqueued")

    def __init__(self, inputs: Mapping[str, np.ndarray], size: int) -> None:
        self.inputs = inputs
        self.size = size
        self.future: Future = Future()
        self.enqueued = time.monotonic()


class _Queue:
    """Tasks for one (servable, signature, input layout) and the thread that forms batches."""

    def __init__(self, batcher: "DynamicBatcher", key: tuple, servable: Servable, signature: Signature, output_filter: tuple[str, ...]) -> None:
        self.batcher = batcher
        self.key = key
        self.servable = servable
        self.signature = signature
        self.output_filter = output_filter
        self.tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self.pending_rows = 0
        self.carry: _Task | None = None
        self.thread = threading.Thread(target=self._loop, name="batch-scheduler", daemon=True)

    def _loop(self) -> None:
        options = self.batcher.options
        timeout = options.batch_timeout_micros / 1e6
        while True:
            first = self.carry
            self.carry = None
            if first is None:
                try:
                    first = self.tasks.get(timeout=_IDLE_EXIT_SECONDS)
                except queue.Empty:
                    if self.batcher.retire(self):
                        return
                    continue
            # Wait for a free batch thread first: meanwhile more tasks queue up to join.
            self.batcher.slots.acquire()
            batch = [first]
            rows = first.size
            deadline = first.enqueued + timeout
            while rows < options.max_batch_size:
                remaining = deadline - time.monotonic()
                try:
                    task = self.tasks.get(timeout=remaining) if remaining > 0 else self.tasks.get_nowait()
                except queue.Empty:
                    break
                if rows + task.size > options.max_batch_size:
                    self.carry = task
                    break
                batch.append(task)
                rows += task.size
            with self.batcher.lock:
                self.pending_rows -= rows
            self.batcher.pool.submit(self._run, batch, rows)

    def _run(self, batch: list[_Task], rows: int) -> None:
        try:
            if len(batch) == 1 and not self.batcher.options.allowed_batch_sizes:
                self._finish_one(batch[0])
                return
            try:
                outputs = self._run_merged(batch, rows)
            except ServingError as error:
                if error.code != Code.INVALID_ARGUMENT:
                    raise
                # One bad request must not fail its neighbours: retry each on its own.
                for task in batch:
                    self._finish_one(task)
                return
            start = 0
            for task in batch:
                task.future.set_result({k: v[start : start + task.size] for k, v in outputs.items()})
                start += task.size
        except BaseException as error:  # noqa: BLE001 - delivered to every waiting request
            for task in batch:
                if not task.future.done():
                    task.future.set_exception(error)
        finally:
            self.batcher.slots.release()

    def _finish_one(self, task: _Task) -> None:
        try:
            task.future.set_result(self.servable.run(self.signature, task.inputs, self.output_filter))
        except BaseException as error:  # noqa: BLE001
            task.future.set_exception(error)

    def _run_merged(self, batch: list[_Task], rows: int) -> dict[str, np.ndarray]:
        padded = rows
        for size in self.batcher.options.allowed_batch_sizes:
            if size >= rows:
                padded = size
                break
        merged = {}
        for name in batch[0].inputs:
            parts = [task.inputs[name] for task in batch]
            if padded > rows:
                filler = parts[-1][-1:]
                parts.append(np.repeat(filler, padded - rows, axis=0))
            merged[name] = np.concatenate(parts, axis=0)
        outputs = self.servable.run(self.signature, merged, self.output_filter)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != padded:
                raise ServingError(
                    Code.INTERNAL,
                    f"Batched output {name} has shape {list(array.shape)}; expected the batch "
                    f"size {padded} as its first dimension (the signature is not batchable)",
                )
        return outputs


class DynamicBatcher:
    """A `core.Runner` that merges concurrent calls; call it like `servable.run`."""

    def __init__(self, options: BatchingOptions) -> None:
        options.validate()
        self.options = options
        self.lock = threading.Lock()
        self.slots = threading.BoundedSemaphore(options.num_batch_threads)
        self.pool = ThreadPoolExecutor(max_workers=options.num_batch_threads, thread_name_prefix="batch")
        self._queues: dict[tuple, _Queue] = {}

    def __call__(
        self,
        servable: Servable,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        future = self.submit(servable, signature, inputs, output_filter)
        if future is None:
            return servable.run(signature, inputs, output_filter)
        return future.result()

    def submit(
        self,
        servable: Servable,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> Future | None:
        """Queues a call; None when it cannot be batched (run it directly instead).

        Raises RESOURCE_EXHAUSTED when the queue is full."""
        size = _batch_size(inputs)
        if size is None or size > self.options.max_batch_size or size == 0:
            return None
        key = (
            id(servable),
            signature.name,
            output_filter,
            tuple((k, v.dtype.str, v.shape[1:]) for k, v in sorted(inputs.items())),
        )
        task = _Task(inputs, size)
        limit = self.options.max_enqueued_batches * self.options.max_batch_size
        with self.lock:
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = _Queue(self, key, servable, signature, output_filter)
                q.thread.start()
            if q.pending_rows + size > limit:
                raise ServingError(
                    Code.RESOURCE_EXHAUSTED,
                    "The batch scheduling queue to which this task was submitted is full",
                )
            q.pending_rows += size
            q.tasks.put(task)
        return task.future

    def retire(self, q: _Queue) -> bool:
        """Drops an idle queue (its servable may be gone); False if work arrived meanwhile."""
        with self.lock:
            if q.tasks.empty() and q.carry is None:
                self._queues.pop(q.key, None)
                return True
            return False

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int | None:
    """The shared first dimension of all inputs, or None when they cannot be batched."""
    size = None
    for array in inputs.values():
        if array.ndim == 0:
            return None
        if size is None:
            size = array.shape[0]
        elif array.shape[0] != size:
            return None
    return size
