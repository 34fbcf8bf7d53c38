"""Wall time and peak memory of a cold pipeline run and of a cached rerun (a script, not a test).

    .venv/bin/python benchmarks/bench_pipeline.py [--runner beam|local] [--data digits] [--runs 1]

Each run is the real CLI (`python -m pipeline run`) in a fresh process, as a user runs it; the
cold run starts from an empty pipeline root and serving dir, the rerun reuses them (ExampleGen
through Trainer come from the cache; Evaluator and Pusher run again because the baseline is now
the first run's blessed model). Peak RSS and CPU time come from wait4() on that one child.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Measurement:
    label: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    exit_code: int
    accuracy: str
    states: str
    load: float


def _run(label: str, args: list[str]) -> tuple[Measurement, str]:
    load = os.getloadavg()[0]
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    accuracy = re.search(r"eval accuracy (\d\.\d+)", output)
    states = re.findall(r"^\[\d+/\d+\] \S+\s+(done|cached)", output, re.M)
    return (
        Measurement(
            label=label,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024.0,  # Linux reports KiB
            exit_code=process.returncode,
            accuracy=accuracy[1] if accuracy else "-",
            states=f"{states.count('done')} run, {states.count('cached')} cached",
            load=load,
        ),
        output,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner", choices=("beam", "local"), default="beam")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--runs", type=int, default=1, help="cold+cached pairs to measure (default 1)")
    parser.add_argument("--show-output", action="store_true", help="print each run's CLI output")
    args = parser.parse_args()

    results: list[Measurement] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
            common = ["--data", args.data, "--runner", args.runner,
                      "--pipeline-root", f"{scratch}/root", "--serving-dir", f"{scratch}/serving"]
            for label in ("cold", "cached rerun"):
                measurement, output = _run(label, common)
                results.append(measurement)
                if args.show_output or measurement.exit_code:
                    print(output)
                if measurement.exit_code:
                    print(f"{label} run failed with exit code {measurement.exit_code}", file=sys.stderr)
                    return 1

    print(f"pipeline benchmark: --data {args.data} --runner {args.runner}, {os.cpu_count()} CPUs")
    print(f"{'run':<13} {'wall s':>7} {'cpu s':>7} {'peak RSS MB':>12} {'eval acc':>9} {'load1':>6}  components")
    for m in results:
        print(f"{m.label:<13} {m.wall_s:7.1f} {m.cpu_s:7.1f} {m.peak_rss_mb:12.0f} {m.accuracy:>9} {m.load:6.1f}  {m.states}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
