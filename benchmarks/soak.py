"""Soak: concurrent clients on one server while versions are pushed and retired; counts, p99, RSS.

One `python -m serving.server` (loopback, free ports) serves a tiny model. `--clients` threads
send 1-row Predict requests, alternating REST and gRPC, and check every answer
(y = 0.5 * x + 2). Meanwhile a new version is published with `serving.layout.publish` every
`--push-every` seconds; the server loads it, retires the previous one (latest-1 policy), and
directories older than the newest `--keep` are deleted. Bounded by `--seconds` (and by
`--reloads`, whichever comes first). Prints requests served, failures (expected 0), latency
p50/p99, reloads, and the server's RSS after the first load and after 10 and 100 reloads.

    .venv/bin/python benchmarks/soak.py --seconds 300 --reloads 100 --clients 4 --push-every 1.5
    .venv/bin/python benchmarks/soak.py --seconds 40 --json      # the CI form (tests/benchmarks)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import requests

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "soak"
RSS_MARKS = (10, 100)


def build_model(export_dir: Path) -> Path:
    """y = 0.5 * x + 2 over float32 [batch] (input `x`), with variables, like half_plus_two."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x):
            return {"y": self.a * x + self.b}

    module = HalfPlusTwo()
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.predict})
    return export_dir


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Tally:
    """What the clients saw; appended to under `lock`."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _grpc_predict_bytes(x: float) -> bytes:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[x])
    tensor.tensor_shape.dim.append(tensor_shape_pb2.TensorShapeProto.Dim(size=1))
    request.inputs["x"].CopyFrom(tensor)
    return request.SerializeToString()


def client_loop(index: int, rest_url: str, grpc_target: str, stop: threading.Event, tally: Tally) -> None:
    """Alternates REST and gRPC predictions until `stop`; records latency or the failure."""
    from tensorflow_serving.apis import predict_pb2

    x = float(index + 1)
    expected = 0.5 * x + 2.0
    body = json.dumps({"instances": [x]}).encode()
    payload = _grpc_predict_bytes(x)
    session = requests.Session()
    with grpc.insecure_channel(grpc_target) as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                      request_serializer=None, response_deserializer=None)
        turn = 0
        while not stop.is_set():
            turn += 1
            begin = time.perf_counter()
            try:
                if turn % 2:
                    response = session.post(f"{rest_url}/v1/models/{MODEL_NAME}:predict", data=body, timeout=30)
                    ok = response.status_code == 200 and response.json() == {"predictions": [expected]}
                    detail = f"REST {response.status_code} {response.text[:200]}"
                else:
                    reply = predict_pb2.PredictResponse.FromString(predict(payload, timeout=30))
                    ok = list(reply.outputs["y"].float_val) == [expected]
                    detail = f"gRPC answer {list(reply.outputs['y'].float_val)}"
            except (requests.RequestException, grpc.RpcError) as error:
                ok, detail = False, f"{type(error).__name__}: {str(error)[:200]}"
            seconds = time.perf_counter() - begin
            with tally.lock:
                if ok:
                    tally.latencies.append(seconds)
                else:
                    tally.failures.append(detail)


def _model_states(rest_url: str) -> dict[int, str]:
    response = requests.get(f"{rest_url}/v1/models/{MODEL_NAME}", timeout=30)
    response.raise_for_status()
    return {int(v["version"]): v["state"] for v in response.json()["model_version_status"]}


def wait_until_swapped(rest_url: str, version: int, timeout: float = 120.0) -> float:
    """Waits until `version` is the only AVAILABLE one (loaded, previous retired); returns seconds."""
    begin = time.monotonic()
    while time.monotonic() - begin < timeout:
        states = _model_states(rest_url)
        if states.get(version) == "AVAILABLE" and all(v == version or s != "AVAILABLE" for v, s in states.items()):
            return time.monotonic() - begin
        time.sleep(0.05)
    raise RuntimeError(f"version {version} did not replace the previous one within {timeout} s: {states}")


def retire(model_dir: Path, keep: int) -> None:
    """Deletes all but the newest `keep` version directories (the server has unloaded them)."""
    from serving import layout

    for version in layout.list_versions(model_dir)[:-keep]:
        shutil.rmtree(model_dir / str(version), ignore_errors=True)


@dataclass
class SoakResult:
    seconds: float
    clients: int
    requests: int
    failures: int
    failure_examples: list[str]
    p50_ms: float | None
    p99_ms: float | None
    reloads: int
    swap_seconds_p50: float | None
    rss_kib: dict[str, int]


def soak(seconds: float, reloads: int, clients: int, push_every: float, keep: int, work: Path) -> SoakResult:
    from serving import layout, process, validate

    model = build_model(work / "model")
    serving_dir = work / "serving"
    layout.publish(model, serving_dir, MODEL_NAME)
    server = process.ModelServerProcess(
        model_name=MODEL_NAME, model_base_path=serving_dir / MODEL_NAME, server="embedded",
        extra_args=["--file_system_poll_wait_seconds=1"], pick_ports=True,
    )
    tally, stop = Tally(), threading.Event()
    rss: dict[str, int] = {}
    swaps: list[float] = []
    with server:
        pid = server.wait_until_ready(180)["pid"]
        validate.wait_until_available(server.grpc_endpoint, MODEL_NAME, deadline=time.time() + 180, is_alive=server.is_alive)
        rss["first_load"] = rss_kib(pid)
        threads = [threading.Thread(target=client_loop, args=(i, server.rest_endpoint, server.grpc_endpoint, stop, tally),
                                    daemon=True) for i in range(clients)]
        begin = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            while time.monotonic() - begin < seconds and len(swaps) < reloads:
                next_push = time.monotonic() + push_every
                published = layout.publish(model, serving_dir, MODEL_NAME)
                swaps.append(wait_until_swapped(server.rest_endpoint, published.version))
                retire(serving_dir / MODEL_NAME, keep)
                if len(swaps) in RSS_MARKS:
                    rss[f"after_{len(swaps)}_reloads"] = rss_kib(pid)
                if not server.is_alive():
                    raise RuntimeError(f"the server died: {server.failure_lines()}")
                time.sleep(max(0.0, next_push - time.monotonic()))
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        elapsed = time.monotonic() - begin
        rss["end"] = rss_kib(pid)
    latencies = sorted(tally.latencies)
    return SoakResult(
        seconds=round(elapsed, 1),
        clients=clients,
        requests=len(latencies) + len(tally.failures),
        failures=len(tally.failures),
        failure_examples=tally.failures[:5],
        p50_ms=round(1000 * statistics.median(latencies), 2) if latencies else None,
        p99_ms=round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2) if latencies else None,
        reloads=len(swaps),
        swap_seconds_p50=round(statistics.median(swaps), 2) if swaps else None,
        rss_kib=rss,
    )


def format_result(result: SoakResult) -> str:
    rss = result.rss_kib
    lines = [
        f"soak: {result.seconds} s, {result.clients} clients (REST and gRPC alternating), "
        f"{result.reloads} reloads (median swap {result.swap_seconds_p50} s)",
        f"requests served: {result.requests - result.failures}, failures: {result.failures}",
        f"latency: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms",
        "RSS: " + ", ".join(f"{key.replace('_', ' ')} {value / 1024:.0f} MiB" for key, value in rss.items()),
    ]
    if "after_10_reloads" in rss and "after_100_reloads" in rss:
        growth = (rss["after_100_reloads"] - rss["after_10_reloads"]) / 1024
        lines.append(f"RSS growth from reload 10 to 100: {growth:+.0f} MiB ({growth / 90 * 100:+.0f} MiB per 100 reloads)")
    lines += [f"failure: {example}" for example in result.failure_examples]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="upper bound on the soak (default 300)")
    parser.add_argument("--reloads", type=int, default=100, help="stop after this many version swaps (default 100)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default 4)")
    parser.add_argument("--push-every", type=float, default=1.5, help="seconds between pushes (default 1.5)")
    parser.add_argument("--keep", type=int, default=2, help="version directories kept on disk (default 2)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.reloads < 1 or args.clients < 1 or args.keep < 1 or args.push_every < 0:
        parser.error("--seconds and --push-every must be positive, --reloads, --clients and --keep at least 1")
    with tempfile.TemporaryDirectory(prefix="soak-") as work:
        result = soak(args.seconds, args.reloads, args.clients, args.push_every, args.keep, Path(work))
    print(json.dumps(asdict(result)) if args.json else format_result(result))
    return 0 if result.failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
