"""Writes run reports and the index under `<pipeline_root>/reports/`, reading ML Metadata through `mlmd.py`."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict
from html import unescape
from pathlib import Path
from typing import Optional, Sequence

from pipeline.report import mlmd, render
from pipeline.report.model import LiveCheck, RunEntry
from serving.layout import atomic_file

logger = logging.getLogger(__name__)

REPORTS_DIR = "reports"
INDEX_FILE = "index.html"


def reports_dir(pipeline_root: str) -> str:
    return os.path.join(pipeline_root, REPORTS_DIR)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def report_name(run: mlmd.PipelineRun) -> str:
    return f"{_slug(run.pipeline_name)}-{_slug(run.run_id)}.html"


def facts_path(pipeline_root: str, run: mlmd.PipelineRun) -> str:
    """What the CLI learnt about a run outside ML Metadata (live check, error message), beside its report."""
    return os.path.join(reports_dir(pipeline_root), report_name(run).removesuffix(".html") + ".run.json")


def _write(path: str, text: str) -> None:
    """Whole or nothing: a reader never sees half a page."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_file(Path(path)) as out:
        out.write(text.encode("utf-8"))


def load_facts(pipeline_root: str, run: mlmd.PipelineRun) -> dict:
    path = facts_path(pipeline_root, run)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            facts = json.load(handle)
        return facts if isinstance(facts, dict) else {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return {}


def save_facts(pipeline_root: str, *, live_check: Optional[LiveCheck] = None, error: Optional[str] = None) -> Optional[str]:
    """Adds the live check and/or the error message to the latest run's facts file."""
    runs = mlmd.list_runs(mlmd.open_store(pipeline_root))
    if not runs:
        return None
    facts = load_facts(pipeline_root, runs[-1])
    if live_check is not None:
        facts["live_check"] = asdict(live_check)
    if error is not None:
        facts["error"] = error
    path = facts_path(pipeline_root, runs[-1])
    _write(path, json.dumps(facts, indent=1))
    return path


def _live_check(facts: dict) -> Optional[LiveCheck]:
    data = facts.get("live_check")
    try:
        return LiveCheck(ok=bool(data["ok"]), version=data.get("version"), summary=str(data["summary"]),
                         endpoints=tuple(data.get("endpoints") or ())) if data else None
    except (KeyError, TypeError, AttributeError) as exc:
        logger.warning("ignoring an unreadable live check record: %s", exc)
        return None


def write_reports(pipeline_root: str, *, run_ids: Optional[Sequence[str]] = None, latest_only: bool = False) -> list[str]:
    """Writes the reports of the chosen runs (default: all) and the index; returns the report paths.

    The index lists every run; for runs whose page is not rebuilt now, it reads only ML Metadata.
    """
    pipeline_root = os.path.abspath(pipeline_root)
    store = mlmd.open_store(pipeline_root)
    runs = mlmd.list_runs(store)
    if not runs:
        raise mlmd.ReportError(f"no pipeline runs recorded in {os.path.join(pipeline_root, mlmd.METADATA_FILE)}")
    if run_ids:
        unknown = sorted(set(run_ids) - {r.run_id for r in runs})
        if unknown:
            raise mlmd.ReportError(f"no run {', '.join(unknown)} in {pipeline_root}: expected one of {', '.join(r.run_id for r in runs)}")
        chosen = [r for r in runs if r.run_id in run_ids]
    else:
        chosen = runs[-1:] if latest_only else runs
    written, entries = [], []
    for run in runs:
        report = mlmd.load_run(store, run, pipeline_root) if run in chosen else None
        name = report_name(run)
        path = os.path.join(reports_dir(pipeline_root), name)
        if report is not None:
            facts = load_facts(pipeline_root, run)
            report.live_check, report.error = _live_check(facts), str(facts.get("error") or "")
            _write(path, render.render_run(report, index_name=INDEX_FILE))
            written.append(path)
            entries.append(RunEntry(run.run_id, name, report.started or run.created, render.outcome(report), run.pipeline_name))
        elif os.path.isfile(path):
            entries.append(RunEntry(run.run_id, name, run.created, _indexed_outcome(pipeline_root, name), run.pipeline_name))
        else:
            entries.append(RunEntry(run.run_id, "", run.created, "no report yet (python -m pipeline report)", run.pipeline_name))
    _write(os.path.join(reports_dir(pipeline_root), INDEX_FILE), render.render_index(pipeline_root, entries))
    return written


def _indexed_outcome(pipeline_root: str, name: str) -> str:
    """The outcome a page carries in its title attribute of the verdict, else a pointer to it."""
    try:
        with open(os.path.join(reports_dir(pipeline_root), name), encoding="utf-8") as handle:
            match = re.search(r'<meta name="outcome" content="([^"]*)"', handle.read(4096))
        return unescape(match[1]) if match else "see the report"
    except OSError:
        return "see the report"
