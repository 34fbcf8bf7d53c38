"""How many CPU cores this server may use, and the default process and thread counts drawn from it.

`os.cpu_count()` counts the machine's cores; a server pinned with `taskset` or limited by a
container's CPU quota (Docker `--cpus`, a Kubernetes CPU limit) can use fewer, and sizing
processes or threads by the machine's count would oversubscribe the ones it has.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# Each server process holds its own copy of every model (about 0.5 GB for a small Keras model
# with TensorFlow), so the default stops here however many cores there are; measured on 2 cores
# only (docs/serving-benchmark.md). More with an explicit --num_server_processes=N.
MAX_DEFAULT_PROCESSES = 4

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = _CGROUP_ROOT) -> float | None:
    """The container's CPU quota in cores (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` /
    `cpu.cfs_period_us`), or None when there is none or it cannot be read."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or "100000")
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def usable_cpus(root: Path = _CGROUP_ROOT) -> int:
    """The cores this process may run on (its affinity mask), capped by the cgroup CPU quota
    rounded up; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def default_process_count(cpus: int) -> int:
    """`--num_server_processes=0` (the default): one server process per usable core, at most
    MAX_DEFAULT_PROCESSES."""
    return max(1, min(cpus, MAX_DEFAULT_PROCESSES))


def share_per_process(cpus: int, processes: int) -> int:
    """Threads of one kind (TF intra-op, inter-op, batch threads) for each of `processes`
    processes sharing `cpus` cores: their share, at least 1."""
    return max(1, cpus // max(1, processes))
