"""Prometheus metrics under TF Serving's names, exported on the REST port when enabled.

TF Serving exports its TF monitoring metrics with `/` turned into `:`, e.g.
`:tensorflow:serving:request_count{model_name,status}` and the microsecond histogram
`:tensorflow:serving:request_latency{model_name,API,entrypoint}`. prometheus_client's own
Counter would rename a counter to `..._total`, so a small custom collector yields the families
with the exact TF Serving sample names; prometheus_client does the text exposition.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from serving.errors import Code

__all__ = ["ServingMetrics", "DEFAULT_PATH", "Observer"]

# What a transport calls after every API request: observe(model_name, api, status_code, seconds).
Observer = Callable[[str, str, Code, float], None]

DEFAULT_PATH = "/monitoring/prometheus/metrics"
MAX_SERIES = 1000
# TF Serving's request_latency buckets: exponential, 10 us * 1.8^i (monitoring Buckets::Exponential).
_LATENCY_BUCKETS_US = tuple(10.0 * 1.8**i for i in range(33))


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS_US) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS_US, value)] += 1
        self.total += value
        self.count += 1


def _untyped(name: str, documentation: str, label_names: tuple[str, ...], values: dict[tuple, int]) -> Metric:
    """A family of counts (untyped, as TF Serving exports them), one sample per label values."""
    family = Metric(name, documentation, "untyped")
    for key, value in sorted(values.items()):
        family.add_sample(name, dict(zip(label_names, key)), value)
    return family


class ServingMetrics(Collector):
    """Request counts, latencies and load events; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str, str], _Histogram] = {}
        self._loads: dict[tuple[str, str], int] = defaultdict(int)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, model_name: str, api: str, code: Code, seconds: float, entrypoint: str) -> None:
        status = "OK" if code == Code.OK else Code(code).name
        with self._lock:
            if (model_name, api, entrypoint) not in self._latency and len(self._latency) >= MAX_SERIES:
                # Model names come from request URLs: cap the label sets a client can create.
                model_name = "__other__"
            self._requests[(model_name, status)] += 1
            key = (model_name, api, entrypoint)
            histogram = self._latency.get(key)
            if histogram is None:
                histogram = self._latency[key] = _Histogram()
            histogram.observe(seconds * 1e6)

    def model_event(self, model_name: str, version: int, event: str) -> None:
        with self._lock:
            self._loads[(model_name, event)] += 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            requests = dict(self._requests)
            latency = {k: (list(h.counts), h.total, h.count) for k, h in self._latency.items()}
            loads = dict(self._loads)
        yield _untyped(":tensorflow:serving:request_count", "The total number of requests.", ("model_name", "status"), requests)
        family = Metric(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            "histogram",
        )
        name = ":tensorflow:serving:request_latency"
        for (model, api, entrypoint), (counts, total, count) in sorted(latency.items()):
            labels = {"model_name": model, "API": api, "entrypoint": entrypoint}
            cumulative = 0
            for bound, bucket in zip(_LATENCY_BUCKETS_US, counts):
                cumulative += bucket
                family.add_sample(name + "_bucket", {**labels, "le": repr(bound)}, cumulative)
            family.add_sample(name + "_bucket", {**labels, "le": "+Inf"}, count)
            family.add_sample(name + "_sum", labels, total)
            family.add_sample(name + "_count", labels, count)
        yield family
        yield _untyped(
            ":tensorflow:serving:model_load_events",
            "Model version load/unload events by model and outcome (loaded, failed, unloaded).",
            ("model_name", "event"),
            loads,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
