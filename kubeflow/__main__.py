"""`python -m kubeflow compile|submit|publish`: compile the pipeline for Kubeflow, submit it,
publish a trained model into a serving volume."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

_COMPILE_DEFAULT = Path("runs") / "kubeflow" / "pipeline.json"


def _parser() -> argparse.ArgumentParser:
    from kubeflow.beam import RUNNERS

    parser = argparse.ArgumentParser(prog="python -m kubeflow", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="compile|submit|publish")

    c = commands.add_parser("compile", help="compile the pipeline into a KFP v2 pipeline file")
    c.add_argument("--image", required=True, help="pipeline image every task runs, e.g. ghcr.io/you/tfx-serving-kit:0.1.0")
    c.add_argument("--pipeline-root", help="URI all pods can reach, e.g. gs://BUCKET/pipelines (env PIPELINE_ROOT)")
    c.add_argument("--serving-dir", help="where the Pusher publishes versions, e.g. gs://BUCKET/models (env SERVING_DIR)")
    c.add_argument("--output", type=Path, default=_COMPILE_DEFAULT, help=f"pipeline file, .json or .yaml (default {_COMPILE_DEFAULT})")
    c.add_argument("--data", help="dataset: digits (default, bundled), csv:URI, images:URI, ... (env PIPELINE_DATA)")
    c.add_argument("--model-name", help="served model name (env MODEL_NAME; default: the data kind)")
    c.add_argument("--pipeline-name", help="KFP pipeline name, [a-z0-9][a-z0-9-]* (env PIPELINE_NAME)")
    c.add_argument("--display-name", help="name shown in the KFP UI (default: the pipeline name)")
    c.add_argument(
        "--no-infra-validator", dest="infra_validator", action="store_false",
        help="leave out the InfraValidator (by default it loads and queries the model in a model "
        "server process inside its own pod before the Pusher may push)",
    )
    from pipeline.cli import add_module_arguments

    # No default file: the image carries the built-in trainer; a module file is packaged as a
    # wheel under the pipeline root at compile time, as TFX does.
    add_module_arguments(c, default_module_file=None)
    beam = c.add_argument_group("Beam (see docs/kubeflow.md, 'Beam at scale')")
    beam.add_argument("--beam-runner", choices=sorted(RUNNERS), help="runner for the data components (default: TFX's in-process DirectRunner)")
    beam.add_argument("--beam-workers", type=int, help="direct: processes (0 = per core); flink/spark: parallelism; dataflow: max workers")
    beam.add_argument("--beam-master", help="flink: JobManager host:8081; spark: spark://HOST:7077")
    beam.add_argument("--beam-rest-url", help="spark: REST submission URL, http://HOST:6066")
    beam.add_argument("--beam-worker-pool", help="flink/spark: SDK worker pool address (default localhost:50000)")
    beam.add_argument("--gcp-project", help="dataflow: Google Cloud project")
    beam.add_argument("--gcp-region", help="dataflow: region")
    beam.add_argument("--beam-temp-location", help="dataflow: gs:// temp path")
    beam.add_argument("--beam-arg", action="append", default=[], metavar="--FLAG=VALUE", help="extra Beam flag, repeatable")

    s = commands.add_parser("submit", help="submit a compiled pipeline to Kubeflow Pipelines")
    s.add_argument("--host", required=True, help="KFP endpoint, e.g. http://localhost:8080")
    s.add_argument("--package", type=Path, default=_COMPILE_DEFAULT, help=f"compiled pipeline (default {_COMPILE_DEFAULT})")
    s.add_argument("--experiment", help="experiment name (default: the pipeline name)")
    s.add_argument("--run-name", help="run name (default: '<pipeline> <UTC time>')")
    s.add_argument("--namespace", help="profile namespace on multi-user Kubeflow")
    s.add_argument("--pipeline-root", help="override the pipeline root stored in the package")
    s.add_argument("--service-account", help="Kubernetes service account the run's pods use")
    caching = s.add_mutually_exclusive_group()
    caching.add_argument("--cache", dest="enable_caching", action="store_true", default=None, help="force caching on")
    caching.add_argument("--no-cache", dest="enable_caching", action="store_false", help="force caching off")
    s.add_argument("--dry-run", action="store_true", help="print what would be submitted; contact nothing")

    p = commands.add_parser("publish", help="validate a SavedModel and publish it into a serving volume")
    p.add_argument("--source", required=True, help="SavedModel URI: the Pusher's pushed_model or the Trainer's model artifact")
    p.add_argument("--serving-dir", required=True, help="the mounted models volume, e.g. /models")
    p.add_argument("--model-name", required=True, help="model name, e.g. digits")
    p.add_argument("--max-load-seconds", type=float, default=120.0, help="deadline for the validation load")
    return parser


def _compile(args: argparse.Namespace) -> int:
    from components.trainer.module_file import ModuleFileError
    from kubeflow.beam import BeamArgsError, BeamSettings, beam_args
    from kubeflow.compile import CompileError, compile_pipeline, validate_pipeline_name
    from kubeflow.submit import load_package
    from pipeline.cli import module_overrides
    from pipeline.configs import ConfigError, PipelineConfig

    try:
        env = os.environ
        if args.pipeline_name:
            validate_pipeline_name(args.pipeline_name)
        overrides = {
            key: value
            for key, value in (
                ("pipeline_root", args.pipeline_root or env.get("PIPELINE_ROOT")),
                ("serving_dir", args.serving_dir or env.get("SERVING_DIR")),
                ("model_name", args.model_name or env.get("MODEL_NAME")),
                ("pipeline_name", args.pipeline_name or env.get("PIPELINE_NAME")),
            )
            if value
        }
        config = PipelineConfig.for_data(
            args.data or env.get("PIPELINE_DATA") or "digits", **overrides, **module_overrides(args)
        )
        pipeline_args: list[str] = []
        if args.beam_runner:
            pipeline_args = beam_args(
                BeamSettings(
                    runner=args.beam_runner,
                    workers=args.beam_workers,
                    master=args.beam_master,
                    rest_url=args.beam_rest_url,
                    project=args.gcp_project,
                    region=args.gcp_region,
                    temp_location=args.beam_temp_location,
                    image=args.image,
                    extra=tuple(args.beam_arg),
                    **({"worker_pool": args.beam_worker_pool} if args.beam_worker_pool else {}),
                )
            )
        elif args.beam_arg:
            pipeline_args = list(args.beam_arg)
        infra_validator = None
        if args.infra_validator:
            from components.infra_validator import make_infra_validator

            infra_validator = make_infra_validator()
        output = compile_pipeline(
            config=config,
            image=args.image,
            output=args.output,
            beam_pipeline_args=pipeline_args,
            display_name=args.display_name,
            infra_validator=infra_validator,
        )
        package = load_package(output)
    except (CompileError, ConfigError, BeamArgsError, ModuleFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"compiled {package.pipeline_name}: {len(package.tasks)} tasks, image {', '.join(package.images)}")
    print(f"pipeline root: {package.pipeline_root}")
    if pipeline_args:
        print(f"beam args: {' '.join(pipeline_args)}")
    print(f"wrote {output}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from kubeflow.submit import (
        Credentials,
        SubmitError,
        SubmitRequest,
        default_run_name,
        describe,
        load_package,
        normalise_host,
        submit,
    )

    try:
        package = load_package(args.package)
        request = SubmitRequest(
            host=normalise_host(args.host),
            package=package,
            experiment=args.experiment or package.pipeline_name,
            run_name=args.run_name or default_run_name(package),
            pipeline_root=args.pipeline_root,
            namespace=args.namespace,
            enable_caching=args.enable_caching,
            service_account=args.service_account,
            credentials=Credentials.from_env(os.environ),
        )
        if args.dry_run:
            print(describe(request))
            return 0
        run = submit(request)
    except SubmitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"submitted run {run.run_id} in experiment {request.experiment!r}")
    print(f"run details: {run.url}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from kubeflow.publish import PublishError, PushError, publish_from
    from serving.layout import LayoutError

    try:
        published = publish_from(
            args.source, args.serving_dir, args.model_name, max_loading_seconds=args.max_load_seconds
        )
    except (PublishError, PushError, LayoutError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"validated: {published.validation.summary()}")
    print(f"published version {published.version} of {args.model_name!r} at {published.path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    # google.api_core warns about Python 3.10 on every import; it is noise for a CLI user.
    warnings.filterwarnings("ignore", category=FutureWarning)
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # project decision: tf_keras everywhere
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        for noisy in ("absl", "tensorflow", "apache_beam", "kfp", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    commands = {"compile": _compile, "submit": _submit, "publish": _publish}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
