"""Wall time, per-component time and peak memory of real pipeline runs (a script, not a test).

    .venv/bin/python benchmarks/bench_pipeline.py [--runner beam|local] [--data digits] [--runs 1]
    .venv/bin/python benchmarks/bench_pipeline.py --scale 1 --scale 0.25 [--epochs 2] [-- CLI ARGS]

Each run is the real CLI (`python -m pipeline run`) in a fresh process, as a user runs it. On
`--data` (default the bundled digits) it measures a cold run from an empty pipeline root and
serving dir, then a cached rerun of the same root (ExampleGen through Trainer come from the
cache; Evaluator and Pusher run again because the baseline is now the first run's blessed model).

`--scale S` (repeatable) instead writes a synthetic CIFAR-10 in the real format,
`cifar-10-python.tar.gz` with data_batch_1..5 and test_batch (pickled dicts of uint8 [N, 3072]
channel-first pixels and labels), 10,000 x S images per batch, and measures cold runs on it
(`--data cifar10:PATH --epochs 2`): one table per size, so the sizes show how cost grows with
data. The images are learnable: each class is a blocky colour pattern under heavy pixel noise.
Files are kept in `--data-dir` and reused. Arguments after `--` go to the CLI unchanged.

Per-component seconds are ML Metadata's execution times (create to last update), read with the
run report's reader; beside them, the CPU seconds the CLI's process tree spent until that
component's progress line (the first one includes start-up and imports), which stay
meaningful when other work shares the cores. Peak RSS: `max1` is the largest single process (wait4 on the child, which
covers its descendants one at a time); `sum` is the largest total of the process tree, sampled
every 0.2 s (Beam multi-processing workers and model-server processes run beside the CLI).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
CIFAR_BATCH_SIZE = 10_000
CIFAR_CLASSES = 10
PROGRESS_LINE = re.compile(r"^\[\d+/\d+\] (\S+)\s+(done|cached)")


@dataclass
class Measurement:
    label: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    tree_rss_mb: float
    exit_code: int
    accuracy: str
    states: str
    load: float
    components: dict[str, float] = field(default_factory=dict)  # node id -> ML Metadata seconds
    # node id -> process-tree CPU seconds since the previous component finished (the first one
    # includes the CLI's start-up and imports)
    component_cpu: dict[str, float] = field(default_factory=dict)


# --- synthetic CIFAR-10 ---------------------------------------------------------------------


def cifar_batch(rng: np.random.Generator, patterns: np.ndarray, count: int, name: str) -> bytes:
    """One pickled batch as the CIFAR-10 python version holds it: b'data' uint8 [N, 3072] (R, G, B planes)."""
    labels = rng.integers(0, CIFAR_CLASSES, size=count)
    noise = rng.normal(0.0, 48.0, size=(count, 32, 32, 3)).astype(np.float32)
    images = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels.tolist(),
        b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(count, 3072)),
        b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(count)],
    }
    return pickle.dumps(batch, protocol=4)


def write_synthetic_cifar10(path: Path, scale: float, *, seed: int = 0) -> Path:
    """Writes `cifar-10-python.tar.gz` with 50,000 x scale train and 10,000 x scale test images."""
    if scale <= 0:
        raise ValueError(f"--scale {scale}: expected a positive share of CIFAR-10's size, such as 1 or 0.25")
    count = max(1, round(CIFAR_BATCH_SIZE * scale))
    rng = np.random.default_rng(seed)
    # 4x4 colour blocks per class, scaled up to 32x32: a CNN separates them through the noise.
    patterns = rng.uniform(40, 215, size=(CIFAR_CLASSES, 4, 4, 3)).astype(np.float32).repeat(8, 1).repeat(8, 2)
    partial = path.with_name(path.name + ".partial")
    with tarfile.open(partial, "w:gz", compresslevel=1) as archive:
        for name in CIFAR_BATCHES:
            payload = cifar_batch(rng, patterns, count, name)
            info = tarfile.TarInfo(f"{CIFAR_DIR}/{name}")
            info.size, info.mtime = len(payload), int(time.time())
            archive.addfile(info, io.BytesIO(payload))
    partial.replace(path)
    return path


def synthetic_cifar10(data_dir: Path, scale: float) -> Path:
    """The synthetic tarball for `scale` in `data_dir`, written once and reused."""
    path = data_dir / f"cifar-10-synthetic-x{scale:g}" / "cifar-10-python.tar.gz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        write_synthetic_cifar10(path, scale)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s", flush=True)
    return path


# --- one measured run -----------------------------------------------------------------------


class ProcessTree:
    """Largest total RSS and the CPU time of a process and its descendants, sampled in a thread.

    CPU time sums the last reading of every process seen, so children that exit (Beam workers,
    model servers) still count, up to one sampling interval of their life.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval, self.peak_rss = pid, interval, 0
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for process in processes:
            try:
                with process.oneshot():
                    total += process.memory_info().rss
                    times = process.cpu_times()
            except psutil.Error:
                continue  # exited between the listing and the read
            with self._lock:
                self._cpu[process.pid] = times.user + times.system
        self.peak_rss = max(self.peak_rss, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def cpu_seconds(self) -> float:
        self.sample()
        with self._lock:
            return sum(self._cpu.values())

    def stop(self) -> float:
        """Stops sampling; returns the peak total RSS in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak_rss / 2**20


def component_seconds(pipeline_root: str) -> dict[str, float]:
    """node id -> seconds of the latest run, from ML Metadata (the run report's reader)."""
    from pipeline.report import mlmd

    return {c.node_id: c.seconds for c in mlmd.latest_run_components(pipeline_root) if c.seconds is not None}


def run_cli(label: str, args: list[str], pipeline_root: str) -> tuple[Measurement, str]:
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    tree = ProcessTree(process.pid)
    assert process.stdout is not None
    lines, cpu_at = [], {}
    # A component's line is printed when it finishes: the tree's CPU time then, per component.
    for line in process.stdout:
        lines.append(line)
        finished = PROGRESS_LINE.match(line)
        if finished:
            cpu_at[finished[1]] = tree.cpu_seconds()
    output = "".join(lines)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    tree_mb = tree.stop()
    accuracy = re.search(r"eval accuracy (\d\.\d+)", output)
    states = [m[2] for m in map(PROGRESS_LINE.match, lines) if m]
    try:
        seconds = component_seconds(pipeline_root)
    except Exception as exc:  # noqa: BLE001 - a failed run may leave no store; the table says so
        print(f"{label}: no ML Metadata times ({exc})", file=sys.stderr)
        seconds = {}
    return (
        Measurement(
            label=label,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024.0,  # Linux reports KiB
            tree_rss_mb=tree_mb,
            exit_code=process.returncode,
            accuracy=accuracy[1] if accuracy else "-",
            states=f"{states.count('done')} run, {states.count('cached')} cached",
            load=load,
            components=seconds,
            component_cpu={node: cpu - previous for (node, cpu), previous in zip(cpu_at.items(), [0.0, *cpu_at.values()])},
        ),
        output,
    )


# --- tables ---------------------------------------------------------------------------------


def print_runs(results: list[Measurement]) -> None:
    print(f"{'run':<22} {'wall s':>7} {'cpu s':>7} {'RSS max1 MB':>12} {'RSS sum MB':>11} {'eval acc':>9} {'load1':>6}  components")
    for m in results:
        print(f"{m.label:<22} {m.wall_s:7.1f} {m.cpu_s:7.1f} {m.peak_rss_mb:12.0f} {m.tree_rss_mb:11.0f} "
              f"{m.accuracy:>9} {m.load:6.1f}  {m.states}")


def print_components(results: list[Measurement]) -> None:
    """Per run: each component's ML Metadata seconds and the CPU seconds of the process tree until it finished."""
    nodes: list[str] = []
    for m in results:
        nodes += [node for node in m.components if node not in nodes]
    width = max([len(n) for n in nodes] + [len("outside components")])
    print(f"{'':<{width}} " + " ".join(f"{m.label:>19}" for m in results))
    print(f"{'component':<{width}} " + " ".join(f"{'wall s':>9} {'cpu s':>9}" for _ in results))
    for node in nodes:
        cells = []
        for m in results:
            wall = f"{m.components[node]:9.1f}" if node in m.components else f"{'-':>9}"
            cpu = f"{m.component_cpu[node]:9.1f}" if node in m.component_cpu else f"{'-':>9}"
            cells.append(f"{wall} {cpu}")
        print(f"{node:<{width}} " + " ".join(cells))
    print(f"{'outside components':<{width}} " + " ".join(
        f"{m.wall_s - sum(m.components.values()):9.1f} {m.cpu_s - sum(m.component_cpu.values()):9.1f}" for m in results))
    print(f"{'whole run':<{width}} " + " ".join(f"{m.wall_s:9.1f} {m.cpu_s:9.1f}" for m in results))


def measure_digits(args: argparse.Namespace, cli_args: list[str]) -> list[Measurement]:
    results: list[Measurement] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
            root = f"{scratch}/root"
            common = ["--data", args.data, "--runner", args.runner, "--pipeline-root", root,
                      "--serving-dir", f"{scratch}/serving", *cli_args]
            for label in ("cold", "cached rerun"):
                measurement, output = run_cli(label, common, root)
                results.append(measurement)
                if args.show_output or measurement.exit_code:
                    print(output)
                if measurement.exit_code:
                    raise SystemExit(f"{label} run failed with exit code {measurement.exit_code}")
    return results


def measure_scales(args: argparse.Namespace, cli_args: list[str]) -> list[Measurement]:
    data_dir = Path(args.data_dir)
    tarballs = {scale: synthetic_cifar10(data_dir, scale) for scale in args.scale}
    results: list[Measurement] = []
    for repeat in range(args.runs):
        for scale, tarball in tarballs.items():
            with tempfile.TemporaryDirectory(prefix="bench-pipeline-", dir=args.data_dir) as scratch:
                root = f"{scratch}/root"
                label = f"cold x{scale:g}" + (f" #{repeat + 1}" if args.runs > 1 else "")
                measurement, output = run_cli(label, [
                    "--data", f"cifar10:{tarball}", "--runner", args.runner, "--epochs", str(args.epochs),
                    "--pipeline-root", root, "--serving-dir", f"{scratch}/serving", *cli_args,
                ], root)
                results.append(measurement)
                if args.show_output or measurement.exit_code:
                    print(output)
                if measurement.exit_code:
                    raise SystemExit(f"{label} run failed with exit code {measurement.exit_code}")
                print(f"{label}: {measurement.wall_s:.1f} s, load1 {measurement.load:.1f}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", choices=("beam", "local"), default="beam")
    parser.add_argument("--data", default="digits", help="data of the cold+cached pairs (without --scale)")
    parser.add_argument("--scale", type=float, action="append", metavar="S",
                        help="synthetic CIFAR-10 at S x the full size (repeatable: --scale 1 --scale 0.25)")
    parser.add_argument("--epochs", type=int, default=2, help="--epochs for the synthetic CIFAR-10 runs (default 2)")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "bench-pipeline-data"),
                        help="where synthetic tarballs are kept and runs write (default %(default)s)")
    parser.add_argument("--runs", type=int, default=1, help="repeats (default 1)")
    parser.add_argument("--json", metavar="FILE", help="also write the measurements as JSON")
    parser.add_argument("--show-output", action="store_true", help="print each run's CLI output")
    parser.add_argument("cli_args", nargs=argparse.REMAINDER, help="after --: more `pipeline run` arguments")
    args = parser.parse_args()
    cli_args = args.cli_args[1:] if args.cli_args[:1] == ["--"] else args.cli_args

    results = measure_scales(args, cli_args) if args.scale else measure_digits(args, cli_args)
    data = f"synthetic CIFAR-10 x{', x'.join(f'{s:g}' for s in args.scale)}, --epochs {args.epochs}" if args.scale else args.data
    print(f"pipeline benchmark: {data}, --runner {args.runner} {' '.join(cli_args)}, {os.cpu_count()} CPUs")
    print_runs(results)
    print()
    print_components(results)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(m) for m in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
