"""Server-side dynamic batching, parameterised like TF Serving's batching_parameters_file.

Concurrent requests to the same signature of the same servable, whose inputs agree on dtype
and on every dimension but the first, are concatenated along dimension 0 into one signature
call of at most `max_batch_size` rows, and the outputs are split back. As in TF Serving, the
`num_batch_threads` batch threads take the work: a free thread forms a batch at once from what
is queued (waiting at most `batch_timeout_micros` after the oldest task for more rows), runs
it, and goes straight on to the next batch while any is queued. While all threads are busy,
tasks queue up (and so form bigger batches) until `max_enqueued_batches * max_batch_size` rows
are waiting; beyond that a request gets RESOURCE_EXHAUSTED (HTTP 429), as in TF Serving.
A signature whose merged outputs turn out not to carry the batch as their first dimension (a
fixed-size or scalar output) has that batch's requests run one by one and is never merged again
(TF Serving would fail them): batching is on by default, so it must not break such models.

Callers on an asyncio event loop use `submit_async`: their results come back with one
`call_soon_threadsafe` per batch, not one thread wake-up per request. Other threads use
`submit` (a concurrent Future) or call the batcher like `servable.run`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from serving.errors import Code, ServingError
from serving.server.cpus import usable_cpus

if TYPE_CHECKING:  # servable imports TensorFlow; the supervisor checks batching files without it
    from serving.server.servable import Servable, Signature

logger = logging.getLogger(__name__)


class _NotBatchable(Exception):
    """A merged call's output lacks the batch as its first dimension."""


@dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's BatchingParameters with its defaults (session_bundle_config.proto)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=usable_cpus)  # TF Serving: one per core
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_proto(cls, params) -> "BatchingOptions":
        """From a `BatchingParameters` message (see serving.server.config_protos)."""
        wrapped = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
        options = cls(
            **{name: getattr(params, name).value for name in wrapped if params.HasField(name)},
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            pad_variable_length_inputs=params.pad_variable_length_inputs,
        )
        options.validate()
        return options

    def validate(self) -> None:
        for name, least in (("max_batch_size", 1), ("num_batch_threads", 1), ("max_enqueued_batches", 1),
                            ("batch_timeout_micros", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"{name} must be >= {least}, got {getattr(self, name)}")
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
    """One request: its inputs, and where its result goes (a concurrent Future, or an asyncio
    future with the loop that owns it)."""

    __slots__ = ("inputs", "size", "future", "loop", "enqueued")

    def __init__(self, inputs: Mapping[str, np.ndarray], size: int, loop: asyncio.AbstractEventLoop | None) -> None:
        self.inputs = inputs
        self.size = size
        self.loop = loop
        self.future: Any = loop.create_future() if loop is not None else Future()
        self.enqueued = time.monotonic()


def _settle(future: Any, value: Any, ok: bool) -> None:
    """Hands a future its result (ok) or exception."""
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _resolve(pairs: list[tuple[Any, Any, bool]]) -> None:
    """On a loop: settles each asyncio future unless it is done already (its request timed out
    or was cancelled)."""
    for future, value, ok in pairs:
        if not future.done():
            _settle(future, value, ok)


class _Queue:
    """Tasks for one (servable, signature, input layout)."""

    __slots__ = ("key", "servable", "signature", "output_filter", "tasks", "rows")

    def __init__(self, key: tuple, servable: Servable, signature: Signature, output_filter: tuple[str, ...]) -> None:
        self.key = key
        self.servable = servable
        self.signature = signature
        self.output_filter = output_filter
        self.tasks: deque[_Task] = deque()
        self.rows = 0


class DynamicBatcher:
    """A `core.Batcher` that merges concurrent calls; call it like `servable.run`."""

    def __init__(self, options: BatchingOptions) -> None:
        options.validate()
        self.options = options
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queues: dict[tuple, _Queue] = {}
        self._ready: deque[_Queue] = deque()  # queues with tasks, oldest work first
        self._active = 0  # batch threads started and not yet out of work
        self._pool = ThreadPoolExecutor(max_workers=options.num_batch_threads, thread_name_prefix="batch")

    # ---- entry points ----------------------------------------------------------------------

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
        """Queues a call from any thread; None when it cannot be batched (run it directly).

        Raises RESOURCE_EXHAUSTED when the queue is full."""
        task = self._enqueue(servable, signature, inputs, output_filter, None)
        return None if task is None else task.future

    def submit_async(
        self,
        servable: Servable,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> "asyncio.Future[dict[str, np.ndarray]] | None":
        """`submit` for a coroutine on the running loop: an asyncio future of the outputs."""
        task = self._enqueue(servable, signature, inputs, output_filter, asyncio.get_running_loop())
        return None if task is None else task.future

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- queueing --------------------------------------------------------------------------

    def _enqueue(
        self,
        servable: Servable,
        signature: Signature,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...],
        loop: asyncio.AbstractEventLoop | None,
    ) -> _Task | None:
        size = _batch_size(inputs)
        if size is None or size > self.options.max_batch_size or size == 0 or not signature.batchable:
            return None
        key = (
            id(servable),
            signature.name,
            output_filter,
            tuple((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()),
        )
        task = _Task(inputs, size, loop)
        limit = self.options.max_enqueued_batches * self.options.max_batch_size
        with self._lock:
            q = self._queues.get(key)
            if q is None:
                q = self._queues[key] = _Queue(key, servable, signature, output_filter)
            if q.rows + size > limit:
                raise ServingError(
                    Code.RESOURCE_EXHAUSTED,
                    "The batch scheduling queue to which this task was submitted is full",
                )
            if not q.tasks:
                self._ready.append(q)
            q.tasks.append(task)
            q.rows += size
            start = self._active < self.options.num_batch_threads
            if start:
                self._active += 1
            else:
                self._arrived.notify()  # a thread waiting out batch_timeout_micros may be full now
        if start:
            self._pool.submit(self._work)
        return task

    def _take(self) -> tuple[_Queue, list[_Task], int] | None:
        """The next batch (lock held): from the queue with the oldest work, up to
        max_batch_size rows, after waiting at most batch_timeout_micros for it to fill."""
        options = self.options
        while self._ready:
            q = self._ready[0]
            if options.batch_timeout_micros > 0:
                deadline = q.tasks[0].enqueued + options.batch_timeout_micros / 1e6
                while q.rows < options.max_batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._arrived.wait(remaining)
                if not q.tasks or q not in self._ready:  # another thread took them meanwhile
                    continue
            batch: list[_Task] = []
            rows = 0
            while q.tasks and rows + q.tasks[0].size <= options.max_batch_size:
                task = q.tasks.popleft()
                batch.append(task)
                rows += task.size
            q.rows -= rows
            self._ready.remove(q)  # not always the head: other threads may have moved it
            if q.tasks:
                self._ready.append(q)  # the rest waits its turn behind other queues
            elif self._queues.get(q.key) is q:
                del self._queues[q.key]  # its servable may be unloaded: hold no reference
            return q, batch, rows
        return None

    def _work(self) -> None:
        """A batch thread: runs batches until none is queued."""
        while True:
            with self._lock:
                taken = self._take()
                if taken is None:
                    self._active -= 1
                    return
            q, batch, rows = taken
            self._deliver(batch, self._run(q, batch, rows))

    # ---- running ---------------------------------------------------------------------------

    def _run(self, q: _Queue, batch: list[_Task], rows: int) -> list[tuple[Any, bool]]:
        """(result, ok) for every task of the batch; never raises."""
        if len(batch) == 1 and not self.options.allowed_batch_sizes:
            return [self._run_one(q, batch[0])]
        try:
            outputs = self._run_merged(q, batch, rows)
        except _NotBatchable as error:
            logger.warning("%s: running its requests one by one from now on", error)
            q.signature.batchable = False
            return [self._run_one(q, task) for task in batch]
        except ServingError as error:
            if error.code != Code.INVALID_ARGUMENT:
                return [(error, False)] * len(batch)
            # One bad request must not fail its neighbours: retry each on its own.
            return [self._run_one(q, task) for task in batch]
        except BaseException as error:  # noqa: BLE001 - delivered to every waiting request
            return [(error, False)] * len(batch)
        ends = accumulate(task.size for task in batch)
        return [({k: v[end - task.size : end] for k, v in outputs.items()}, True) for task, end in zip(batch, ends)]

    @staticmethod
    def _run_one(q: _Queue, task: _Task) -> tuple[Any, bool]:
        try:
            return q.servable.run(q.signature, task.inputs, q.output_filter), True
        except BaseException as error:  # noqa: BLE001
            return error, False

    def _run_merged(self, q: _Queue, batch: list[_Task], rows: int) -> dict[str, np.ndarray]:
        padded = next((size for size in self.options.allowed_batch_sizes if size >= rows), rows)
        merged = {}
        for name in batch[0].inputs:
            parts = [task.inputs[name] for task in batch]
            if padded > rows:
                filler = parts[-1][-1:]
                parts.append(np.repeat(filler, padded - rows, axis=0))
            merged[name] = np.concatenate(parts, axis=0)
        outputs = q.servable.run(q.signature, merged, q.output_filter)
        for name, array in outputs.items():
            if array.ndim == 0 or array.shape[0] != padded:
                raise _NotBatchable(
                    f"signature {q.signature.name} of {q.servable.name} version {q.servable.version} is not "
                    f"batchable: merged output {name} has shape {list(array.shape)}, not the batch size "
                    f"{padded} first"
                )
        return outputs

    @staticmethod
    def _deliver(batch: list[_Task], results: list[tuple[Any, bool]]) -> None:
        """Thread callers' futures directly; each event loop's futures in one callback."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, bool]]] = {}
        for task, (value, ok) in zip(batch, results):
            if task.loop is None:
                _settle(task.future, value, ok)
            else:
                by_loop.setdefault(task.loop, []).append((task.future, value, ok))
        for loop, pairs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, pairs)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int | None:
    """The shared first dimension of all inputs, or None when they cannot be batched."""
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    return sizes.pop() if len(sizes) == 1 else None
