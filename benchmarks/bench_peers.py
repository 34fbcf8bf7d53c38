"""Peers benchmark: our server against MLflow, BentoML, KServe, MLServer, TFServe and the naive script.

One command from a fresh clone:

    .venv/bin/python benchmarks/bench_peers.py [--pushed-model runs/serving/digits/N] [--quick]
        [--peers ours,ours-best,naive,mlflow,bentoml,kserve,mlserver,tfserve] [--json PATH]

What it does:
  * Each peer gets its own venv under runs/peers/<peer>/venv (git-ignored), Python 3.11 from pyenv
    (or `python3` when that is 3.11), pinned by benchmarks/peers/<peer>-requirements.txt; a stamp
    (hash of the pins and the interpreter) makes the set-up idempotent. The project's .venv and
    lock are not touched.
  * The same SavedModels for all: the CIFAR-sized CNN (built as bench_serving.py builds it) and the
    pipeline's pushed digits model, plus the frozen GraphDef TFServe needs (it cannot load a
    SavedModel). Each server's answer to a 4-row request must equal the in-process model's
    (floats within atol 1e-5 + rtol 1e-4, integers and strings exactly) before it is measured.
  * Every server runs as a command line (ours: `python -m serving.server` with only port and model
    flags, the default configuration, and a second time with its best flags), all side by side.
    Measurements are interleaved across servers and repeated `--rounds` times: p50/p99 at
    concurrency 1, req/s and p99 at 16 and 64 keep-alive clients, errors, RSS of the server's
    process tree, time from launch to the first correct answer.
  * REST load comes from `wrk` (C, a Lua script POSTs the request bytes), gRPC load from a separate
    process using grpcio's C core (raw pre-serialized request bytes: TF Serving Predict for ours,
    V2 ModelInfer for KServe). With `--pin split` (the default) the load generator runs on the last
    CPU and every server on the others (`taskset`), so no client competes with a server for a core.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench_serving import _percentiles, build_cifar_cnn, newest_pushed_model
from serving.process import free_port

REPO = Path(__file__).resolve().parents[1]
PEERS_DIR = REPO / "benchmarks" / "peers"
VENV_ROOT = REPO / "runs" / "peers"
MODEL_NAME = "bench"
SERVERS = ("ours", "ours-best", "naive", "mlflow", "bentoml", "kserve", "mlserver", "tfserve")
VENV_PEERS = ("mlflow", "bentoml", "kserve", "mlserver", "tfserve")
PEER_SERVERS = VENV_PEERS  # the "best peer" ratio is taken over these
CONCURRENCY = (1, 16, 64)
CHECK_ROWS = 4
ATOL, RTOL = 1e-5, 1e-4
# The best flags of `serving.server` as measured by bench_serving.py (docs/serving-benchmark.md).
OURS_BEST_FLAGS = ("--enable_batching", "--num_server_processes=2")
BATCHING_PARAMETERS = ("max_batch_size { value: 64 }\nbatch_timeout_micros { value: 0 }\n"
                       "max_enqueued_batches { value: 1000 }\nnum_batch_threads { value: 1 }\n")

# wrk's Lua hooks: POST the bytes of $WRK_BODY; at the end print one JSON line with exact numbers.
WRK_LUA = r"""
local file = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# --------------------------------------------------------------------------------------------
# Pure helpers (unit-tested in tests/benchmarks/test_bench_peers.py).


def parse_wrk(stdout: str) -> dict[str, float]:
    """req/s, p50/p99 (ms) and errors from the WRK_JSON line the Lua `done` hook prints."""
    for line in stdout.splitlines():
        if line.startswith("WRK_JSON "):
            raw = json.loads(line[len("WRK_JSON "):])
            errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
            seconds = raw["duration_us"] / 1e6
            return {"rps": raw["requests"] / seconds if seconds > 0 else 0.0, "requests": raw["requests"],
                    "p50": raw["p50_us"] / 1e3, "p99": raw["p99_us"] / 1e3, "errors": errors}
    raise ValueError(f"no WRK_JSON line in wrk's output: {stdout[-500:]!r}")


def outputs_from_json(document: Any) -> dict[str, Any]:
    """Output name -> nested list, from TF Serving's row or column format or V2's `outputs`."""
    if isinstance(document, dict) and "outputs" in document and isinstance(document["outputs"], list):
        import numpy as np

        return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]).tolist() for o in document["outputs"]}
    predictions = document["predictions"] if isinstance(document, dict) and "predictions" in document else document
    if isinstance(predictions, dict):  # column format, e.g. MLflow's dict of outputs
        return predictions
    if predictions and isinstance(predictions[0], dict):
        return {name: [row[name] for row in predictions] for name in predictions[0]}
    return {"": predictions}


def compare_outputs(expected: dict[str, Any], got: dict[str, Any]) -> str | None:
    """None when every output `got` names equals `expected` (floats within ATOL + RTOL); else why not.
    A single unnamed output is matched against the expected outputs by value."""
    import numpy as np

    if not got:
        return "no outputs in the answer"
    if list(got) == [""]:
        candidates = [name for name in expected if np.shape(expected[name]) == np.shape(got[""])]
        if not candidates:
            return f"one unnamed output of shape {np.shape(got[''])}, expected one of {list(expected)}"
        got = {candidates[0]: got[""]}
    for name, value in got.items():
        if name not in expected:
            return f"unexpected output {name!r} (expected {sorted(expected)})"
        want = np.asarray(expected[name])
        have = np.asarray(value)
        if have.shape != want.shape:
            return f"{name}: shape {have.shape}, expected {want.shape}"
        if want.dtype.kind == "f":
            if not np.allclose(have.astype(np.float64), want, atol=ATOL, rtol=RTOL):
                return f"{name}: max abs difference {np.max(np.abs(have - want)):.3g}"
        elif not np.array_equal(have.astype(want.dtype) if want.dtype.kind in "iu" else have, want):
            return f"{name}: {have.ravel()[:4].tolist()} != {want.ravel()[:4].tolist()}"
    return None


def summarize(samples: list[float]) -> dict[str, float]:
    """Median and range of one number over the rounds."""
    finite = [s for s in samples if not math.isnan(s)]
    if not finite:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": statistics.median(finite), "min": min(finite), "max": max(finite)}


# --------------------------------------------------------------------------------------------
# Peer venvs.


def peer_python() -> str:
    """Python 3.11 for the peers: pyenv's newest 3.11.x, else `python3` if it is 3.11."""
    if shutil.which("pyenv"):
        versions = subprocess.run(check=False, args=["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        elevens = sorted((v for v in versions if v.startswith("3.11.")), key=lambda v: [int(p) for p in v.split(".")
                                                                                       if p.isdigit()])
        if elevens:
            found = subprocess.run(check=False, args=["pyenv", "which", "python"], capture_output=True, text=True,
                                   env={**os.environ, "PYENV_VERSION": elevens[-1]})
            if found.returncode == 0:
                return found.stdout.strip()
    python3 = shutil.which("python3")
    if python3:
        version = subprocess.run(check=False, args=[python3, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                                 capture_output=True, text=True).stdout.strip()
        if version == "True":
            return python3
    raise SystemExit("the peers need Python 3.11 (tensorflow-cpu 2.17.1 and the pinned peers): install it "
                     "with pyenv (`pyenv install 3.11`) or make `python3` a 3.11")


def ensure_venv(peer: str, python: str) -> Path:
    """runs/peers/<peer>/venv with the pinned requirements. Nothing happens when the stamp matches the
    pins and the interpreter; new pins are installed into the venv; a new interpreter rebuilds it."""
    requirements = PEERS_DIR / f"{peer}-requirements.txt"
    home = VENV_ROOT / peer
    venv = home / "venv"
    stamp = home / "installed.stamp"
    wanted = {"python": python, "requirements_sha256": hashlib.sha256(requirements.read_bytes()).hexdigest()}
    try:
        have = json.loads(stamp.read_text())
    except (OSError, ValueError):
        have = {}
    if have == wanted and (venv / "bin" / "python").exists():
        return venv
    fresh = have.get("python") != python or not (venv / "bin" / "python").exists()
    print(f"[setup] {peer}: {'creating' if fresh else 'updating'} {venv} from {requirements.name} "
          "(a few minutes on a cold pip cache)", file=sys.stderr, flush=True)
    if fresh:
        shutil.rmtree(venv, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    began = time.monotonic()
    commands = [[str(venv / "bin" / "pip"), "install", "--no-input", "-r", str(requirements)]]
    if fresh:
        commands.insert(0, [python, "-m", "venv", str(venv)])
    with open(home / "install.log", "wb") as log:
        for command in commands:
            if subprocess.run(check=False, args=command, stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"[setup] {peer}: `{' '.join(command)}` failed; see {home / 'install.log'}")
    stamp.write_text(json.dumps(wanted) + "\n")
    print(f"[setup] {peer}: ready in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    return venv


# --------------------------------------------------------------------------------------------
# Models and request payloads (this process holds TensorFlow for them and the reference answers).


@dataclasses.dataclass
class Model:
    label: str
    version_dir: Path
    work: Path
    input_name: str = ""
    expected: dict[str, Any] = dataclasses.field(default_factory=dict)  # the CHECK_ROWS answer
    files: dict[str, Path] = dataclasses.field(default_factory=dict)  # payload kind -> request file


def prepare_model(model: Model) -> None:
    """Reference answers, request files for every wire format, the frozen graph, the model base dir."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    model.work.mkdir(parents=True)
    loaded = tf.saved_model.load(str(model.version_dir))  # keeps the variables alive for freezing
    signature = loaded.signatures["serving_default"]
    (model.input_name, spec), *rest = signature.structured_input_signature[1].items()
    if rest or spec.dtype != tf.float32:
        raise SystemExit(f"{model.version_dir}: the peers benchmark needs one float32 input; "
                         f"got {signature.structured_input_signature[1]}")
    shape = [d if d is not None else -1 for d in spec.shape.as_list()]
    rng = np.random.default_rng(0)
    for rows in (1, CHECK_ROWS):
        array = rng.integers(0, 256, size=[rows, *shape[1:]]).astype(np.float32)  # raw pixels 0-255
        if rows == CHECK_ROWS:
            outputs = signature(**{model.input_name: tf.constant(array)})
            model.expected = {k: _plain(v.numpy()) for k, v in outputs.items()}
        np.save(model.work / f"input_{rows}.npy", array)
        model.files[f"npy_{rows}"] = model.work / f"input_{rows}.npy"
        model.files[f"rows_{rows}"] = _write(model.work / f"rows_{rows}.json",
                                             json.dumps({"instances": array.tolist()}).encode())
        model.files[f"v2_{rows}"] = _write(model.work / f"v2_{rows}.json", json.dumps({"inputs": [{
            "name": model.input_name, "shape": list(array.shape), "datatype": "FP32",
            "data": array.ravel().tolist()}]}).encode())
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL_NAME
        request.model_spec.signature_name = "serving_default"
        request.inputs[model.input_name].CopyFrom(tf.make_tensor_proto(array))
        model.files[f"tfs_grpc_{rows}"] = _write(model.work / f"tfs_grpc_{rows}.bin", request.SerializeToString())
    base = model.work / "base"
    base.mkdir()
    os.symlink(model.version_dir.resolve(), base / "1")
    model.files["base"] = base
    freeze_numeric_outputs(signature, model.input_name, spec, model.work)
    model.files["frozen"] = model.work / "frozen.pb"
    (model.work / "batching.pbtxt").write_text(BATCHING_PARAMETERS)
    model.files["batching"] = model.work / "batching.pbtxt"


def freeze_numeric_outputs(signature: Any, input_name: str, spec: Any, work: Path) -> None:
    """`frozen.pb` + `frozen.json` for TFServe, which loads only a GraphDef: variables folded into
    constants, string outputs left out (a lookup table cannot be frozen), then pruned to what the
    numeric outputs need. Control edges are dropped first: tf.function ties every output to every
    stateful op (the table lookup) by them, and an inference graph has no state to order."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    keep = sorted(k for k, v in signature.structured_outputs.items() if v.dtype != tf.string)

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, spec.dtype, name=input_name)])
    def numeric(tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = signature(**{input_name: tensor})
        return {name: outputs[name] for name in keep}

    frozen = convert_variables_to_constants_v2(numeric.get_concrete_function(), aggressive_inlining=True)
    graph_def = frozen.graph.as_graph_def()
    for node in graph_def.node:
        inputs = [name for name in node.input if not name.startswith("^")]
        del node.input[:]
        node.input.extend(inputs)
    pruned = tf.compat.v1.graph_util.extract_sub_graph(graph_def, [t.name.split(":")[0] for t in frozen.outputs])
    (work / "frozen.pb").write_bytes(pruned.SerializeToString())
    # frozen.outputs follow tf.nest's order of the output dict: its sorted keys.
    (work / "frozen.json").write_text(json.dumps({"input": frozen.inputs[0].name,
                                                 "outputs": {k: t.name for k, t in zip(keep, frozen.outputs)}}))


def _plain(array: Any) -> Any:
    if array.dtype.kind in "SO":
        return [[v.decode() for v in row] if hasattr(row, "__len__") and not isinstance(row, bytes)
                else row.decode() for row in array.tolist()]
    return array.tolist()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------------------------
# Servers: what to launch and which endpoints each one has.


@dataclasses.dataclass
class Endpoint:
    server: str
    protocol: str  # as shown in the table
    kind: str  # "rest" or "grpc"
    address: str  # URL for REST, host:port for gRPC
    payload: str  # "rows", "v2", "tfs_grpc" or "v2_grpc": the request file kind
    method: str = ""  # gRPC method path

    @property
    def row(self) -> str:
        return f"{self.server} / {self.protocol}"


@dataclasses.dataclass
class Server:
    name: str
    command: list[str]
    endpoints: list[Endpoint]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    cwd: Path = REPO
    process: subprocess.Popen | None = None
    ready_s: float = float("nan")
    rss_mb: list[float] = dataclasses.field(default_factory=list)
    check: dict[str, str | None] = dataclasses.field(default_factory=dict)  # endpoint row -> mismatch


def server_spec(name: str, model: Model, venvs: dict[str, Path]) -> Server:
    """The command line, environment and endpoints of server `name` for `model`."""
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    project_python = sys.executable
    peers_path = {"PYTHONPATH": str(PEERS_DIR)}
    if name in ("ours", "ours-best"):
        command = [project_python, "-m", "serving.server", f"--port={grpc_port}", f"--rest_api_port={port}",
                   f"--model_name={MODEL_NAME}", f"--model_base_path={model.files['base']}"]
        if name == "ours-best":
            command += [*OURS_BEST_FLAGS, f"--batching_parameters_file={model.files['batching']}"]
        return Server(name, command, [
            Endpoint(name, "REST", "rest", f"{url}/v1/models/{MODEL_NAME}:predict", "rows"),
            Endpoint(name, "gRPC", "grpc", f"127.0.0.1:{grpc_port}", "tfs_grpc",
                     "/tensorflow.serving.PredictionService/Predict")],
            env={"PYTHONPATH": str(REPO)})
    if name == "naive":
        return Server(name, [project_python, str(REPO / "benchmarks" / "naive_server.py"), f"--port={port}",
                             f"--model_dir={model.version_dir}"],
                      [Endpoint(name, "REST", "rest", f"{url}/predict", "rows")])
    bin_dir = venvs[name] / "bin"
    if name == "mlflow":
        mlflow_model = model.work / "mlflow_model"
        if not mlflow_model.exists():
            _run_checked([str(bin_dir / "python"), str(PEERS_DIR / "mlflow_app.py"), "save", str(model.version_dir),
                          str(mlflow_model)], cwd=PEERS_DIR)
        # `mlflow models serve` starts `uvicorn` by name: the venv's bin/ must lead PATH.
        return Server(name, [str(bin_dir / "mlflow"), "models", "serve", "-m", str(mlflow_model), "--env-manager",
                             "local", "-w", "1", "-h", "127.0.0.1", "-p", str(port)],
                      [Endpoint(name, "REST", "rest", f"{url}/invocations", "rows")],
                      env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **peers_path})
    if name == "bentoml":
        return Server(name, [str(bin_dir / "bentoml"), "serve", "bentoml_app:SavedModelService", "--host",
                             "127.0.0.1", "--port", str(port)],
                      [Endpoint(name, "REST", "rest", f"{url}/predict", "rows")],
                      env={"PEER_MODEL_DIR": str(model.version_dir), "BENTOML_DO_NOT_TRACK": "true", **peers_path},
                      cwd=PEERS_DIR)
    if name == "kserve":
        return Server(name, [str(bin_dir / "python"), str(PEERS_DIR / "kserve_app.py"), f"--model_name={MODEL_NAME}",
                             f"--model_dir={model.version_dir}", f"--http_port={port}", f"--grpc_port={grpc_port}"],
                      [Endpoint(name, "REST V1", "rest", f"{url}/v1/models/{MODEL_NAME}:predict", "rows"),
                       Endpoint(name, "REST V2", "rest", f"{url}/v2/models/{MODEL_NAME}/infer", "v2"),
                       Endpoint(name, "gRPC V2", "grpc", f"127.0.0.1:{grpc_port}", "v2_grpc",
                                "/inference.GRPCInferenceService/ModelInfer")],
                      env=peers_path, cwd=PEERS_DIR)
    if name == "mlserver":
        settings = model.work / "mlserver"
        settings.mkdir(exist_ok=True)
        (settings / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port, "metrics_port": free_port()}))
        (settings / "model-settings.json").write_text(json.dumps({
            "name": MODEL_NAME, "implementation": "mlserver_app.SavedModelRuntime",
            "parameters": {"uri": str(model.version_dir)}}))
        return Server(name, [str(bin_dir / "mlserver"), "start", str(settings)],
                      [Endpoint(name, "REST V2", "rest", f"{url}/v2/models/{MODEL_NAME}/infer", "v2")],
                      env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **peers_path}, cwd=PEERS_DIR)
    if name == "tfserve":
        return Server(name, [str(bin_dir / "python"), str(PEERS_DIR / "tfserve_app.py"), str(model.files["frozen"]),
                             str(model.work / "frozen.json"), str(port)],
                      [Endpoint(name, "REST", "rest", f"{url}/", "rows")], env=peers_path, cwd=PEERS_DIR)
    raise ValueError(f"unknown server {name!r}; expected one of {SERVERS}")


def _run_checked(command: list[str], cwd: Path = REPO) -> str:
    result = subprocess.run(check=False, args=command, cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(command)}` failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


# --------------------------------------------------------------------------------------------
# Requests: one-off checks from this process, load from wrk and from the gRPC load generator.


def ask(endpoint: Endpoint, model: Model, venvs: dict[str, Path], rows: int = CHECK_ROWS,
        timeout: float = 30.0) -> dict[str, Any]:
    """The outputs of one request of `rows` rows; raises OSError / RuntimeError when it fails."""
    if endpoint.kind == "rest":
        request = urllib.request.Request(endpoint.address, data=model.files[f"{endpoint.payload}_{rows}"].read_bytes(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return outputs_from_json(json.loads(response.read()))
    if endpoint.payload == "v2_grpc":
        result = subprocess.run(check=False, args=[str(venvs["kserve"] / "bin" / "python"), str(PEERS_DIR / "kserve_app.py"),
                                 "grpc-call", endpoint.address, str(model.files[f"v2_grpc_{rows}"])],
                                cwd=PEERS_DIR, capture_output=True, text=True, timeout=timeout + 30)
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
        return json.loads(result.stdout)
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    with grpc.insecure_channel(endpoint.address) as channel:
        call = channel.unary_unary(endpoint.method, response_deserializer=predict_pb2.PredictResponse.FromString)
        try:
            response = call(model.files[f"tfs_grpc_{rows}"].read_bytes(), timeout=timeout)
        except grpc.RpcError as err:
            raise RuntimeError(f"{err.code().name}: {err.details()}") from None
    return {name: _plain(tf.make_ndarray(proto)) for name, proto in response.outputs.items()}


def grpcload_main() -> int:
    """The gRPC load generator process: one JSON test per stdin line, one result line each.
    Each concurrent client is a thread with its own channel that sends pre-serialized bytes (no
    protobuf work) and waits for the answer before the next; grpcio's C core does the I/O with the
    GIL released while the threads wait."""
    import threading

    import grpc

    calls: dict[tuple[str, str, int], Any] = {}

    def client(call: Any, payload: bytes, stop_at: float, latencies: list[float], errors: list[str]) -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                call(payload, timeout=30)
                latencies.append(time.perf_counter() - began)
            except grpc.RpcError as err:
                errors.append(f"{err.code().name}: {err.details()}")

    def run(test: dict[str, Any], payload: bytes, seconds: float) -> dict[str, Any]:
        for index in range(test["concurrency"]):
            key = (test["target"], test["method"], index)
            if key not in calls:
                channel = grpc.insecure_channel(test["target"], options=[("grpc.use_local_subchannel_pool", 1)])
                calls[key] = channel.unary_unary(test["method"])
        latencies: list[float] = []
        errors: list[str] = []
        began, cpu = time.perf_counter(), time.process_time()
        threads = [threading.Thread(target=client, args=(calls[test["target"], test["method"], index], payload,
                                                          began + seconds, latencies, errors))
                   for index in range(test["concurrency"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        stats = _percentiles(latencies)
        return {"rps": len(latencies) / elapsed, "requests": len(latencies), "p50": stats["p50"], "p99": stats["p99"],
                "errors": len(errors), "first_error": errors[0] if errors else None,
                "loadgen_cpu": (time.process_time() - cpu) / elapsed}

    for line in sys.stdin:
        test = json.loads(line)
        payload = Path(test["payload"]).read_bytes()
        run(test, payload, test["warmup"])
        print(json.dumps(run(test, payload, test["duration"])), flush=True)
    return 0


class LoadGenerators:
    """`wrk` for REST, a grpcio process for gRPC, both pinned to `cpus` when given."""

    def __init__(self, work: Path, cpus: str | None):
        self.prefix = ["taskset", "-c", cpus] if cpus else []
        self.lua = work / "post.lua"
        self.lua.write_text(WRK_LUA)
        self.grpc: subprocess.Popen | None = None

    def rest(self, url: str, body: Path, concurrency: int, duration: float, warmup: float) -> dict[str, Any]:
        env = {**os.environ, "WRK_BODY": str(body)}
        results = []
        for seconds in (warmup, duration):
            command = [*self.prefix, "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s",
                       "--timeout", "10s", "-s", str(self.lua), url]
            result = subprocess.run(check=False, args=command, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise SystemExit(f"wrk failed: {' '.join(command)}\n{result.stderr[-2000:]}")
            results.append(parse_wrk(result.stdout))
        return results[-1]

    def grpc_load(self, target: str, method: str, payload: Path, concurrency: int, duration: float,
                  warmup: float) -> dict[str, Any]:
        if self.grpc is None:
            self.grpc = subprocess.Popen([*self.prefix, sys.executable, __file__, "_grpcload"], cwd=REPO, text=True,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.grpc.stdin is not None and self.grpc.stdout is not None
        self.grpc.stdin.write(json.dumps({"target": target, "method": method, "payload": str(payload),
                                          "concurrency": concurrency, "duration": duration,
                                          "warmup": warmup}) + "\n")
        self.grpc.stdin.flush()
        line = self.grpc.stdout.readline()
        if not line:
            raise SystemExit(f"the gRPC load generator exited with {self.grpc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        if self.grpc is not None:
            if self.grpc.stdin:
                self.grpc.stdin.close()
            self.grpc.wait(30)


# --------------------------------------------------------------------------------------------
# One model: start the servers, check their answers, measure in interleaved rounds.


@contextlib.contextmanager
def started(server: Server, model: Model, venvs: dict[str, Path], log: Path, prefix: list[str],
            timeout: float = 300.0) -> Iterator[Server]:
    """Launches `server`; ready means its first endpoint answered a request with 200 / OK."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1", **server.env}
    began = time.monotonic()
    with open(log, "wb") as out:
        server.process = subprocess.Popen([*prefix, *server.command], cwd=server.cwd, env=env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while True:
            if server.process.poll() is not None:
                raise SystemExit(f"{server.name} exited with {server.process.returncode}: "
                                 f"{' '.join(server.command)}\n{log.read_text(errors='replace')[-3000:]}")
            try:
                ask(server.endpoints[0], model, venvs, rows=1, timeout=5)
                break
            except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() - began > timeout:
                raise SystemExit(f"{server.name} not ready within {timeout:g} s\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        server.ready_s = time.monotonic() - began
        yield server
    finally:
        stop(server)


def descendants(pid: int) -> list[int]:
    """The pids of `pid`'s children, grandchildren, ... (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and all its descendants, in MB."""
    total_kb = 0
    for member in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
    return total_kb / 1024


def stop(server: Server) -> None:
    """SIGTERM to the server's process group, SIGKILL after 20 s; then the same for any of its
    descendants that live on in a group of their own (BentoML's worker does)."""
    process = server.process
    if process is None or process.poll() is not None:
        return
    others = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for pid in others:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # only pids this server started; gone already in the usual case


def bench_model(model: Model, names: list[str], venvs: dict[str, Path], rounds: int, duration: float,
                warmup: float, pins: tuple[str | None, str | None]) -> dict[str, Any]:
    server_cpus, loadgen_cpus = pins
    prefix = ["taskset", "-c", server_cpus] if server_cpus else []
    servers = [server_spec(name, model, venvs) for name in names]
    loads = LoadGenerators(model.work, loadgen_cpus)
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        with contextlib.ExitStack() as stack:
            for server in servers:
                print(f"[{model.label}] starting {server.name}", file=sys.stderr, flush=True)
                stack.enter_context(started(server, model, venvs, model.work / f"{server.name}.log", prefix))
                for endpoint in server.endpoints:
                    try:
                        server.check[endpoint.row] = compare_outputs(model.expected, ask(endpoint, model, venvs))
                    except (OSError, RuntimeError, ValueError, KeyError) as err:
                        server.check[endpoint.row] = f"request failed: {err}"
                    status = server.check[endpoint.row] or "answer equals the in-process model's"
                    print(f"[{model.label}] {endpoint.row}: ready in {server.ready_s:.1f} s; {status}",
                          file=sys.stderr, flush=True)
            endpoints = [e for s in servers for e in s.endpoints]
            for round_index in range(rounds):
                for endpoint in endpoints:  # interleaved: every server once per round
                    for concurrency in CONCURRENCY:
                        if endpoint.kind == "rest":
                            result = loads.rest(endpoint.address, model.files[f"{endpoint.payload}_1"], concurrency,
                                                duration, warmup)
                        else:
                            result = loads.grpc_load(endpoint.address, endpoint.method,
                                                     model.files[f"{endpoint.payload}_1"], concurrency, duration,
                                                     warmup)
                        samples.setdefault((endpoint.row, concurrency), []).append(result)
                for server in servers:
                    if server.process is not None:
                        server.rss_mb.append(tree_rss_mb(server.process.pid))
                print(f"[{model.label}] round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    finally:
        loads.close()
    rows = []
    for server in servers:
        for endpoint in server.endpoints:
            row: dict[str, Any] = {"server": server.name, "protocol": endpoint.protocol, "kind": endpoint.kind,
                                   "check": server.check.get(endpoint.row), "ready_s": server.ready_s,
                                   "rss_mb": max(server.rss_mb, default=float("nan")),
                                   "command": " ".join(server.command)}
            for concurrency in CONCURRENCY:
                parts = samples.get((endpoint.row, concurrency), [])
                row[f"c{concurrency}"] = {
                    "rps": summarize([p["rps"] for p in parts]), "p50": summarize([p["p50"] for p in parts]),
                    "p99": summarize([p["p99"] for p in parts]), "errors": sum(p["errors"] for p in parts),
                    "first_error": next((p.get("first_error") for p in parts if p.get("first_error")), None),
                    "loadgen_cpu": max((p.get("loadgen_cpu", float("nan")) for p in parts), default=float("nan"))}
            rows.append(row)
    return {"model": model.label, "version_dir": str(model.version_dir), "rows": rows}


# --------------------------------------------------------------------------------------------
# Report.


def _range(stat: dict[str, float], digits: int = 0) -> str:
    if stat["median"] != stat["median"]:
        return "-"
    if stat["min"] == stat["max"]:
        return f"{stat['median']:.{digits}f}"
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}-{stat['max']:.{digits}f})"


def format_table(result: dict[str, Any]) -> str:
    """The side-by-side table of one model, with ratios at 16 clients against naive and the best peer."""
    rows = result["rows"]
    naive = next((r for r in rows if r["server"] == "naive"), None)
    best_peer = {kind: max((r for r in rows if r["server"] in PEER_SERVERS and r["kind"] == kind),
                           key=lambda r: r["c16"]["rps"]["median"], default=None) for kind in ("rest", "grpc")}
    lines = [f"### {result['model']}", "",
             ("| server | protocol | p50 c1 ms | p99 c1 ms | req/s c16 | p99 c16 ms | req/s c64 | p99 c64 ms "
              "| errors | RSS MB | ready s | c16 x naive | c16 x best peer |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c16 = r["c16"]["rps"]["median"]
        vs_naive = f"{c16 / naive['c16']['rps']['median']:.2f}" if naive and naive["c16"]["rps"]["median"] > 0 else "-"
        peer = best_peer[r["kind"]]
        vs_peer = (f"{c16 / peer['c16']['rps']['median']:.2f} ({peer['server']} {peer['protocol']})"
                   if peer and peer["c16"]["rps"]["median"] > 0 else "-")
        errors = sum(r[f"c{c}"]["errors"] for c in CONCURRENCY)
        check = "" if r["check"] is None else " **answer differs**"
        lines.append(f"| {r['server']}{check} | {r['protocol']} | {_range(r['c1']['p50'], 2)} | "
                     f"{_range(r['c1']['p99'], 2)} | {_range(r['c16']['rps'])} | {_range(r['c16']['p99'], 1)} | "
                     f"{_range(r['c64']['rps'])} | {_range(r['c64']['p99'], 1)} | {errors} | {r['rss_mb']:.0f} | "
                     f"{r['ready_s']:.1f} | {vs_naive} | {vs_peer} |")
    for r in rows:
        if r["check"]:
            lines.append(f"- {r['server']} {r['protocol']}: {r['check']}")
        for c in CONCURRENCY:
            if r[f"c{c}"]["first_error"]:
                lines.append(f"- {r['server']} {r['protocol']} c{c}: first error {r[f'c{c}']['first_error']}")
    return "\n".join(lines)


def pin_plan(mode: str) -> tuple[str | None, str | None]:
    """(server CPUs, load generator CPUs) as taskset lists; None = not pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "none" or len(cpus) < 2:
        return None, None
    return ",".join(map(str, cpus[:-1])), str(cpus[-1])


def resolve_pushed(pushed: Path | None, serving_dir: Path) -> Path | None:
    if pushed is None:
        return newest_pushed_model(serving_dir)
    if (pushed / "saved_model.pb").is_file():
        return pushed
    versions = sorted((int(p.name) for p in pushed.iterdir() if p.name.isdigit()), reverse=True) \
        if pushed.is_dir() else []
    for version in versions:
        if (pushed / str(version) / "saved_model.pb").is_file():
            return pushed / str(version)
    raise SystemExit(f"--pushed-model {pushed}: expected a SavedModel version dir or a model dir with integer "
                     "versions (make one with `bin/run`)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_grpcload"]:
        return grpcload_main()
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=",".join(SERVERS), help="comma-separated subset of " + ",".join(SERVERS))
    parser.add_argument("--pushed-model", type=Path,
                        help="pushed SavedModel version dir or model dir (default: newest under --serving-dir)")
    parser.add_argument("--serving-dir", type=Path, default=REPO / "runs" / "serving")
    parser.add_argument("--skip-cnn", action="store_true", help="only the pushed model")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each (default 1)")
    parser.add_argument("--quick", action="store_true", help="smoke form: 1 round of 1 s, 1 s warm-up")
    parser.add_argument("--pin", choices=("split", "none"), default="split",
                        help="split: load generator on the last CPU, servers on the others (default)")
    parser.add_argument("--setup-only", action="store_true", help="create the peer venvs and stop")
    parser.add_argument("--keep-work", action="store_true", help="keep the work dir (logs, models, payloads)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = [n for n in args.peers.split(",") if n]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or not names:
        parser.error(f"--peers: unknown {unknown or names!r}; expected a comma-separated subset of {','.join(SERVERS)}")
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 1.0, 1.0
    if args.rounds < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error(f"--rounds >= 1, --duration > 0, --warmup >= 0; got {args.rounds}, {args.duration}, {args.warmup}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk (the REST load generator) is missing: `apt-get install -y wrk` (Debian's package)")
    if args.pin == "split" and shutil.which("taskset") is None:
        raise SystemExit("taskset is missing (util-linux); install it or pass --pin none")
    python = peer_python() if any(n in VENV_PEERS for n in names) else ""
    venvs = {n: ensure_venv(n, python) for n in names if n in VENV_PEERS}
    if args.setup_only:
        return 0
    models: list[tuple[str, Path]] = []
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    uptime_before = Path("/proc/loadavg").read_text().split()[:3]
    started_at = time.monotonic()
    results = []
    try:
        if not args.skip_cnn:
            models.append(("CIFAR-sized CNN (untrained, 3 conv layers)", build_cifar_cnn(work / "cnn_src")))
        pushed = resolve_pushed(args.pushed_model, args.serving_dir)
        if pushed is None:
            print(f"note: no pushed model under {args.serving_dir}: run `bin/run` to make one, or pass "
                  "--pushed-model", file=sys.stderr)
        else:
            models.append((f"pushed model {pushed}", pushed))
        if not models:
            parser.error("nothing to measure: --skip-cnn and no pushed model")
        pins = pin_plan(args.pin)
        for index, (label, version_dir) in enumerate(models):
            model = Model(label, version_dir, work / f"m{index}")
            prepare_model(model)
            if "kserve" in venvs:
                for rows in (1, CHECK_ROWS):
                    target = model.work / f"v2_grpc_{rows}.bin"
                    _run_checked([str(venvs["kserve"] / "bin" / "python"), str(PEERS_DIR / "kserve_app.py"),
                                  "grpc-request", str(model.files[f"npy_{rows}"]), MODEL_NAME, str(target)],
                                 cwd=PEERS_DIR)
                    model.files[f"v2_grpc_{rows}"] = target
            result = bench_model(model, names, venvs, args.rounds, args.duration, args.warmup, pins)
            results.append(result)
            print(format_table(result) + "\n", flush=True)
    finally:
        if args.keep_work:
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    server_cpus, loadgen_cpus = pins
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "peer_python": python,
               "load_before": uptime_before, "load_after": Path("/proc/loadavg").read_text().split()[:3],
               "server_cpus": server_cpus, "loadgen_cpus": loadgen_cpus, "rounds": args.rounds,
               "duration_s": args.duration, "warmup_s": args.warmup, "seconds": time.monotonic() - started_at}
    print(f"Latency in ms, throughput in 1-row requests/s: median (min-max) over {args.rounds} interleaved round(s) "
          f"of {args.duration:g} s after {args.warmup:g} s warm-up; REST load from wrk (1 thread), gRPC from a "
          "grpcio process (one thread and channel per client); keep-alive clients. Ratios: req/s at 16 clients against the naive script and against "
          "the fastest peer of the same kind (REST or gRPC). RSS: the server's process tree, max over rounds. "
          f"Ready: launch to the first answered request. Answers checked on {CHECK_ROWS} rows against the "
          f"in-process model (atol {ATOL:g}, rtol {RTOL:g}).")
    print(f"Pinned: {'servers on CPU ' + server_cpus + ', load generators on CPU ' + loadgen_cpus if server_cpus else 'nothing'}"
          f"; {machine['cpus']} CPUs; 1/5/15-min load average {' '.join(uptime_before)} before, "
          f"{' '.join(machine['load_after'])} after; {machine['seconds']:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "models": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
