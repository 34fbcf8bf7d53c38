"""Serving benchmark: our TF Serving drop-in vs the in-process floor vs a naive JSON/HTTP script.

For each model (a CIFAR-sized CNN built untrained here, and the pipeline's pushed model when there
is one) it measures, in one run:
  * the floor: `tf.saved_model.load` + the signature call in this process, 1 and 64 rows;
  * `serving.server` over REST and gRPC: latency p50/p99 at concurrency 1 for 1 and 64 rows, and
    throughput (1-row requests) at concurrency 1/4/16, without and with `--enable_batching`;
  * `benchmarks/naive_server.py` (single-threaded http.server + json): the same REST numbers.
Then it prints one table per model and the target ratios.

The load generator is a separate process (`_loadgen`, started by this script) that imports no
TensorFlow: requests are serialized once up front (HTTP bytes, PredictRequest bytes) and sent
with asyncio keep-alive sockets and gRPC futures, so it measures the servers, not the client.

    .venv/bin/python benchmarks/bench_serving.py [--pushed-model DIR] [--duration 2]
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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 4, 16)
# TF Serving's CPU advice: one batch thread per core, no timeout (batches form from what queues up
# while the threads are busy), so concurrency 1 pays nothing for batching.
BATCHING_PARAMETERS = """\
max_batch_size { value: 64 }
batch_timeout_micros { value: 0 }
max_enqueued_batches { value: 1000 }
num_batch_threads { value: 2 }
"""
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
# Load generator (runs in its own process; no TensorFlow).


def _percentiles(latencies: list[float]) -> dict[str, float]:
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
            status = int(head[9:12])
            latencies.append(time.perf_counter() - began)
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
            lower = head.lower()
            if not keepalive or b"connection: close" in lower or (head.startswith(b"HTTP/1.0") and b"keep-alive" not in lower):
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


def _run_rest(host: str, port: int, request: bytes, keepalive: bool, concurrency: int, duration: float) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []

    async def main() -> None:
        stop_at = time.perf_counter() + duration
        await asyncio.gather(*(_rest_worker(host, port, request, keepalive, stop_at, latencies, errors) for _ in range(concurrency)))

    asyncio.run(main())
    return latencies, errors


def _run_grpc(target: str, payload: bytes, concurrency: int, duration: float) -> tuple[list[float], list[str]]:
    import threading

    import grpc

    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1),
                                                     ("grpc.max_receive_message_length", -1)])
    # Pre-serialized bytes in, raw bytes out: no protobuf work in the load generator.
    call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + duration
    if concurrency == 1:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                call(payload, timeout=30)
                latencies.append(time.perf_counter() - began)
            except grpc.RpcError as err:
                errors.append(f"{err.code().name}: {err.details()}")
    else:
        done = threading.Event()
        lock = threading.Lock()
        in_flight = [0]

        def launch() -> None:
            began = time.perf_counter()
            future = call.future(payload, timeout=30)
            future.add_done_callback(lambda f: finished(f, began))

        def finished(future: Any, began: float) -> None:
            error = future.exception()
            if error is None:
                latencies.append(time.perf_counter() - began)
            else:
                errors.append(f"{error.code().name}: {error.details()}")
            if time.perf_counter() < stop_at:
                launch()
            else:
                with lock:
                    in_flight[0] -= 1
                    if in_flight[0] == 0:
                        done.set()

        in_flight[0] = concurrency
        for _ in range(concurrency):
            launch()
        done.wait(duration + 60)
    channel.close()
    return latencies, errors


def loadgen_main(plan_path: str) -> int:
    """Runs the tests of a plan JSON and prints their results as JSON on stdout."""
    plan = json.loads(Path(plan_path).read_text())
    payloads = {name: Path(path).read_bytes() for name, path in plan["payloads"].items()}
    results = []
    for test in plan["tests"]:
        payload = payloads[test["payload"]]
        for phase, duration in (("warmup", test["warmup"]), ("measure", test["duration"])):
            if test["protocol"] == "grpc":
                latencies, errors = _run_grpc(plan["grpc_target"], payload, test["concurrency"], duration)
            else:
                latencies, errors = _run_rest(plan["rest_host"], plan["rest_port"], payload, plan["keepalive"],
                                              test["concurrency"], duration)
        results.append({**test, "count": len(latencies), "errors": len(errors), "first_error": errors[0] if errors else None,
                        "throughput": len(latencies) / test["duration"], **_percentiles(latencies)})
    print(json.dumps(results))
    return 0


# --------------------------------------------------------------------------------------------
# Orchestration (this process loads TensorFlow for the model build and the floor).


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    """The newest integer version under `<serving_dir>/<model>/`, across models."""
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


def input_spec(version_dir: Path) -> tuple[str, list[int], Any]:
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    (name, spec), *rest = signature.structured_input_signature[1].items()
    if rest:
        raise SystemExit(f"{version_dir}: serving_default has several inputs; the benchmark needs one image input")
    return name, [d if d is not None else -1 for d in spec.shape.as_list()], spec.dtype


def measure_floor(version_dir: Path, inputs: dict[int, Any], duration: float) -> dict[int, dict[str, float]]:
    """In-process signature call, numpy in and numpy out, as the server has to do it."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    name = next(iter(signature.structured_input_signature[1]))
    result = {}
    for rows, array in inputs.items():
        for _ in range(20):
            signature(**{name: tf.convert_to_tensor(array)})
        latencies = []
        stop_at = time.perf_counter() + duration
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            outputs = signature(**{name: tf.convert_to_tensor(array)})
            {k: v.numpy() for k, v in outputs.items()}
            latencies.append(time.perf_counter() - began)
        result[rows] = {**_percentiles(latencies), "count": len(latencies)}
    return result


def write_payloads(work: Path, model_name: str, input_name: str, shape: list[int], dtype: Any) -> dict[str, str]:
    import numpy as np
    import orjson
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    rng = np.random.default_rng(0)
    payloads = {}
    for rows in (1, 64):
        # Raw pixels 0-255, what the clients of the project's image models send.
        array = rng.integers(0, 256, size=[rows, *shape[1:]]).astype(dtype.as_numpy_dtype)
        body = orjson.dumps({"instances": array}, option=orjson.OPT_SERIALIZE_NUMPY)
        for kind, path in (("ours", f"/v1/models/{model_name}:predict"), ("naive", "/predict")):
            http = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if kind == 'naive' else ''}\r\n")
            (work / f"rest_{kind}_{rows}.bin").write_bytes(http.encode() + body)
            payloads[f"rest_{kind}_{rows}"] = str(work / f"rest_{kind}_{rows}.bin")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = "serving_default"
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(array))
        (work / f"grpc_{rows}.bin").write_bytes(request.SerializeToString())
        payloads[f"grpc_{rows}"] = str(work / f"grpc_{rows}.bin")
        np.save(work / f"input_{rows}.npy", array)
    return payloads


@contextlib.contextmanager
def running(command: list[str], ready_url: str, log_path: Path, timeout: float = 120.0):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1"}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited with {process.returncode}: {' '.join(command)}\n"
                                 + log_path.read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200 and b"LOADING" not in response.read():
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready within {timeout:g} s: {ready_url}\n"
                                 + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_loadgen(work: Path, plan: dict[str, Any]) -> list[dict[str, Any]]:
    plan_path = work / "plan.json"
    plan_path.write_text(json.dumps(plan))
    completed = subprocess.run([sys.executable, __file__, "_loadgen", str(plan_path)], capture_output=True,
                               text=True, cwd=REPO, timeout=600)
    if completed.returncode != 0:
        raise SystemExit(f"load generator failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def bench_model(label: str, version_dir: Path, work: Path, duration: float, warmup: float,
                variants: list[str]) -> dict[str, Any]:
    model_name = "bench"
    base = work / model_name
    base.mkdir(parents=True)
    os.symlink(version_dir.resolve(), base / "1")
    input_name, shape, dtype = input_spec(version_dir)
    payloads = write_payloads(work, model_name, input_name, shape, dtype)
    import numpy as np

    floor = measure_floor(version_dir, {rows: np.load(work / f"input_{rows}.npy") for rows in (1, 64)}, duration)
    results: dict[str, Any] = {"label": label, "shape": shape, "floor": floor, "runs": {}}
    batching_file = work / "batching.pbtxt"
    batching_file.write_text(BATCHING_PARAMETERS)
    for variant in variants:
        rest_port, grpc_port = _free_port(), _free_port()
        if variant == "naive":
            command = [sys.executable, str(REPO / "benchmarks" / "naive_server.py"), f"--port={rest_port}",
                       f"--model_dir={version_dir}"]
            ready = f"http://127.0.0.1:{rest_port}/"
        else:
            command = [sys.executable, "-m", "serving.server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
                       f"--model_name={model_name}", f"--model_base_path={base}"]
            if variant == "ours+batching":
                command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
            ready = f"http://127.0.0.1:{rest_port}/v1/models/{model_name}"
        kind = "naive" if variant == "naive" else "ours"
        tests = []
        protocols = ("rest",) if variant == "naive" else ("rest", "grpc")
        for protocol in protocols:
            for rows in (1, 64):
                tests.append({"name": f"{protocol} latency {rows}", "protocol": protocol, "rows": rows, "concurrency": 1,
                              "payload": f"{protocol}_{kind}_{rows}" if protocol == "rest" else f"grpc_{rows}",
                              "duration": duration, "warmup": warmup})
            for concurrency in CONCURRENCY:
                tests.append({"name": f"{protocol} throughput c{concurrency}", "protocol": protocol, "rows": 1,
                              "concurrency": concurrency,
                              "payload": f"{protocol}_{kind}_1" if protocol == "rest" else "grpc_1",
                              "duration": duration, "warmup": warmup})
        plan = {"rest_host": "127.0.0.1", "rest_port": rest_port, "grpc_target": f"127.0.0.1:{grpc_port}",
                "keepalive": variant != "naive", "payloads": payloads, "tests": tests}
        print(f"[{label}] {variant}: starting server", file=sys.stderr, flush=True)
        with running(command, ready, work / f"{variant}.log"):
            results["runs"][variant] = run_loadgen(work, plan)
    return results


def profile_server(version_dir: Path, work: Path, duration: float, protocol: str, batching: bool) -> str:
    """Where the server's time goes at concurrency 16: cProfile in every server thread."""
    import pstats

    model_name = "bench"
    base = work / model_name
    base.mkdir(parents=True)
    os.symlink(version_dir.resolve(), base / "1")
    input_name, shape, dtype = input_spec(version_dir)
    payloads = write_payloads(work, model_name, input_name, shape, dtype)
    rest_port, grpc_port = _free_port(), _free_port()
    stats_path = work / "server.prof"
    command = [sys.executable, "-c", PROFILE_WRAPPER, str(stats_path), f"--port={grpc_port}",
               f"--rest_api_port={rest_port}", f"--model_name={model_name}", f"--model_base_path={base}"]
    if batching:
        (work / "batching.pbtxt").write_text(BATCHING_PARAMETERS)
        command += ["--enable_batching", f"--batching_parameters_file={work / 'batching.pbtxt'}"]
    test = {"name": f"{protocol} throughput c16", "protocol": protocol, "rows": 1, "concurrency": 16,
            "payload": "rest_ours_1" if protocol == "rest" else "grpc_1", "duration": duration, "warmup": 0.3}
    plan = {"rest_host": "127.0.0.1", "rest_port": rest_port, "grpc_target": f"127.0.0.1:{grpc_port}",
            "keepalive": True, "payloads": payloads, "tests": [test]}
    with running(command, f"http://127.0.0.1:{rest_port}/v1/models/{model_name}", work / "profiled.log"):
        (result,) = run_loadgen(work, plan)
    deadline = time.monotonic() + 30
    while not stats_path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    buffer = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=buffer)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)
    return (f"profiled {protocol} c=16 (batching {'on' if batching else 'off'}): {result['count']} requests, "
            f"{result['throughput']:.0f} req/s under cProfile, {result['errors']} errors\n" + buffer.getvalue())


# --------------------------------------------------------------------------------------------
# Report.


def _find(runs: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in runs if r["name"] == name), None)


def format_report(result: dict[str, Any]) -> str:
    floor = result["floor"]
    lines = [f"## {result['label']}  (input {result['shape']})", ""]
    header = (f"| {'path':<22} | 1 row p50 | 1 row p99 | 64 rows p50 | 64 rows p99 | req/s c=1 | req/s c=4 | req/s c=16 | errors |")
    lines += [header, "|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|"]
    lines.append(f"| {'in-process floor':<22} | {floor[1]['p50']:9.3f} | {floor[1]['p99']:9.3f} | {floor[64]['p50']:11.3f} | "
                 f"{floor[64]['p99']:11.3f} | {1e3 / floor[1]['p50']:9.0f} | {'':9} | {'':10} | {'':6} |")
    for variant, runs in result["runs"].items():
        for protocol in ("rest", "grpc"):
            lat1, lat64 = _find(runs, f"{protocol} latency 1"), _find(runs, f"{protocol} latency 64")
            if lat1 is None:
                continue
            thr = [_find(runs, f"{protocol} throughput c{c}") for c in CONCURRENCY]
            errors = sum(r["errors"] for r in runs if r["protocol"] == protocol)
            name = f"{protocol.upper()} {variant}" if variant != "naive" else "naive json/http.server"
            lines.append(f"| {name:<22} | {lat1['p50']:9.3f} | {lat1['p99']:9.3f} | {lat64['p50']:11.3f} | {lat64['p99']:11.3f} | "
                         f"{thr[0]['throughput']:9.0f} | {thr[1]['throughput']:9.0f} | {thr[2]['throughput']:10.0f} | {errors:6} |")
    lines.append("")
    lines.append("latency in ms (p50/p99 of requests at concurrency 1); throughput in 1-row requests per second")
    ours, batched, naive = (result["runs"].get(k, []) for k in ("ours", "ours+batching", "naive"))
    f50 = floor[1]["p50"]
    checks = []
    rest1 = _find(ours, "rest latency 1")
    grpc1 = _find(ours, "grpc latency 1")
    if rest1:
        checks.append(("REST 1-row p50 - floor", rest1["p50"] - f50, 1.5, "ms", "<="))
    if grpc1:
        checks.append(("gRPC 1-row p50 - floor", grpc1["p50"] - f50, 1.0, "ms", "<="))
    naive16 = _find(naive, "rest throughput c16")
    for variant, runs in (("ours", ours), ("ours+batching", batched)):
        for protocol in ("rest", "grpc"):
            mine = _find(runs, f"{protocol} throughput c16")
            if mine and naive16 and naive16["throughput"] > 0:
                checks.append((f"{protocol.upper()} {variant} c=16 / naive c=16", mine["throughput"] / naive16["throughput"],
                               3.0, "x", ">="))
    for name, value, target, unit, op in checks:
        met = value <= target if op == "<=" else value >= target
        lines.append(f"- {name}: {value:.2f} {unit} (target {op} {target:g} {unit}) {'MET' if met else 'MISSED'}")
    for variant, runs in result["runs"].items():
        for r in runs:
            if r["errors"]:
                lines.append(f"- {variant} {r['name']}: {r['errors']} errors, first: {r['first_error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_loadgen"]:
        return loadgen_main(argv[1])
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushed-model", type=Path,
                        help="a pushed SavedModel version dir (default: newest under runs/serving/<model>/)")
    parser.add_argument("--serving-dir", type=Path, default=REPO / "runs" / "serving")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of measurement per test")
    parser.add_argument("--warmup", type=float, default=0.3, help="seconds of warm-up per test")
    parser.add_argument("--skip-cnn", action="store_true", help="only the pushed model")
    parser.add_argument("--variants", default="ours,ours+batching,naive",
                        help="comma-separated servers to run: ours, ours+batching, naive")
    parser.add_argument("--profile", choices=("rest", "grpc"),
                        help="instead of the table: cProfile the server under 16 concurrent 1-row requests")
    parser.add_argument("--profile-batching", action="store_true", help="with --profile: enable batching")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    reports = []
    results = []
    try:
        models: list[tuple[str, Path]] = []
        if not args.skip_cnn:
            models.append(("CIFAR-sized CNN (untrained, 3 conv layers)", build_cifar_cnn(work / "cifar_src")))
        pushed = args.pushed_model
        if pushed is None:
            pushed = newest_pushed_model(args.serving_dir)
            if pushed is None:
                print(f"note: no pushed model under {args.serving_dir}; run the pipeline first or pass --pushed-model",
                      file=sys.stderr)
        elif not (pushed / "saved_model.pb").is_file():
            from serving.layout import list_versions

            versions = list_versions(pushed)
            if not versions:
                raise SystemExit(f"--pushed-model {pushed}: not a SavedModel dir nor a model dir with integer versions")
            pushed = pushed / str(versions[-1])
        if pushed is not None:
            models.append((f"pushed model {pushed}", pushed))
        if args.profile:
            label, version_dir = models[0]
            print(f"[{label}]")
            print(profile_server(version_dir, work / "profile", args.duration, args.profile, args.profile_batching))
            return 0
        for index, (label, version_dir) in enumerate(models):
            model_work = work / f"m{index}"
            model_work.mkdir()
            result = bench_model(label, version_dir, model_work, args.duration, args.warmup,
                                 args.variants.split(","))
            results.append(result)
            reports.append(format_report(result))
            print(reports[-1] + "\n", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"total {time.monotonic() - started:.0f} s; {os.cpu_count()} CPUs; python {sys.version.split()[0]}; "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the box "
          "skews the numbers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
