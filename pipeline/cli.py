"""`python -m pipeline run ...`: validate inputs, run the pipeline with progress lines, summarize."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import warnings
from typing import Optional, Sequence, TextIO

from pipeline import configs

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _image_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    try:
        size = (int(height), int(width or height)) if sep or text.isdigit() else None
    except ValueError:
        size = None
    if not size:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 32x32, got {text!r}")
    return size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description="TFX pipeline: data -> blessed, pushed SavedModel.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the pipeline (defaults: bundled digits, outputs under runs/)")
    run.add_argument("--data", default="digits", help="digits | cifar10:PATH | mnist:DIR | fashion_mnist:DIR | images:DIR | csv:FILE (default digits)")
    run.add_argument("--pipeline-root", help="artifacts and ML Metadata (default runs/<model>-pipeline)")
    run.add_argument("--serving-dir", help="where versions are pushed: <dir>/<model>/<version>/ (default runs/serving)")
    run.add_argument("--model-name", help="model name under the serving dir (default: the data kind)")
    run.add_argument("--runner", choices=("beam", "local"), default="beam", help="orchestrator (default beam)")
    defaults = configs.TrainingConfig()
    run.add_argument("--epochs", type=int, default=defaults.epochs, help=f"maximum epochs (default {defaults.epochs})")
    run.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"default {defaults.batch_size}")
    run.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help=f"default {defaults.learning_rate}")
    run.add_argument("--patience", type=int, default=defaults.patience, help=f"early-stopping patience in epochs (default {defaults.patience})")
    evaluation = configs.EvalConfig()
    run.add_argument("--accuracy-threshold", type=float, default=evaluation.accuracy_lower_bound, help=f"bless only at or above this eval accuracy (default {evaluation.accuracy_lower_bound})")
    run.add_argument("--max-accuracy-drop", type=float, default=evaluation.max_accuracy_drop, help=f"allowed accuracy loss vs the blessed baseline (default {evaluation.max_accuracy_drop})")
    run.add_argument("--image-size", type=_image_size, default=(32, 32), help="HEIGHTxWIDTH for images:DIR (default 32x32)")
    run.add_argument("--label-key", default="label", help="label column of a CSV file (default label)")
    run.add_argument("--eval-percent", type=int, default=20, help="eval share when the data has no split (default 20)")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    run.add_argument("--beam-arg", action="append", default=[], metavar="ARG",
                     help="Beam pipeline arg, repeatable, e.g. --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2")
    run.add_argument("--no-infra-validator", action="store_true",
                     help="skip the InfraValidator (by default the model must load and answer in a model-server process before it is pushed)")
    run.add_argument("--endpoint", metavar="URL",
                     help="live check after the push against this running server (grpc://HOST:PORT and/or http://HOST:PORT, comma-separated; "
                          "real TF Serving works); by default a server is started on the serving dir for the check")
    run.add_argument("--no-live-check", action="store_true", help="do not check the pushed version on a live endpoint")
    run.add_argument("-v", "--verbose", action="store_true", help="show TF/TFX/Beam logs")
    return parser


def source_fingerprint(data: configs.DataSource) -> str:
    """Changes when the input files change (names, sizes, mtimes), so ExampleGen's cache is not stale."""
    digest = hashlib.sha256(str(data).encode())
    if data.kind == "digits":
        import sklearn

        digest.update(sklearn.__version__.encode())
        return digest.hexdigest()[:16]
    paths = [data.path] if os.path.isfile(data.path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(data.path) for name in names
    )
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{os.path.relpath(path, data.path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def config_from_args(args: argparse.Namespace) -> configs.PipelineConfig:
    data = configs.DataSource.parse(args.data)
    if data.path:
        data = configs.DataSource(kind=data.kind, path=os.path.abspath(os.path.expanduser(data.path)))
    config = configs.PipelineConfig.for_data(
        data,
        model_name=args.model_name,
        pipeline_root=args.pipeline_root,
        serving_dir=args.serving_dir,
        training=configs.TrainingConfig(
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience
        ),
        evaluation=configs.EvalConfig(accuracy_lower_bound=args.accuracy_threshold, max_accuracy_drop=args.max_accuracy_drop),
        image_size=args.image_size,
        label_key=args.label_key,
        eval_percent=args.eval_percent,
        enable_cache=not args.no_cache,
    )
    return config.replace(
        pipeline_root=os.path.abspath(config.pipeline_root), serving_dir=os.path.abspath(config.serving_dir)
    )


def _quiet_environment(verbose: bool) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if not verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        # Inherited by Beam's multi-processing workers, which do not share our filters.
        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        warnings.filterwarnings("ignore")


def _error_message(exc: BaseException) -> str:
    """The message of the first error raised by this project's code in the chain, else the outermost."""
    chain, seen = [], set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    ours = [e for e in chain if type(e).__module__.split(".")[0] in ("components", "pipeline", "serving")]
    chosen = ours[0] if ours else exc
    text = str(chosen).strip() or type(chosen).__name__
    return text if len(text) < 4000 else text[:4000] + " ..."


def _examples_artifact(summary):
    """The ExampleGen's `examples` output of this run (an MLMD artifact), or None."""
    example_gen = summary.executions.get(configs.EXAMPLE_GEN_ID)
    outputs = example_gen.outputs.get("examples", []) if example_gen else []
    return outputs[0] if outputs else None


def _class_names(summary) -> Optional[list[str]]:
    from pipeline.summary import custom_property

    examples = _examples_artifact(summary)
    names = custom_property(examples, "class_names") if examples is not None else None
    return json.loads(names) if names else None


def start_live_server(config: configs.PipelineConfig):
    """A model server on `<serving_dir>/<model_name>`, started before the pipeline runs.

    Its start-up overlaps the run, and it must hot-load what the Pusher publishes: the live
    check then proves exactly what a long-running TF Serving would do with the new version.
    """
    from serving.process import ModelServerProcess

    server = ModelServerProcess(
        model_name=config.model_name, model_base_path=os.path.join(config.serving_dir, config.model_name)
    )
    server.start()
    return server


def live_check(summary, config: configs.PipelineConfig, endpoints: dict[str, str]):
    """Checks the pushed version on the given endpoints (`grpc_endpoint` / `rest_endpoint`)."""
    from serving import live_check as checks

    artifact = _examples_artifact(summary)
    examples = checks.load_examples(artifact.uri, split="eval", limit=16) if artifact is not None else []
    return checks.check_live_endpoint(
        config.serving_dir,
        config.model_name,
        version=int(summary.pushed_version),
        examples=examples,
        label_key=config.label_key,
        **endpoints,
    )


def run_command(args: argparse.Namespace, *, out: TextIO = sys.stdout, infra_validator=None) -> int:
    """Runs the pipeline for parsed `run` arguments; returns the exit status.

    `infra_validator` fills create_pipeline's InfraValidator slot (a `(model, examples) ->
    component` factory); by default the local-process InfraValidator, none with
    `--no-infra-validator`. After a push the pushed version is checked on a live endpoint.
    """
    _quiet_environment(args.verbose)
    started = time.monotonic()
    try:
        config = config_from_args(args)
        if args.endpoint:
            from serving.live_check import endpoints_from_arg

            endpoints_from_arg(args.endpoint)  # a bad --endpoint fails before anything runs
        from components.example_gen.logic import check_source

        check_source(config.data.kind, config.data.path, label_key=config.label_key)
    except (configs.ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    config = config.replace(data_fingerprint=source_fingerprint(config.data))

    from pipeline import progress

    tracker = progress.ProgressTracker(emit=lambda line: print(line, file=out, flush=True))
    # Before TensorFlow is imported: its logger adds a handler of its own when root has none.
    progress.install(tracker, verbose=args.verbose)
    if infra_validator is None and not args.no_infra_validator:
        from components.infra_validator import make_infra_validator

        infra_validator = make_infra_validator()

    print(f"pipeline {config.pipeline_name}: data {config.data}, root {config.pipeline_root}", file=out, flush=True)
    server = None
    if not args.no_live_check and not args.endpoint:
        server = start_live_server(config)
    try:
        return _run_and_check(args, config, tracker, server, infra_validator, started, out)
    finally:
        if server is not None:
            server.stop()


def _run_and_check(
    args: argparse.Namespace,
    config: configs.PipelineConfig,
    tracker,
    server,
    infra_validator,
    started: float,
    out: TextIO,
) -> int:
    """Runs the pipeline, prints the summary, then the live check on `server` or `--endpoint`."""
    from pipeline import runners, summary as run_summary

    try:
        pipeline = runners.build(config, beam_pipeline_args=args.beam_arg, infra_validator=infra_validator)
        tracker.total = len(pipeline.components)
        runners.run_pipeline(pipeline, runner=args.runner)
    except Exception as exc:  # any component failure ends the run with one clear message
        failed = ", ".join(tracker.running()) or "the pipeline"
        logger.debug("run failed", exc_info=True)
        print(f"error: {failed} failed: {_error_message(exc)}", file=sys.stderr)
        print(f"nothing pushed; {config.serving_dir}/{config.model_name} is unchanged", file=sys.stderr)
        return EXIT_FAILED
    result = run_summary.summarize(config)
    print(f"finished in {time.monotonic() - started:.1f} s", file=out)
    print(run_summary.format_summary(result, config, _class_names(result)), file=out, flush=True)
    if not (result.pushed and result.pushed_version) or args.no_live_check:
        return EXIT_OK
    if server is not None:
        from serving.live_check import LIVE_CHECK_WAIT_SECONDS

        try:
            server.wait_until_serving(time.time() + LIVE_CHECK_WAIT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the server could not start: say why, the push itself stands
            print(f"error: version {result.pushed_version} was pushed but the model server for the live check "
                  f"did not start: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"live check on {server.description}, started with this run: grpc {server.grpc_endpoint}, "
              f"rest {server.rest_endpoint}", file=out)
        endpoints = {"grpc_endpoint": server.grpc_endpoint, "rest_endpoint": server.rest_endpoint.removeprefix("http://")}
    else:
        from serving.live_check import endpoints_from_arg

        endpoints = endpoints_from_arg(args.endpoint)
    report = live_check(result, config, endpoints)
    print(report.summary(), file=out, flush=True)
    if not report.ok:
        print(f"error: version {result.pushed_version} was pushed but the live check failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_command(args)
    return EXIT_FAILED
