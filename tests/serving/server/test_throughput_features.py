"""Dynamic batching, Prometheus metrics and SavedModel warmup."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
from google.protobuf import text_format

from serving.server import config_protos
from serving.server.batching import BatchingOptions, DynamicBatcher
from serving.server.core import ServingCore
from serving.server.model_store import ModelStore, single_model_config
from serving.errors import Code, ServingError, invalid

SIGNATURE = SimpleNamespace(name="serving_default", batchable=True)


class FakeServable:
    """Doubles `x`; records the batch size of every call; optionally waits on a gate."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.gate = gate

    def run(self, signature, inputs, output_filter=()):
        x = inputs["x"]
        self.calls.append(x.shape[0])
        if self.gate is not None:
            self.gate.wait(10)
        if (x < 0).any():
            raise invalid("negative input")
        return {"y": x * 2}


def _submit_all(batcher, servable, values, signature=SIGNATURE):
    with ThreadPoolExecutor(len(values)) as pool:
        futures = [pool.submit(batcher, servable, signature, {"x": np.array([v], np.float32)}) for v in values]
        # Bounded: a request the batcher never settles fails the test instead of hanging it.
        return [f.result() if f.exception(timeout=10) is None else f.exception() for f in futures]


def test_concurrent_requests_are_merged_into_batches():
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    servable = FakeServable()
    results = _submit_all(batcher, servable, list(range(8)))
    assert [r["y"].tolist() for r in results] == [[2.0 * v] for v in range(8)]
    assert sum(servable.calls) == 8
    assert len(servable.calls) < 8, servable.calls
    assert max(servable.calls) <= 8


class CountingServable(FakeServable):
    """Also returns `n`, the number of rows of the call: a scalar, not one value per row."""

    name, version = "counting", 1

    def run(self, signature, inputs, output_filter=()):
        return {**super().run(signature, inputs, output_filter), "n": np.array(inputs["x"].shape[0])}


def test_a_signature_whose_outputs_are_not_per_row_is_run_one_request_at_a_time(caplog):
    signature = SimpleNamespace(name="serving_default", batchable=True)
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    servable = CountingServable()
    results = _submit_all(batcher, servable, [1.0, 2.0, 3.0], signature)
    # Merged once (3 rows), which showed `n` is not per row; then each request on its own.
    assert servable.calls == [3, 1, 1, 1]
    assert [(r["y"].tolist(), int(r["n"])) for r in results] == [([2.0], 1), ([4.0], 1), ([6.0], 1)]
    assert signature.batchable is False
    assert "signature serving_default of counting version 1 is not batchable: merged output n" in caplog.text
    assert batcher.submit(servable, signature, {"x": np.array([4.0], np.float32)}) is None  # never queued again


def test_full_queue_is_resource_exhausted():
    gate = threading.Event()
    batcher = DynamicBatcher(
        BatchingOptions(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    )
    servable = FakeServable(gate)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(batcher, servable, SIGNATURE, {"x": np.array([1.0], np.float32)})
        deadline = time.monotonic() + 10
        while not servable.calls and time.monotonic() < deadline:
            time.sleep(0.01)
        second = pool.submit(batcher, servable, SIGNATURE, {"x": np.array([2.0], np.float32)})
        time.sleep(0.2)  # queued behind the running batch
        with pytest.raises(ServingError) as info:
            batcher(servable, SIGNATURE, {"x": np.array([3.0], np.float32)})
        assert info.value.code == Code.RESOURCE_EXHAUSTED
        assert info.value.http_status == 429
        gate.set()
        assert first.result(10)["y"].tolist() == [2.0]
        assert second.result(10)["y"].tolist() == [4.0]


def test_a_bad_request_does_not_fail_its_batch_neighbours():
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=4, batch_timeout_micros=200_000, num_batch_threads=1))
    results = _submit_all(batcher, FakeServable(), [1.0, -1.0, 2.0])
    assert results[0]["y"].tolist() == [2.0]
    assert isinstance(results[1], ServingError) and results[1].message == "negative input"
    assert results[2]["y"].tolist() == [4.0]


def test_batches_are_padded_to_allowed_sizes():
    batcher = DynamicBatcher(
        BatchingOptions(max_batch_size=4, batch_timeout_micros=300_000, num_batch_threads=1, allowed_batch_sizes=(2, 4))
    )
    servable = FakeServable()
    results = _submit_all(batcher, servable, [1.0, 2.0, 3.0])
    assert [r["y"].tolist() for r in results] == [[2.0], [4.0], [6.0]]
    assert all(size in (2, 4) for size in servable.calls), servable.calls


def test_event_loop_callers_are_batched_and_resolved_on_their_loop():
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1))
    servable = FakeServable()

    async def main():
        loop = asyncio.get_running_loop()
        futures = [batcher.submit_async(servable, SIGNATURE, {"x": np.array([float(v)], np.float32)}) for v in range(6)]
        futures.append(batcher.submit_async(servable, SIGNATURE, {"x": np.array([-1.0], np.float32)}))
        assert all(isinstance(f, asyncio.Future) and f.get_loop() is loop for f in futures)
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert [r["y"].tolist() for r in results[:6]] == [[2.0 * v] for v in range(6)]
    assert isinstance(results[6], ServingError) and results[6].message == "negative input"
    assert servable.calls[0] == 7, servable.calls  # one merged call, then the retries one by one


def test_a_cancelled_loop_caller_does_not_disturb_the_rest_of_its_batch():
    gate = threading.Event()
    batcher = DynamicBatcher(BatchingOptions(max_batch_size=8, num_batch_threads=1))
    servable = FakeServable(gate)

    async def main():
        first = batcher.submit_async(servable, SIGNATURE, {"x": np.array([1.0], np.float32)})
        while not servable.calls:  # the first batch runs (held at the gate)
            await asyncio.sleep(0.01)
        queued = [batcher.submit_async(servable, SIGNATURE, {"x": np.array([float(v)], np.float32)}) for v in (2, 3, 4)]
        queued[1].cancel()  # e.g. its request passed the deadline
        gate.set()
        done = await asyncio.gather(first, queued[0], queued[2])
        return [d["y"].tolist() for d in done], queued[1].cancelled()

    values, cancelled = asyncio.run(main())
    assert values == [[2.0], [4.0], [8.0]]
    assert cancelled
    assert servable.calls == [1, 3]


def test_batching_parameters_file_format():
    params = text_format.Parse(
        """
        max_batch_size { value: 32 }
        batch_timeout_micros { value: 500 }
        max_enqueued_batches { value: 7 }
        num_batch_threads { value: 3 }
        allowed_batch_sizes: 16
        allowed_batch_sizes: 32
        """,
        config_protos.BatchingParameters(),
    )
    options = BatchingOptions.from_proto(params)
    assert options == BatchingOptions(32, 500, 7, 3, (16, 32), False)
    params.allowed_batch_sizes[:] = [8, 16]
    with pytest.raises(ValueError, match="must equal max_batch_size"):
        BatchingOptions.from_proto(params)


def _post(url: str, body: dict):
    request = urllib.request.Request(url, data=json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def test_batching_server_answers_concurrent_clients(serve, half_plus_two_dir, tmp_path):
    params = tmp_path / "batching.config"
    params.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 2000 }\nnum_batch_threads { value: 2 }\n")
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    args = ["--enable_batching=true", f"--batching_parameters_file={params}", f"--monitoring_config_file={monitoring}"]
    with serve(half_plus_two_dir, args=args) as server:
        url = f"{server.rest_endpoint}/v1/models/half_plus_two:predict"
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda v: _post(url, {"instances": [float(v)]}), range(64)))
        assert results == [(200, {"predictions": [0.5 * v + 2]}) for v in range(64)]
        with urllib.request.urlopen(f"{server.rest_endpoint}/monitoring/prometheus/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
        assert ':tensorflow:serving:request_count{model_name="half_plus_two",status="OK"} 64.0' in text
        assert ':tensorflow:serving:request_latency_count{API="predict",entrypoint="REST",model_name="half_plus_two"} 64.0' in text
        assert "# TYPE :tensorflow:serving:request_latency histogram" in text


def test_metrics_are_off_without_monitoring_config(half_plus_two_server):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{half_plus_two_server.rest_endpoint}/monitoring/prometheus/metrics", timeout=10)
    assert info.value.code == 404


def _store_with_warmup(base) -> ModelStore:
    holder = {}
    store = ModelStore(
        single_model_config("m", str(base)),
        poll_wait_seconds=0,
        warmup=lambda servable: holder["core"].warmup(servable),
    )
    holder["core"] = ServingCore(store)
    store.start()
    return store


def test_warmup_records_are_replayed_before_serving(tmp_path, half_plus_two_model, warmup_writer, predict_request):
    shutil.copytree(half_plus_two_model, tmp_path / "m" / "1")
    warmup_writer(tmp_path / "m" / "1", [predict_request("m", x=np.array([v], np.float32)) for v in (1.0, 2.0)])
    store = _store_with_warmup(tmp_path / "m")
    assert [(s.version, s.state) for s in store.version_status("m")] == [(1, "AVAILABLE")]


def test_failing_warmup_fails_the_version(tmp_path, half_plus_two_model, warmup_writer, predict_request):
    shutil.copytree(half_plus_two_model, tmp_path / "m" / "1")
    warmup_writer(tmp_path / "m" / "1", [predict_request("m", not_an_input=np.array([1.0], np.float32))])
    store = _store_with_warmup(tmp_path / "m")
    (status,) = store.version_status("m")
    assert status.state == "END"
    assert "input size does not match signature" in status.error_message
