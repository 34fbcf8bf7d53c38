"""Beam pipeline arguments for the runners the pipeline scales out on, checked by Beam itself.

Every TFX component that does data work (ExampleGen, StatisticsGen, Transform, Evaluator, ...)
runs a Beam pipeline with the `beam_pipeline_args` given to `create_pipeline`. This module
builds those lists for four targets and validates them with
`apache_beam.options.pipeline_options.PipelineOptions`, so a typo fails at compile time on
the laptop instead of an hour later in the cluster:

- `direct`: the DirectRunner in multi-processing mode, one machine, all cores;
- `flink`: a Flink cluster, SDK workers from a worker-pool sidecar (`EXTERNAL`);
- `spark`: a Spark cluster, same worker model;
- `dataflow`: Google Cloud Dataflow, SDK workers from the project's pipeline image.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from apache_beam.options.pipeline_options import (
    DirectOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PipelineOptions,
    PortableOptions,
    SparkRunnerOptions,
    StandardOptions,
    WorkerOptions,
)

logger = logging.getLogger(__name__)

RUNNERS: Mapping[str, str] = {
    "direct": "DirectRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "dataflow": "DataflowRunner",
}

# The Beam SDK worker pool that runs beside a Flink task manager or Spark worker listens here
# (the pipeline image started with `/opt/apache/beam/boot --worker_pool`).
DEFAULT_WORKER_POOL = "localhost:50000"


class BeamArgsError(ValueError):
    """Beam pipeline arguments that Beam would reject or that miss what a runner needs."""


@dataclass(frozen=True)
class BeamSettings:
    """What differs between runners; `beam_args` turns it into command-line flags.

    runner: one of RUNNERS' keys.
    workers: direct: processes (0 = one per core); flink/spark: parallelism;
        dataflow: maximum number of workers. None leaves the runner's default.
    master: flink: the JobManager REST address (`host:8081`); spark: the master URL
        (`spark://host:7077`).
    rest_url: spark only: the Spark REST submission URL (`http://host:6066`).
    worker_pool: flink/spark: address of the Beam SDK worker pool.
    project, region, temp_location: dataflow: the Google Cloud project, region and a
        `gs://` scratch path.
    image: dataflow: the SDK container image (the project's pipeline image).
    service_account: dataflow: the workers' service account e-mail.
    extra: further `--flag=value` arguments, appended last (later flags win in Beam).
    """

    runner: str = "direct"
    workers: int | None = None
    master: str | None = None
    rest_url: str | None = None
    worker_pool: str = DEFAULT_WORKER_POOL
    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    image: str | None = None
    service_account: str | None = None
    extra: Sequence[str] = field(default_factory=tuple)


def beam_args(settings: BeamSettings) -> list[str]:
    """Returns the Beam flags for `settings`, validated by Beam's own option parser."""
    if settings.runner not in RUNNERS:
        raise BeamArgsError(
            f"unknown Beam runner {settings.runner!r}: expected one of {', '.join(RUNNERS)}"
        )
    if settings.workers is not None and settings.workers < 0:
        raise BeamArgsError(f"workers must be >= 0, got {settings.workers}")
    build = {
        "direct": _direct,
        "flink": _flink,
        "spark": _spark,
        "dataflow": _dataflow,
    }[settings.runner]
    args = [f"--runner={RUNNERS[settings.runner]}", *build(settings), *settings.extra]
    validate_beam_args(args)
    return args


def _direct(s: BeamSettings) -> list[str]:
    workers = 0 if s.workers is None else s.workers
    # multi_processing sidesteps the GIL; 0 workers means one per core.
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


def _portable_environment(s: BeamSettings) -> list[str]:
    # EXTERNAL: the SDK harness is the project image running as a worker-pool sidecar, so
    # workers have TFX and the project's packages without Docker-in-Docker.
    return ["--environment_type=EXTERNAL", f"--environment_config={s.worker_pool}"]


def _flink(s: BeamSettings) -> list[str]:
    _require(s, "master", "the Flink JobManager REST address, e.g. flink-jobmanager:8081")
    args = [f"--flink_master={s.master}", "--flink_submit_uber_jar", *_portable_environment(s)]
    if s.workers:
        args.append(f"--parallelism={s.workers}")
    return args


def _spark(s: BeamSettings) -> list[str]:
    _require(s, "master", "the Spark master URL, e.g. spark://spark-master:7077")
    _require(s, "rest_url", "the Spark REST submission URL, e.g. http://spark-master:6066")
    if not s.master.startswith("spark://"):  # type: ignore[union-attr]
        raise BeamArgsError(f"Spark master must look like spark://HOST:PORT, got {s.master!r}")
    return [
        f"--spark_master_url={s.master}",
        "--spark_submit_uber_jar",
        f"--spark_rest_url={s.rest_url}",
        *_portable_environment(s),
    ]


def _dataflow(s: BeamSettings) -> list[str]:
    _require(s, "project", "the Google Cloud project id")
    _require(s, "region", "the Dataflow region, e.g. europe-west1")
    _require(s, "temp_location", "a gs:// path for Dataflow's temporary files")
    if not s.temp_location.startswith("gs://"):  # type: ignore[union-attr]
        raise BeamArgsError(f"Dataflow temp_location must be a gs:// path, got {s.temp_location!r}")
    args = [
        f"--project={s.project}",
        f"--region={s.region}",
        f"--temp_location={s.temp_location}",
    ]
    if s.image:
        # Custom container: workers run the same image as the KFP components.
        args += [f"--sdk_container_image={s.image}", "--experiments=use_runner_v2"]
    if s.workers:
        args.append(f"--max_num_workers={s.workers}")
    if s.service_account:
        args.append(f"--service_account_email={s.service_account}")
    return args


# The `python -m kubeflow compile` option that sets each BeamSettings field, for error messages.
_COMPILE_OPTIONS = {
    "master": "--beam-master",
    "rest_url": "--beam-rest-url",
    "project": "--gcp-project",
    "region": "--gcp-region",
    "temp_location": "--beam-temp-location",
}


def _require(s: BeamSettings, name: str, what: str) -> None:
    if not getattr(s, name):
        raise BeamArgsError(f"the {s.runner} runner needs {name} ({_COMPILE_OPTIONS[name]}): {what}")


def validate_beam_args(args: Sequence[str]) -> PipelineOptions:
    """Parses `args` with Beam; raises BeamArgsError naming any flag Beam does not know.

    Beam itself only logs a warning for unknown flags and drops them, which would make a
    misspelt `--direct_num_worker=4` silently run on one worker.
    """
    for arg in args:
        if not arg.startswith("--"):
            raise BeamArgsError(f"Beam argument {arg!r} must have the form --name=value or --flag")
    options = PipelineOptions(list(args))
    # Beam's parser calls sys.exit with a usage screen on a bad value; keep the one line.
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            known = options.get_all_options()
            with_unknown = options.get_all_options(retain_unknown_options=True)
    except SystemExit:
        errors = [line for line in captured.getvalue().splitlines() if "error:" in line]
        reason = errors[-1].split("error:", 1)[1].strip() if errors else "rejected by Beam"
        raise BeamArgsError(f"invalid Beam arguments {list(args)}: {reason}") from None
    unknown = sorted(set(with_unknown) - set(known))
    if unknown:
        raise BeamArgsError(
            "unknown Beam option(s): "
            + ", ".join(f"--{name}" for name in unknown)
            + " (see apache_beam.options.pipeline_options for the valid names)"
        )
    return options


def describe(args: Sequence[str]) -> dict[str, object]:
    """The settings that decide where and how wide Beam runs, as Beam parsed them."""
    options = validate_beam_args(args)
    summary: dict[str, object] = {"runner": options.view_as(StandardOptions).runner or "DirectRunner"}
    runner = summary["runner"]
    if runner == "DirectRunner":
        direct = options.view_as(DirectOptions)
        summary.update(mode=direct.direct_running_mode, workers=direct.direct_num_workers)
    elif runner in ("FlinkRunner", "SparkRunner"):
        portable = options.view_as(PortableOptions)
        summary.update(
            environment=portable.environment_type, worker_pool=portable.environment_config
        )
        if runner == "FlinkRunner":
            flink = options.view_as(FlinkRunnerOptions)
            summary.update(master=flink.flink_master, parallelism=flink.parallelism)
        else:
            summary.update(master=options.view_as(SparkRunnerOptions).spark_master_url)
    elif runner == "DataflowRunner":
        gcp = options.view_as(GoogleCloudOptions)
        worker = options.view_as(WorkerOptions)
        summary.update(
            project=gcp.project,
            region=gcp.region,
            temp_location=gcp.temp_location,
            image=worker.sdk_container_image,
            max_workers=worker.max_num_workers,
        )
    return summary
