"""`python -m pipeline report PIPELINE_ROOT`, and the report the `run` command writes after every run."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, TextIO

from pipeline.report import build, mlmd
from pipeline.report.model import LiveCheck

logger = logging.getLogger(__name__)

def add_parser(commands: Any) -> argparse.ArgumentParser:  # argparse's subparsers action
    """The `report` subcommand on the CLI's subparsers."""
    parser = commands.add_parser(
        "report",
        help="rebuild the HTML run reports and the index from ML Metadata",
        description="Rebuilds <PIPELINE_ROOT>/reports/<pipeline>-<run>.html for past runs from ML Metadata and the "
                    "artifacts it points to, and the index of all runs (reports/index.html).",
    )
    parser.add_argument("pipeline_root", metavar="PIPELINE_ROOT", help="the --pipeline-root of earlier runs (holds metadata.sqlite)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--run", action="append", metavar="RUN_ID", help="only this run (repeatable; ids are in the index)")
    which.add_argument("--latest", action="store_true", help="only the latest run")
    parser.add_argument("-v", "--verbose", action="store_true", help="show TF logs and warnings")
    return parser


def report_command(args: argparse.Namespace, *, out: TextIO = sys.stdout) -> list[str]:
    """Writes the chosen reports and the index and prints their paths; raises ReportError for a bad root or run."""
    if not os.path.isdir(args.pipeline_root):
        raise mlmd.ReportError(
            f"pipeline root {args.pipeline_root!r} is not a directory: expected the --pipeline-root of an earlier run"
        )
    paths = build.write_reports(args.pipeline_root, run_ids=args.run, latest_only=args.latest)
    for path in paths:
        print(f"report {path}", file=out)
    print(f"index  {os.path.join(build.reports_dir(os.path.abspath(args.pipeline_root)), build.INDEX_FILE)}", file=out)
    return paths


def live_check_record(report: Any) -> LiveCheck:
    """serving.live_check's LiveCheckReport as the report's plain record."""
    return LiveCheck(ok=bool(report.ok), version=report.version, summary=report.summary(),
                     endpoints=tuple(check.summary() for check in report.checks) or ((report.reason,) if report.reason else ()))


def save_live_check(pipeline_root: str, report: Any) -> None:
    """Keeps a live check for the latest run's report; a failure here is logged, never raised."""
    try:
        build.save_facts(pipeline_root, live_check=live_check_record(report))
    except Exception as exc:  # noqa: BLE001 - never fail the run for its report
        logger.warning("could not save the live check for the report: %s", exc)


def save_error(pipeline_root: str, message: str) -> None:
    """Keeps why the latest run failed (ML Metadata records only that it did); never raises."""
    try:
        build.save_facts(pipeline_root, error=message)
    except Exception as exc:  # noqa: BLE001 - never fail the run for its report
        logger.debug("could not save the error for the report: %s", exc)


def report_after_run(pipeline_root: str, out: TextIO) -> None:
    """Writes the latest run's report and the index, and prints the report's path (never raises)."""
    try:
        paths = build.write_reports(pipeline_root, latest_only=True)
    except Exception as exc:  # the run's own result stands; say why there is no report
        logger.debug("report failed", exc_info=True)
        print(f"no run report: {exc}", file=out, flush=True)
        return
    for path in paths:
        print(f"report {path}", file=out, flush=True)
