"""Serving benchmark: our TF Serving drop-in vs the in-process floor vs a naive JSON/HTTP script.

For each model (a CIFAR-sized CNN built untrained here, and the pipeline's pushed model when there
is one) it measures, in one run:
  * the floor: `tf.saved_model.load` + the signature call in this process, 1 and 64 rows;
  * `serving.server` over REST and gRPC: latency p50/p99 at concurrency 1 for 1 and 64 rows, and
    throughput (1-row requests) at concurrency 1/4/16: with no flags (`ours`: the defaults,
    batching on and one process per usable core), with TF Serving's defaults (`ours-tfs`:
    `--enable_batching=false --num_server_processes=1`), and with explicit flags: batching with
    this script's parameters file (`+batching`) and/or `--num_server_processes=2` (`-2proc`);
  * `benchmarks/naive_server.py` (single-threaded http.server + json): the same REST numbers.
and prints one table per model with the target ratios.

Fairness and noise:
  * The load generator is a separate process that imports no TensorFlow: requests are
    serialized once up front (HTTP bytes, PredictRequest bytes) and sent over asyncio
    keep-alive sockets and gRPC futures, so it measures the servers, not a client library.
    Each concurrent client has its own connection (REST socket, gRPC channel), as separate
    client processes would, so `-2proc` servers get the load spread over both processes.
  * All servers run side by side and every measurement is cut into `--rounds` slices that
    are interleaved (floor, ours, ours+batching, naive, floor, ...), so a burst of other work on
    the machine hits every contender alike; latencies pool the slices, throughputs are the
    median of the slices.

    .venv/bin/python benchmarks/bench_serving.py [--pushed-model DIR] [--duration 2] [--rounds 4]
        [--batch-timeout-micros 1000]
    .venv/bin/python benchmarks/bench_serving.py --profile rest   # cProfile of the server instead
    .venv/bin/python benchmarks/bench_serving.py --transport-ceilings  # no-op REST / gRPC servers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from serving.process import embedded_command, free_port, spawn, stop_processes
from serving.server.flags import TF_SERVING_DEFAULTS

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 16)
# "ours": no flags but ports and model (the defaults). "ours-tfs": TF Serving's defaults (no
# batching, one process). The others set both flags explicitly: "+batching" with this script's
# batching file, "-2proc" with --num_server_processes=2 (two processes sharing both ports).
VARIANTS = ("ours", "ours-tfs", "ours+batching", "ours-2proc", "ours+batching-2proc", "naive")
DEFAULT_TARGET = 2.5  # issue 15: no flags, REST at 16 clients, at least 2.5x the naive script
MODEL_NAME = "bench"
BATCH_THREADS = 1
MAX_BATCH_ROWS = 64


def batching_parameters(timeout_micros: int) -> str:
    """The batching file of the `+batching` servers. One batch thread, not TF Serving's one per
    core: the event loop thread (both transports, request conversion) keeps one of this
    machine's two cores busy, and a second batch thread only splits the queue into smaller
    batches that contend for the GIL (measured on digits at c=16: REST and gRPC +15% with one
    thread; docs/serving-benchmark.md). `timeout_micros` 0 forms batches from what queues up
    while the thread is busy; more waits that long after the oldest request for a batch to fill."""
    return (f"max_batch_size {{ value: {MAX_BATCH_ROWS} }}\n"
            f"batch_timeout_micros {{ value: {timeout_micros} }}\n"
            f"max_enqueued_batches {{ value: 1000 }}\nnum_batch_threads {{ value: {BATCH_THREADS} }}\n")


# Runs `python -m serving.server` with a cProfile profiler in every Python thread; the merged
# stats go to the file named by the first argument when the server exits (SIGTERM).
PROFILE_WRAPPER = r"""
import atexit, cProfile, pstats, runpy, sys, threading
out, args = sys.argv[1], sys.argv[2:]
profiles = []
def hook(*_):
    profile = cProfile.Profile()
    profiles.append(profile)
    profile.enable()  # replaces this hook for the calling thread
threading.setprofile(hook)
main = cProfile.Profile()
profiles.append(main)
def dump():
    main.disable()
    stats = None
    for profile in profiles:
        try:
            stats = pstats.Stats(profile) if stats is None else stats.add(profile)
        except TypeError:
            pass
    stats.dump_stats(out)
atexit.register(dump)
sys.argv = ["serving.server", *args]
main.enable()
runpy.run_module("serving.server", run_name="__main__", alter_sys=True)
"""


# --------------------------------------------------------------------------------------------
# Load generator: its own process, no TensorFlow, one JSON test per stdin line.


def _percentiles(latencies: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds of latencies in seconds."""
    if not latencies:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(latencies)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1e3

    return {"p50": pick(50), "p90": pick(90), "p99": pick(99), "max": ordered[-1] * 1e3}


async def _rest_worker(host: str, port: int, request: bytes, keepalive: bool, stop_at: float,
                       latencies: list[float], errors: list[str]) -> None:
    reader = writer = None
    while time.perf_counter() < stop_at:
        began = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            body = await (reader.readexactly(int(match.group(1))) if match else reader.read())
            latencies.append(time.perf_counter() - began)
            if head[9:12] != b"200":
                errors.append(f"HTTP {head[9:12].decode()}: {body[:200]!r}")
            lower = head.lower()
            closing = b"connection: close" in lower or (
                head.startswith(b"HTTP/1.0") and b"keep-alive" not in lower
            )
            if not keepalive or closing:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError) as err:
            errors.append(f"{type(err).__name__}: {err}")
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def _run_rest(test: dict[str, Any], request: bytes, duration: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> None:
        stop_at = time.perf_counter() + duration
        await asyncio.gather(*(
            _rest_worker(test["host"], test["port"], request, test["keepalive"], stop_at, latencies, errors)
            for _ in range(test["concurrency"])
        ))

    asyncio.run(main())
    return latencies, errors


_CHANNELS: dict[tuple[str, int], Any] = {}


def _predict_call(target: str, client: int) -> Any:
    """Client number `client`'s Predict call on its own channel: each concurrent client has its
    own connection, as separate client processes would (and as the REST workers do), so
    SO_REUSEPORT can spread them over server processes."""
    import grpc

    if (target, client) not in _CHANNELS:
        channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1),
                                                         ("grpc.max_receive_message_length", -1),
                                                         ("grpc.use_local_subchannel_pool", 1)])
        # Pre-serialized bytes in, raw bytes out: no protobuf work in the load generator.
        _CHANNELS[target, client] = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    return _CHANNELS[target, client]


def _run_grpc(test: dict[str, Any], payload: bytes, duration: float) -> tuple[list[float], list[str]]:
    import threading

    import grpc

    calls = [_predict_call(test["target"], client) for client in range(test["concurrency"])]
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + duration
    if test["concurrency"] == 1:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                calls[0](payload, timeout=30)
                latencies.append(time.perf_counter() - began)
            except grpc.RpcError as err:
                errors.append(f"{err.code().name}: {err.details()}")
        return latencies, errors
    done = threading.Event()
    lock = threading.Lock()
    in_flight = [test["concurrency"]]

    def launch(call: Any) -> None:
        began = time.perf_counter()
        future = call.future(payload, timeout=30)
        future.add_done_callback(lambda f: finished(call, f, began))

    def finished(call: Any, future: Any, began: float) -> None:
        error = future.exception()
        if error is None:
            latencies.append(time.perf_counter() - began)
        else:
            errors.append(f"{error.code().name}: {error.details()}")
        if time.perf_counter() < stop_at:
            launch(call)
            return
        with lock:
            in_flight[0] -= 1
            if in_flight[0] == 0:
                done.set()

    for call in calls:
        launch(call)
    done.wait(duration + 60)
    return latencies, errors


def loadgen_main() -> int:
    """Reads one test per stdin line, answers one result line: latencies (s), errors."""
    payloads: dict[str, bytes] = {}
    for line in sys.stdin:
        test = json.loads(line)
        if test["payload"] not in payloads:
            payloads[test["payload"]] = Path(test["payload"]).read_bytes()
        run = _run_grpc if test["protocol"] == "grpc" else _run_rest
        run(test, payloads[test["payload"]], test["warmup"])
        cpu_before = time.process_time()
        latencies, errors = run(test, payloads[test["payload"]], test["duration"])
        # CPU the load generator itself used, to show it is not what limits the measurement.
        cpu = (time.process_time() - cpu_before) / test["duration"]
        print(json.dumps({"latencies": latencies, "errors": len(errors), "cpu": cpu,
                          "first_error": errors[0] if errors else None}), flush=True)
    return 0


class LoadGenerator:
    """The load generator process, driven one test slice at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "_loadgen"], cwd=REPO, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self, test: dict[str, Any]) -> dict[str, Any]:
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("the load generator's pipes are closed")
        self.process.stdin.write(json.dumps(test) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"load generator exited with {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(30)


# --------------------------------------------------------------------------------------------
# Models, payloads, servers (this process loads TensorFlow for the model build and the floor).


def build_cifar_cnn(base_dir: Path) -> Path:
    """An untrained CIFAR-sized CNN (32x32x3, three conv layers) as SavedModel `<base>/1`."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.layers.Input((32, 32, 3)),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])

    @tf.function(input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="image")])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = model(image, training=False)
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=1)}

    path = base_dir / "1"
    tf.saved_model.save(model, str(path), signatures={"serving_default": serve})
    return path


def newest_pushed_model(serving_dir: Path) -> Path | None:
    """The newest complete integer version under `<serving_dir>/<model>/`, across models."""
    from serving.layout import is_complete_saved_model, list_versions

    best: tuple[float, Path] | None = None
    if not serving_dir.is_dir():
        return None
    for model_dir in serving_dir.iterdir():
        for version in reversed(list_versions(model_dir)):
            path = model_dir / str(version)
            if is_complete_saved_model(path):
                if best is None or path.stat().st_mtime > best[0]:
                    best = (path.stat().st_mtime, path)
                break
    return best[1] if best else None


class Floor:
    """The in-process signature call, numpy in and numpy out, as a server has to do it."""

    def __init__(self, version_dir: Path):
        import tensorflow as tf

        self._tf = tf
        self.signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        (self.input_name, spec), *rest = self.signature.structured_input_signature[1].items()
        if rest:
            raise SystemExit(f"{version_dir}: serving_default has several inputs; the benchmark needs one")
        self.shape = [d if d is not None else -1 for d in spec.shape.as_list()]
        self.dtype = spec.dtype

    def measure(self, array: Any, duration: float) -> list[float]:
        tf = self._tf
        for _ in range(5):
            self.signature(**{self.input_name: tf.convert_to_tensor(array)})
        latencies = []
        stop_at = time.perf_counter() + duration
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            outputs = self.signature(**{self.input_name: tf.convert_to_tensor(array)})
            {k: v.numpy() for k, v in outputs.items()}
            latencies.append(time.perf_counter() - began)
        return latencies


def write_payloads(work: Path, floor: Floor) -> tuple[dict[str, str], dict[int, Any]]:
    """Request bytes for every (transport, rows) and the arrays themselves for the floor."""
    import numpy as np
    import orjson
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    rng = np.random.default_rng(0)
    payloads, arrays = {}, {}
    for rows in (1, 64):
        # Raw pixels 0-255, what the clients of the project's image models send.
        array = rng.integers(0, 256, size=[rows, *floor.shape[1:]]).astype(floor.dtype.as_numpy_dtype)
        arrays[rows] = array
        body = orjson.dumps({"instances": array}, option=orjson.OPT_SERIALIZE_NUMPY)
        for kind, path, extra in (("ours", f"/v1/models/{MODEL_NAME}:predict", ""),
                                  ("naive", "/predict", "Connection: close\r\n")):
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}\r\n")
            payloads[f"rest_{kind}_{rows}"] = str(work / f"rest_{kind}_{rows}.bin")
            Path(payloads[f"rest_{kind}_{rows}"]).write_bytes(head.encode() + body)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL_NAME
        request.model_spec.signature_name = "serving_default"
        request.inputs[floor.input_name].CopyFrom(tf.make_tensor_proto(array))
        payloads[f"grpc_{rows}"] = str(work / f"grpc_{rows}.bin")
        Path(payloads[f"grpc_{rows}"]).write_bytes(request.SerializeToString())
    return payloads, arrays


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log_path: Path, timeout: float = 180.0) -> Iterator[subprocess.Popen]:
    """Starts a server process, waits for `ready_url` to answer 200, yields it, SIGTERMs it at the end."""
    with open(log_path, "wb") as log:
        process = spawn(command, stdout=log, cwd=REPO)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}: {' '.join(command)}\n"
                                 + log_path.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    body = response.read()
                # Our server: the model status says AVAILABLE; the naive one answers any GET.
                if "/v1/" not in ready_url or b'"AVAILABLE"' in body:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready within {timeout:g} s: {ready_url}\n"
                                 + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield process
    finally:
        stop_processes([process], 20)


def server_command(variant: str, version_dir: Path, base: Path, rest_port: int, grpc_port: int,
                   batching_file: Path, prefix: list[str] | None = None) -> tuple[list[str], str]:
    if variant == "naive":
        return ([sys.executable, str(REPO / "benchmarks" / "naive_server.py"), f"--port={rest_port}",
                 f"--model_dir={version_dir}"], f"http://127.0.0.1:{rest_port}/")
    command = (prefix or embedded_command()) + [
        f"--port={grpc_port}", f"--rest_api_port={rest_port}", f"--model_name={MODEL_NAME}",
        f"--model_base_path={base}"]
    if variant == "ours-tfs":
        command += list(TF_SERVING_DEFAULTS)
    elif variant != "ours":
        command += (["--enable_batching", f"--batching_parameters_file={batching_file}"]
                    if variant.startswith("ours+batching") else ["--enable_batching=false"])
        command += ["--num_server_processes=2" if variant.endswith("-2proc") else "--num_server_processes=1"]
    return command, f"http://127.0.0.1:{rest_port}/v1/models/{MODEL_NAME}"


def plan_tests(variant: str, ports: tuple[int, int], payloads: dict[str, str]) -> list[dict[str, Any]]:
    rest_port, grpc_port = ports
    kind = "naive" if variant == "naive" else "ours"
    tests = []
    for protocol in ("rest",) if variant == "naive" else ("rest", "grpc"):
        address = ({"host": "127.0.0.1", "port": rest_port, "keepalive": variant != "naive"}
                   if protocol == "rest" else {"target": f"127.0.0.1:{grpc_port}"})
        for rows, concurrency, name in [(1, 1, "latency 1"), (64, 1, "latency 64")] + [
                (1, c, f"throughput c{c}") for c in CONCURRENCY]:
            payload = payloads[f"rest_{kind}_{rows}" if protocol == "rest" else f"grpc_{rows}"]
            tests.append({"variant": variant, "name": f"{protocol} {name}", "protocol": protocol, "rows": rows,
                          "concurrency": concurrency, "payload": payload, **address})
    return tests


def bench_model(label: str, version_dir: Path, work: Path, duration: float, rounds: int,
                variants: list[str], loadgen: LoadGenerator, batch_timeout_micros: int) -> dict[str, Any]:
    base = work / MODEL_NAME
    base.mkdir(parents=True)
    os.symlink(version_dir.resolve(), base / "1")
    floor = Floor(version_dir)
    payloads, arrays = write_payloads(work, floor)
    batching_file = work / "batching.pbtxt"
    batching_file.write_text(batching_parameters(batch_timeout_micros))
    slice_s = duration / rounds
    with contextlib.ExitStack() as stack:
        tests = []
        for variant in variants:
            ports = (free_port(), free_port())
            command, ready = server_command(variant, version_dir, base, *ports, batching_file)
            print(f"[{label}] starting {variant}", file=sys.stderr, flush=True)
            stack.enter_context(running(command, ready, work / f"{variant}.log"))
            tests += plan_tests(variant, ports, payloads)
        floor_latencies: dict[int, list[float]] = {1: [], 64: []}
        slices: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for round_index in range(rounds):
            warmup = 0.3 if round_index == 0 else 0.1
            for rows, array in arrays.items():
                floor_latencies[rows] += floor.measure(array, slice_s)
            for test in tests:
                result = loadgen.run({**test, "duration": slice_s, "warmup": warmup})
                slices.setdefault((test["variant"], test["name"]), []).append(result)
            print(f"[{label}] round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    runs: dict[str, list[dict[str, Any]]] = {}
    for test in tests:
        parts = slices[(test["variant"], test["name"])]
        latencies = [x for part in parts for x in part["latencies"]]
        errors = sum(part["errors"] for part in parts)
        runs.setdefault(test["variant"], []).append({
            "name": test["name"], "protocol": test["protocol"], "count": len(latencies), "errors": errors,
            "first_error": next((p["first_error"] for p in parts if p["first_error"]), None),
            "throughput": statistics.median(len(p["latencies"]) / slice_s for p in parts),
            "loadgen_cpu": statistics.median(p["cpu"] for p in parts),
            **_percentiles(latencies)})
    floor_result = {rows: {**_percentiles(lat), "count": len(lat)} for rows, lat in floor_latencies.items()}
    return {"label": label, "shape": floor.shape, "floor": floor_result, "runs": runs,
            "rounds": rounds, "duration": duration, "batch_timeout_micros": batch_timeout_micros}


def profile_server(version_dir: Path, work: Path, duration: float, protocol: str, batching: bool,
                   batch_timeout_micros: int) -> str:
    """Where the server's time goes at concurrency 16: cProfile in every server thread."""
    import pstats

    base = work / MODEL_NAME
    base.mkdir(parents=True)
    os.symlink(version_dir.resolve(), base / "1")
    payloads, _ = write_payloads(work, Floor(version_dir))
    (work / "batching.pbtxt").write_text(batching_parameters(batch_timeout_micros))
    ports = (free_port(), free_port())
    stats_path = work / "server.prof"
    variant = "ours+batching" if batching else "ours-tfs"  # one process: the profiler sees the server
    command, ready = server_command(variant, version_dir, base, *ports, work / "batching.pbtxt",
                                    prefix=[sys.executable, "-c", PROFILE_WRAPPER, str(stats_path)])
    (test,) = [t for t in plan_tests(variant, ports, payloads) if t["name"] == f"{protocol} throughput c16"]
    loadgen = LoadGenerator()
    try:
        with running(command, ready, work / "profiled.log"):
            result = loadgen.run({**test, "duration": duration, "warmup": 0.3})
    finally:
        loadgen.close()
    deadline = time.monotonic() + 30
    while not stats_path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    buffer = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=buffer)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(45)
    count = len(result["latencies"])
    return (f"profiled {protocol} c=16 ({variant}): {count} requests in {duration:g} s = {count / duration:.0f} "
            f"req/s under cProfile, {result['errors']} errors\n" + buffer.getvalue())


def noop_server_main(kind: str, port: int) -> int:
    """A server that answers every Predict (gRPC, bytes in / fixed bytes out) or every POST (aiohttp)
    at once: what the Python transports cost before any model or tensor work."""
    answer = b'{"predictions": [[0.5]]}'
    if kind == "rest":
        from aiohttp import web

        async def handler(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=answer, content_type="application/json")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
        return 0
    import grpc

    async def predict(request: bytes, context: Any) -> bytes:
        return answer

    async def serve() -> None:
        server = grpc.aio.server()  # the server serving.server.grpc_api runs
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService", {"Predict": grpc.unary_unary_rpc_method_handler(predict)}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(0)

    asyncio.run(serve())
    return 0


def transport_ceilings(work: Path, duration: float) -> str:
    """Latency and throughput of no-op REST (aiohttp) and gRPC (grpc.aio) servers on this machine."""
    work.mkdir(parents=True, exist_ok=True)
    body = b'{"instances": [[1.0]]}'
    rest_payload, grpc_payload = work / "noop_rest.bin", work / "noop_grpc.bin"
    rest_payload.write_bytes(b"POST /v1/models/bench:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    grpc_payload.write_bytes(b"\n\x07\n\x05bench")
    lines = ["| no-op server | p50 ms at c=1 | req/s c=1 | req/s c=16 | load generator CPU at c=16 |",
             "|---|---:|---:|---:|---:|"]
    loadgen = LoadGenerator()
    try:
        for kind in ("rest", "grpc"):
            port = free_port()
            url = f"http://127.0.0.1:{port}/" if kind == "rest" else None
            process = subprocess.Popen([sys.executable, __file__, "_noop", kind, str(port)], cwd=REPO)
            try:
                time.sleep(2.0)  # no readiness endpoint on the gRPC one; both start in well under 2 s
                address = ({"host": "127.0.0.1", "port": port, "keepalive": True} if url else
                           {"target": f"127.0.0.1:{port}"})
                payload = str(rest_payload if kind == "rest" else grpc_payload)
                results = [loadgen.run({"protocol": kind, "concurrency": c, "payload": payload,
                                        "duration": duration, "warmup": 0.3, **address}) for c in (1, 16)]
            finally:
                process.terminate()
                process.wait(20)
            one, sixteen = results
            lines.append(f"| {'aiohttp (REST)' if kind == 'rest' else 'grpc.aio server (gRPC)'} | "
                         f"{_percentiles(one['latencies'])['p50']:.3f} | {len(one['latencies']) / duration:.0f} | "
                         f"{len(sixteen['latencies']) / duration:.0f} | {sixteen['cpu'] * 100:.0f}% |")
    finally:
        loadgen.close()
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Report.


def _find(runs: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["name"] == name), None)


def format_report(result: dict[str, Any]) -> str:
    floor = result["floor"]
    lines = [f"### {result['label']} (input {result['shape']})", ""]
    header = ("| path | 1 row p50 | 1 row p99 | 64 rows p50 | 64 rows p99 | req/s c=1 | req/s c=4 "
              "| req/s c=16 | errors |")
    lines += [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines.append(f"| in-process floor | {floor[1]['p50']:.3f} | {floor[1]['p99']:.3f} | {floor[64]['p50']:.3f} | "
                 f"{floor[64]['p99']:.3f} | ({1e3 / floor[1]['p50']:.0f}) | | | |")
    for variant, runs in result["runs"].items():
        for protocol in ("rest", "grpc"):
            lat1, lat64 = _find(runs, f"{protocol} latency 1"), _find(runs, f"{protocol} latency 64")
            if lat1 is None or lat64 is None:
                continue
            thr = [_find(runs, f"{protocol} throughput c{c}") or {"throughput": float("nan")} for c in CONCURRENCY]
            errors = sum(r["errors"] for r in runs if r["protocol"] == protocol)
            name = f"{protocol.upper()} {variant}" if variant != "naive" else "naive (json + http.server)"
            lines.append(f"| {name} | {lat1['p50']:.3f} | {lat1['p99']:.3f} | {lat64['p50']:.3f} | "
                         f"{lat64['p99']:.3f} | {thr[0]['throughput']:.0f} | {thr[1]['throughput']:.0f} | "
                         f"{thr[2]['throughput']:.0f} | {errors} |")
    lines += ["", "Latency in ms at concurrency 1 (p50/p99); throughput in 1-row requests/s (median of "
              f"{result['rounds']} interleaved slices); floor's req/s = 1000 / p50; ours: no flags (the defaults); "
              f"ours-tfs: {' '.join(TF_SERVING_DEFAULTS)}; +batching servers: "
              f"batch_timeout_micros {result['batch_timeout_micros']}, {BATCH_THREADS} batch thread(s), "
              f"max {MAX_BATCH_ROWS} rows.", ""]
    runs_by = result["runs"]
    f50 = floor[1]["p50"]
    checks = []
    for protocol, target in (("rest", 1.5), ("grpc", 1.0)):
        mine = _find(runs_by.get("ours", []), f"{protocol} latency 1")
        if mine:
            checks.append((f"{protocol.upper()} 1-row p50 - floor", mine["p50"] - f50, target, "ms", "<="))
        tfs = _find(runs_by.get("ours-tfs", []), f"{protocol} latency 1")
        if mine and tfs:
            checks.append((f"{protocol.upper()} 1-row p50 ours - ours-tfs (defaults must not add latency)",
                           mine["p50"] - tfs["p50"], 0.0, "ms", "<="))
    naive16 = _find(runs_by.get("naive", []), "rest throughput c16")
    for variant in VARIANTS[:-1]:
        for protocol in ("rest", "grpc"):
            mine = _find(runs_by.get(variant, []), f"{protocol} throughput c{CONCURRENCY[-1]}")
            if mine and naive16 and naive16["throughput"] > 0:
                checks.append((f"{protocol.upper()} {variant} c=16 / naive c=16",
                               mine["throughput"] / naive16["throughput"],
                               DEFAULT_TARGET if variant == "ours" else 3.0, "x", ">="))
    for name, value, target, unit, op in checks:
        met = value <= target if op == "<=" else value >= target
        lines.append(f"- {name}: {value:.2f} {unit} (target {op} {target:g} {unit}): {'MET' if met else 'MISSED'}")
    busiest = max((r for runs in runs_by.values() for r in runs), key=lambda r: r["loadgen_cpu"], default=None)
    if busiest:
        lines.append(f"- load generator CPU: at most {busiest['loadgen_cpu'] * 100:.0f}% of one core "
                     f"({busiest['name']}), in its own process")
    for variant, runs in runs_by.items():
        for r in runs:
            if r["errors"]:
                lines.append(f"- {variant} {r['name']}: {r['errors']} errors, first: {r['first_error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_loadgen"]:
        return loadgen_main()
    if argv[:1] == ["_noop"]:
        return noop_server_main(argv[1], int(argv[2]))
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushed-model", type=Path,
                        help="a pushed SavedModel version dir, or a model dir whose newest version is used "
                             "(default: the newest version under --serving-dir)")
    parser.add_argument("--serving-dir", type=Path, default=REPO / "runs" / "serving")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of measurement per test")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved slices per test")
    parser.add_argument("--skip-cnn", action="store_true", help="only the pushed model")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--profile", choices=("rest", "grpc"),
                        help="instead of the table: cProfile the server under 16 concurrent 1-row requests")
    parser.add_argument("--profile-batching", action="store_true", help="with --profile: enable batching")
    parser.add_argument("--transport-ceilings", action="store_true",
                        help="instead of the table: what no-op REST and gRPC servers manage on this machine")
    parser.add_argument("--batch-timeout-micros", type=int, default=0,
                        help="batch_timeout_micros of the +batching servers (default 0)")
    parser.add_argument("--json", type=Path, help="also write the summarised results here")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if (not set(variants) <= set(VARIANTS) or args.rounds < 1 or args.duration <= 0
            or args.batch_timeout_micros < 0):
        parser.error(f"--variants must be among {VARIANTS}, --rounds >= 1, --duration > 0, "
                     f"--batch-timeout-micros >= 0; got {args.variants!r}, {args.rounds}, {args.duration}, "
                     f"{args.batch_timeout_micros}")
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    results = []
    if args.transport_ceilings:
        try:
            print(transport_ceilings(work / "ceilings", args.duration))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    try:
        models: list[tuple[str, Path]] = []
        if not args.skip_cnn:
            models.append(("CIFAR-sized CNN (untrained, 3 conv layers)", build_cifar_cnn(work / "cifar_src")))
        pushed = args.pushed_model
        if pushed is None:
            pushed = newest_pushed_model(args.serving_dir)
            if pushed is None:
                print(f"note: no pushed model under {args.serving_dir}; run the pipeline first or pass "
                      "--pushed-model", file=sys.stderr)
        elif not (pushed / "saved_model.pb").is_file():
            from serving.layout import LayoutError, find_version

            try:
                pushed = find_version(pushed)[1]
            except LayoutError:
                parser.error(f"--pushed-model {pushed}: neither a SavedModel dir nor a model dir with versions")
        if pushed is not None:
            models.append((f"pushed model {pushed}", pushed))
        if not models:
            parser.error("nothing to measure: --skip-cnn and no pushed model")
        if args.profile:
            label, version_dir = models[0]
            print(f"[{label}]")
            print(profile_server(version_dir, work / "profile", args.duration, args.profile, args.profile_batching,
                                 args.batch_timeout_micros))
            return 0
        loadgen = LoadGenerator()
        try:
            for index, (label, version_dir) in enumerate(models):
                result = bench_model(label, version_dir, work / f"m{index}", args.duration, args.rounds, variants,
                                     loadgen, args.batch_timeout_micros)
                results.append(result)
                print(format_report(result) + "\n", flush=True)
        finally:
            loadgen.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"total {time.monotonic() - started:.0f} s; {os.cpu_count()} CPUs; python {sys.version.split()[0]}; "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the "
          "machine skews the numbers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
