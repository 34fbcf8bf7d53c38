"""Beam pipeline args for DirectRunner multi-processing, Flink, Spark and Dataflow, and their plumbing."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import apache_beam as beam
import pytest
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

from kubeflow.beam import BeamArgsError, BeamSettings, beam_args, describe, validate_beam_args
from kubeflow.compile import compile_pipeline
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline

SETTINGS = {
    "direct": BeamSettings(runner="direct", workers=4),
    "flink": BeamSettings(runner="flink", master="flink-jobmanager:8081", workers=8),
    "spark": BeamSettings(runner="spark", master="spark://spark-master:7077", rest_url="http://spark-master:6066"),
    "dataflow": BeamSettings(
        runner="dataflow", project="my-project", region="europe-west1", temp_location="gs://bucket/tmp",
        image="europe-docker.pkg.dev/my-project/kit/tfx-serving-kit:0.1.0", workers=10,
        service_account="runner@my-project.iam.gserviceaccount.com",
    ),
}


def test_direct_runner_multi_processing() -> None:
    options = PipelineOptions(beam_args(SETTINGS["direct"]))

    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    assert options.view_as(DirectOptions).direct_num_workers == 4


def test_direct_runner_defaults_to_one_worker_per_core() -> None:
    assert "--direct_num_workers=0" in beam_args(BeamSettings())


def test_flink_runner_uses_the_worker_pool_sidecar() -> None:
    options = PipelineOptions(beam_args(SETTINGS["flink"]))

    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    flink = options.view_as(FlinkRunnerOptions)
    assert (flink.flink_master, flink.flink_submit_uber_jar, flink.parallelism) == ("flink-jobmanager:8081", True, 8)
    portable = options.view_as(PortableOptions)
    assert (portable.environment_type, portable.environment_config) == ("EXTERNAL", "localhost:50000")


def test_spark_runner() -> None:
    options = PipelineOptions(beam_args(SETTINGS["spark"]))

    assert options.view_as(StandardOptions).runner == "SparkRunner"
    spark = options.view_as(SparkRunnerOptions)
    assert spark.spark_master_url == "spark://spark-master:7077"
    assert spark.spark_submit_uber_jar and spark.spark_rest_url == "http://spark-master:6066"
    assert options.view_as(PortableOptions).environment_type == "EXTERNAL"


def test_dataflow_runner_runs_workers_in_the_pipeline_image() -> None:
    options = PipelineOptions(beam_args(SETTINGS["dataflow"]))

    assert options.view_as(StandardOptions).runner == "DataflowRunner"
    gcp = options.view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == ("my-project", "europe-west1", "gs://bucket/tmp")
    assert gcp.service_account_email == "runner@my-project.iam.gserviceaccount.com"
    worker = options.view_as(WorkerOptions)
    assert worker.sdk_container_image == SETTINGS["dataflow"].image
    assert worker.max_num_workers == 10
    assert "use_runner_v2" in options.view_as(beam.options.pipeline_options.DebugOptions).experiments


@pytest.mark.parametrize(
    "settings, missing",
    [
        (BeamSettings(runner="flink"), "needs master"),
        (BeamSettings(runner="spark", master="spark://m:7077"), "needs rest_url"),
        (BeamSettings(runner="spark", master="m:7077", rest_url="http://m:6066"), "spark://HOST:PORT"),
        (BeamSettings(runner="dataflow", project="p", region="r"), "needs temp_location"),
        (BeamSettings(runner="dataflow", project="p", region="r", temp_location="/tmp"), "must be a gs:// path"),
        (BeamSettings(runner="samza"), "unknown Beam runner 'samza'"),
        (BeamSettings(workers=-1), "workers must be >= 0"),
    ],
)
def test_what_a_runner_needs_is_named(settings: BeamSettings, missing: str) -> None:
    with pytest.raises(BeamArgsError, match=re.escape(missing)):
        beam_args(settings)


def test_extra_flags_are_appended_and_win() -> None:
    args = beam_args(BeamSettings(workers=2, extra=("--direct_num_workers=3", "--save_main_session")))

    assert PipelineOptions(args).view_as(DirectOptions).direct_num_workers == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--direct_num_worker=2"], "unknown Beam option(s): --direct_num_worker"),
        (["--direct_running_mode=multi_process"], "invalid choice: 'multi_process'"),
        (["--direct_num_workers=two"], "invalid int value: 'two'"),
        (["direct_num_workers=2"], "must have the form --name=value"),
    ],
)
def test_beam_rejects_are_errors_not_warnings(args: list[str], message: str) -> None:
    with pytest.raises(BeamArgsError, match=re.escape(message)):
        validate_beam_args(args)


def test_describe_reports_what_beam_parsed() -> None:
    assert describe(beam_args(SETTINGS["flink"])) == {
        "runner": "FlinkRunner", "environment": "EXTERNAL", "worker_pool": "localhost:50000",
        "master": "flink-jobmanager:8081", "parallelism": 8,
    }


def test_multi_processing_args_really_run_in_worker_processes(tmp_path: Path) -> None:
    args = beam_args(BeamSettings(runner="direct", workers=2))
    out = tmp_path / "squares"

    with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
        (
            pipeline
            | beam.Create(range(100))
            | "square" >> beam.Map(lambda x: json.dumps([os.getpid(), x * x]))
            | beam.io.WriteToText(str(out))
        )

    rows = [json.loads(line) for f in tmp_path.glob("squares*") for line in f.read_text().splitlines()]
    assert sorted(square for _, square in rows) == [x * x for x in range(100)]
    assert os.getpid() not in {pid for pid, _ in rows}


@pytest.mark.parametrize("runner", sorted(SETTINGS))
def test_args_reach_create_pipeline_and_the_compiled_containers(runner: str, tmp_path: Path) -> None:
    args = beam_args(SETTINGS[runner])
    config = PipelineConfig.for_data("digits", pipeline_root="gs://b/root", serving_dir="gs://b/models")

    assert create_pipeline(config=config, beam_pipeline_args=args).beam_pipeline_args == args
    out = compile_pipeline(config=config, image="kit:1", output=tmp_path / "p.json", beam_pipeline_args=args)
    executors = json.loads(out.read_text())["pipelineSpec"]["deploymentSpec"]["executors"]
    for name in ("ExampleGen_executor", "StatisticsGen_executor", "Evaluator_executor"):
        assert executors[name]["container"]["args"][-len(args):] == args
