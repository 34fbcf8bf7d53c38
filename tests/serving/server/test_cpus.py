"""The usable cores (affinity, cgroup CPU quota) and the default process and thread counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serving.server import cpus


def _cgroup_v1(root: Path, quota_us: int, period_us: int = 100_000) -> Path:
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(f"{period_us}\n")
    return root


@pytest.mark.parametrize(
    ("text", "limit"), [("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000\n", 0.5)]
)
def test_cgroup_v2_cpu_max(tmp_path: Path, text: str, limit: float | None):
    (tmp_path / "cpu.max").write_text(text)
    assert cpus.cgroup_cpu_limit(tmp_path) == limit


def test_cgroup_v1_quota_and_no_quota(tmp_path: Path):
    assert cpus.cgroup_cpu_limit(_cgroup_v1(tmp_path / "a", 300_000)) == 3.0
    assert cpus.cgroup_cpu_limit(_cgroup_v1(tmp_path / "b", -1)) is None
    assert cpus.cgroup_cpu_limit(tmp_path / "nothing-here") is None


def test_usable_cpus_is_the_affinity_capped_by_the_quota_rounded_up(tmp_path: Path):
    affinity = len(os.sched_getaffinity(0))
    assert cpus.usable_cpus(tmp_path / "no-cgroup") == affinity
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "cpu.max").write_text("50000 100000\n")
    assert cpus.usable_cpus(tmp_path / "half") == 1  # half a core still needs one process
    (tmp_path / "many").mkdir()
    (tmp_path / "many" / "cpu.max").write_text("6400000 100000\n")
    assert cpus.usable_cpus(tmp_path / "many") == affinity


def test_usable_cpus_follows_the_affinity_mask(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert cpus.usable_cpus(tmp_path) == 1


@pytest.mark.parametrize(("cores", "processes"), [(1, 1), (2, 2), (3, 3), (4, 4), (64, cpus.MAX_DEFAULT_PROCESSES)])
def test_default_process_count_is_one_per_core_up_to_the_cap(cores: int, processes: int):
    assert cpus.default_process_count(cores) == processes


@pytest.mark.parametrize(("cores", "processes", "share"), [(2, 2, 1), (2, 1, 2), (8, 4, 2), (1, 2, 1), (3, 2, 1)])
def test_share_per_process(cores: int, processes: int, share: int):
    assert cpus.share_per_process(cores, processes) == share
