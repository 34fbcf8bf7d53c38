"""The run report of a real pipeline run, and `python -m pipeline report` rebuilding it from ML Metadata (slow)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COMPONENTS = {"ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer", "latest_blessed_model_resolver",
              "Evaluator", "InfraValidator", "Pusher"}


def _pipeline(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _facts(page: str) -> dict:
    """What the page says, in a form two builds of the same run can be compared by."""
    return {
        "nodes": dict(re.findall(r'data-node="([^"]+)" data-state="([^"]+)"', page)),
        "cells": re.findall(r'<rect class="cell"[^>]*><title>([^<]*)</title>', page),
        "bars": re.findall(r'<rect class="bar"[^>]*><title>([^<]*)</title>', page),
        "story": re.search(r'<div class="verdict[^>]*>(.*?)</div>', page, re.S)[1],
    }


@pytest.mark.e2e
def test_run_writes_a_report_and_report_rebuilds_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = _pipeline("run", "--pipeline-root", str(root), "--serving-dir", str(tmp_path / "serving"),
                    "--epochs", "4", "--accuracy-threshold", "0.5")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "\x1b[K" not in run.stdout  # not a terminal: no live line
    path = Path(re.search(r"^report (\S+\.html)$", run.stdout, re.M)[1])
    assert path.parent == root / "reports" and path.is_file()
    page = path.read_text()
    facts = _facts(page)

    assert facts["nodes"] == {node: "ran" for node in COMPONENTS}
    assert "http://" not in page.replace("http://127.0.0.1", "") and "https://" not in page and "<script" not in page
    # Training curves from the Trainer's TensorBoard logs: 4 epochs, the best one marked.
    assert page.count('class="best"') == 2 and "Training ran 4 epoch(s)" in page
    # The confusion matrix covers the 10 digits and every eval example.
    assert len(facts["cells"]) == 100
    eval_examples = int(re.search(r"eval: (\d+) examples", page)[1])
    assert sum(float(c.rsplit(": ", 1)[1]) for c in facts["cells"]) == eval_examples
    accuracy = float(re.search(r"eval accuracy (\d\.\d+)", run.stdout)[1])
    assert f"accuracy {accuracy:.4f}" in page
    assert "no blessed baseline yet: skipped" in page
    assert len(re.findall(r'<img class="sample"', page)) == 10
    assert "request(s) sent and answered" in page
    assert "Pushed version <b>1</b>" in page and "Live check <span class=\"pass\">passed</span>" in page
    index = (root / "reports" / "index.html").read_text()
    assert f'href="{path.name}"' in index and "pushed version 1, live check passed" in index

    path.unlink()
    (root / "reports" / "index.html").unlink()
    rebuilt = _pipeline("report", str(root), timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert f"report {path}" in rebuilt.stdout
    assert _facts(path.read_text()) == facts
    assert (root / "reports" / "index.html").is_file()

    unknown = _pipeline("report", str(root), "--run", "no-such-run", timeout=300)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"error: no run no-such-run in {root}: expected one of {re.search(r'-pipeline-(.+)[.]html', path.name)[1]}"
    ]


@pytest.mark.e2e
def test_failed_run_report_names_the_component_and_why(tmp_path: Path, iris_csv: Path) -> None:
    lines = iris_csv.read_text().splitlines()
    # Every 7th row gets the label -1: ExampleGen and the data checks pass, the Trainer refuses it.
    bad = [lines[0]] + [line.rsplit(",", 1)[0] + ",-1" if i % 7 == 0 else line for i, line in enumerate(lines[1:])]
    csv = tmp_path / "bad.csv"
    csv.write_text("\n".join(bad) + "\n")
    root = tmp_path / "root"
    run = _pipeline("run", "--data", f"csv:{csv}", "--pipeline-root", str(root), "--serving-dir", str(tmp_path / "serving"),
                    "--no-infra-validator", "--no-live-check")
    assert run.returncode == 1, run.stdout + run.stderr[-3000:]
    path = Path(re.search(r"^report (\S+\.html)$", run.stdout, re.M)[1])
    facts = _facts(path.read_text())
    assert facts["nodes"]["Trainer"] == "failed" and facts["nodes"]["ExampleGen"] == "ran"
    assert "Evaluator" not in facts["nodes"] and "Pusher" not in facts["nodes"]
    # The Trainer names the module whose run_fn raised, then the module's own message.
    assert "The run failed in Trainer: nothing was pushed. Trainer failed: module file" in facts["story"]
    assert "components/trainer/model.py" in facts["story"]
    assert "run_fn raised TrainingDataError: label column &#x27;label&#x27; has negative value -1" in path.read_text()
    negatives = sum(int(b.rsplit(": ", 1)[1]) for b in facts["bars"] if b.startswith("-1 "))
    assert negatives == len(range(0, len(lines) - 1, 7))

    path.unlink()
    rebuilt = _pipeline("report", str(root), "--latest", timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert _facts(path.read_text()) == facts
