"""`bench`: the benchmark script a test module names in SCRIPT, imported as `python benchmarks/<SCRIPT>.py` would."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest) -> ModuleType:
    # benchmarks/ holds scripts, not a package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        return importlib.import_module(request.module.SCRIPT)
