"""Where a server process's memory (RSS) goes: its start-up step by step, then whole servers under load.

    .venv/bin/python benchmarks/profile_rss.py [--model VERSION_DIR] [--duration 5] [--pin 0] [--json PATH]

1. Steps: a fresh interpreter repeats what one `python -m serving.server` process does, in its
   order, and reads /proc/self/status after each step (VmRSS, RssAnon, RssFile, threads):
   the server's own modules, `import tensorflow` (as the server imports it, after capping
   glibc's malloc arenas, and the plain way, which imports Keras too), grpc / aiohttp / TF Serving APIs, the SavedModel load
   (`load_servable`), the first call, 200 more calls, then `malloc_trim(0)` (what glibc held).
2. Servers: `python -m serving.server --num_server_processes=1` (batching on, the default),
   the same with other environments (`--env 'MALLOC_ARENA_MAX=16'`, glibc malloc tunables), and
   `benchmarks/naive_server.py`, all side by side, each pinned to CPU `--pin` as in the peers
   benchmark; RSS of each process tree once ready, then after 16 and 64 concurrent 1-row
   clients for `--duration` s each on REST and on gRPC.

The model is the CIFAR-sized CNN that bench_serving.py builds (or `--model`), requests and the
load generator are bench_serving.py's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_peers import descendants
from bench_serving import MODEL_NAME, REPO, Floor, LoadGenerator, build_cifar_cnn, plan_tests, running, \
    server_command, write_payloads
from serving.process import free_port

# Runs in a fresh interpreter: argv[1] the SavedModel version dir, argv[2] "server" (as
# serving.server.main: malloc arenas capped, TF without Keras) or "plain" (neither). One JSON
# line per step on stdout.
STEPS_CODE = r"""
import ctypes, json, os, sys, time
import numpy as np

def mark(step, began):
    fields = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "Threads"):
            fields[key] = int(value.split()[0])
    print(json.dumps({"step": step, "seconds": round(time.perf_counter() - began, 2), "modules": len(sys.modules),
                      "keras": "tf_keras" in sys.modules or "keras" in sys.modules, **fields}), flush=True)
    return time.perf_counter()

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
t = time.perf_counter()
from serving.server import main, model_server
t = mark("python + serving.server.main, model_server (no TF)", t)
if sys.argv[2] == "server":
    main.cap_malloc_arenas()
    tf = model_server.import_tensorflow_without_keras()
    t = mark("import tensorflow (as the server does: arenas capped, no Keras)", t)
else:
    import tensorflow as tf
    t = mark("import tensorflow (plain: TF imports tf_keras)", t)
import grpc, aiohttp
from serving.server import batching, core, grpc_api, health, metrics, rest
t = mark("grpc, aiohttp, TF Serving APIs, server modules", t)
from serving.server.servable import load_servable
servable = load_servable("bench", 1, sys.argv[1])
t = mark("SavedModel load (load_servable)", t)
signature = servable.signature("")
(name,) = signature.input_specs
dims = [d if d > 0 else 1 for d in signature.input_dims[name]]
one = np.zeros(dims, signature.input_dtypes[name])
servable.run(signature, {name: one})
t = mark("first call (1 row)", t)
many = np.zeros([64, *dims[1:]], signature.input_dtypes[name])
for _ in range(100):
    servable.run(signature, {name: one})
    servable.run(signature, {name: many})
t = mark("200 more calls (1 and 64 rows)", t)
ctypes.CDLL("libc.so.6").malloc_trim(0)
mark("malloc_trim(0)", t)
"""

STATUS_FIELDS = ("VmRSS", "RssAnon", "RssFile", "Threads")


def status(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon / RssFile (kB) and Threads of one process."""
    fields = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in STATUS_FIELDS:
                fields[key] = int(value.split()[0])
    return fields


def tree_status(pid: int) -> dict[str, int]:
    """`status` summed over `pid` and its descendants, plus their count."""
    total = {key: 0 for key in STATUS_FIELDS}
    members = [pid, *descendants(pid)]
    for member in members:
        for key, value in status(member).items():
            total[key] += value
    return {**total, "processes": len(members)}


def profile_steps(version_dir: Path, mode: str) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", STEPS_CODE, str(version_dir), mode], cwd=REPO, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"step profile ({mode}) failed:\n{result.stderr[-3000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def profile_servers(version_dir: Path, work: Path, duration: float, pin: str,
                    env_variants: list[list[str]]) -> list[dict[str, Any]]:
    base = work / MODEL_NAME
    base.mkdir(parents=True)
    os.symlink(version_dir.resolve(), base / "1")
    payloads, _ = write_payloads(work, Floor(version_dir))
    prefix = ["taskset", "-c", pin] if pin != "none" else []
    variants = [("ours", "ours", {}),
                *((f"ours {' '.join(env)}", "ours", dict(e.split("=", 1) for e in env)) for env in env_variants),
                ("naive", "naive", {})]
    rows: list[dict[str, Any]] = []
    loadgen = LoadGenerator()
    try:
        with contextlib.ExitStack() as stack:
            started = []
            for label, variant, env in variants:
                ports = (free_port(), free_port())
                command, ready = server_command(variant, version_dir, base, *ports, work / "unused.pbtxt")
                if variant == "ours":
                    command.append("--num_server_processes=1")
                # taskset and env exec the server: the pid started is the server's.
                command = [*prefix, *(["env", *(f"{k}={v}" for k, v in env.items())] if env else []), *command]
                began = time.monotonic()
                process = stack.enter_context(running(command, ready, work / f"{len(started)}.log"))
                started.append((label, variant, ports, process.pid, time.monotonic() - began))
                time.sleep(1.0)  # let start-up's transient threads finish
            for label, variant, ports, pid, ready_s in started:
                rows.append({"server": label, "stage": "ready", "ready_s": round(ready_s, 1), **tree_status(pid)})
            for label, variant, ports, pid, _ in started:
                for test in plan_tests(variant, ports, payloads):
                    if not test["name"].endswith("throughput c16"):
                        continue
                    # 16 clients, then 64 (as the peers benchmark's rounds): bigger batches.
                    for clients in (16, 64):
                        result = loadgen.run({**test, "concurrency": clients, "duration": duration, "warmup": 0.5})
                        rows.append({"server": label, "stage": f"after {test['protocol']} c{clients}",
                                     **tree_status(pid), "req_s": round(len(result["latencies"]) / duration),
                                     "errors": result["errors"]})
    finally:
        loadgen.close()
    return rows


def format_steps(mode: str, steps: list[dict[str, Any]]) -> str:
    lines = [f"| step ({mode}) | s | RSS MB | +MB | anon MB | file MB | threads | modules | Keras imported |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    previous = 0
    for step in steps:
        rss = step["VmRSS"] / 1024
        lines.append(f"| {step['step']} | {step['seconds']:.2f} | {rss:.0f} | {rss - previous:+.0f} | "
                     f"{step['RssAnon'] / 1024:.0f} | {step['RssFile'] / 1024:.0f} | {step['Threads']} | "
                     f"{step['modules']} | {'yes' if step['keras'] else 'no'} |")
        previous = rss
    return "\n".join(lines)


def format_servers(rows: list[dict[str, Any]]) -> str:
    lines = ["| server | when | RSS MB | anon MB | file MB | threads | processes | req/s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['server']} | {row['stage']} | {row['VmRSS'] / 1024:.0f} | {row['RssAnon'] / 1024:.0f} | "
                     f"{row['RssFile'] / 1024:.0f} | {row['Threads']} | {row['processes']} | {row.get('req_s', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a SavedModel version dir (default: the CNN, built here)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per protocol")
    parser.add_argument("--pin", default="0", help="CPU list for the servers (taskset -c), or none")
    parser.add_argument("--env", action="append", default=[], metavar="'K=V [K=V]'",
                        help="also run ours with these environment variables (repeatable; default: "
                             "MALLOC_ARENA_MAX=16, glibc's own limit on 2 cores, which the server's cap of 2 replaces)")
    parser.add_argument("--skip-servers", action="store_true", help="only the step profile")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.model is not None and not (args.model / "saved_model.pb").is_file():
        parser.error(f"--model {args.model}: no saved_model.pb there; expected a SavedModel version dir")
    bad = [item for spec in args.env for item in spec.split() if "=" not in item]
    if bad:
        parser.error(f"--env {bad[0]!r}: expected NAME=VALUE pairs separated by spaces")
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="profile-rss-"))
    try:
        version_dir = args.model or build_cifar_cnn(work / "cnn")
        result: dict[str, Any] = {"steps": {mode: profile_steps(version_dir, mode) for mode in ("server", "plain")}}
        for mode, steps in result["steps"].items():
            print(format_steps(mode, steps) + "\n", flush=True)
        if not args.skip_servers:
            env_variants = [spec.split() for spec in args.env or ["MALLOC_ARENA_MAX=16"]]
            result["servers"] = profile_servers(version_dir, work / "servers", args.duration, args.pin, env_variants)
            print(format_servers(result["servers"]) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(f"{os.cpu_count()} CPUs; load average {' / '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
