"""The short form of benchmarks/soak.py: clients on both protocols while versions swap, no failure.

No timing is asserted: the numbers are the script's to print (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_short_soak_serves_every_request_across_version_swaps() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--seconds", "40", "--reloads", "100",
         "--push-every", "1", "--clients", "3", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failures"] == 0, result["failure_examples"]
    assert result["requests"] > 0
    # Versions really swapped under the load (each: loaded, then the previous one retired).
    assert result["reloads"] >= 3, result
    assert {"first_load", "end"} <= set(result["rss_kib"])
