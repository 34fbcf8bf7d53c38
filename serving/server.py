"""`python -m serving.server`: an embedded, wire-compatible stand-in for tensorflow_model_server.

Started like the binary:

    python -m serving.server --port=8500 --rest_api_port=8501 \\
        --model_name=NAME --model_base_path=/abs/path/NAME

Flags keep the binary's names, meanings and defaults (`--flag=value` and `--flag value` both
work; booleans also as bare `--flag`). Real TF Serving flags this server has no use for are
accepted and logged as no-ops. Deliberate differences, all opt-in or safer:

- it binds 127.0.0.1 unless `--host=0.0.0.0` (the binary binds every interface);
- `--pick_unused_ports` lets the OS choose both ports (`--port=0` alone does so for gRPC;
  `--rest_api_port=0` keeps its TF Serving meaning: REST disabled);
- `--rest_api_max_body_bytes` caps REST bodies (413), `--grpc_max_message_bytes` caps gRPC
  messages (RESOURCE_EXHAUSTED); the binary allows 2 GiB on gRPC and has no REST cap;
- only complete SavedModels (saved_model.pb + the checkpoint its graph needs) are loaded;
- `--num_server_processes=N` (default 1) serves from N processes sharing both ports
  (serving/multiprocess.py).

Readiness: once every model's initial versions are loaded and both ports listen, one line
`SERVING grpc=HOST:PORT rest=HOST:PORT` (rest=disabled when off) is printed to stdout, and
`--ready_file` (if given) receives `{"grpc_port": N, "rest_port": M, "pid": P}`.
SIGTERM/SIGINT shut down cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

logger = logging.getLogger("serving.server")

# Real tensorflow_model_server flags (model_servers/main.cc) with no effect here.
NO_OP_FLAGS = (
    "grpc_socket_path",
    "rest_api_num_threads",
    "enable_per_model_batching_parameters",
    "max_num_load_retries",
    "load_retry_interval_micros",
    "flush_filesystem_caches",
    "tensorflow_session_parallelism",
    "use_alts_credentials",
    "platform_config_file",
    "per_process_gpu_memory_fraction",
    "remove_unused_fields_from_bundle_metagraph",
    "prefer_tflite_model",
    "num_tflite_pools",
    "num_tflite_interpreters_per_pool",
    "enable_signature_method_name_check",
    "xla_cpu_compilation_enabled",
    "enable_profiler",
    "thread_pool_factory_config_file",
    "mixed_precision",
    "skip_initialize_tpu",
    "enable_grpc_healthcheck_service",
    "grpc_max_threads",
    "enable_session_metadata",
    "tensorflow_session_config_file",
    "use_tflite_model",
    "saved_model_tags_for_warmup",
)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "t", "yes", "y"):
        return True
    if lowered in ("0", "false", "f", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.server",
        description="TF Serving compatible model server (REST + gRPC).",
        allow_abbrev=False,
    )
    add = parser.add_argument

    def flag(name: str, default: bool, help_text: str) -> None:
        add(f"--{name}", type=_bool, nargs="?", const=True, default=default, help=help_text)

    add("--port", type=int, default=8500, help="gRPC port (0: any free port)")
    add("--rest_api_port", type=int, default=0, help="REST port; 0 disables REST (TF Serving default)")
    add("--host", default="127.0.0.1", help="address to bind both ports to (TF Serving: all)")
    add("--rest_api_timeout_in_ms", type=int, default=30000, help="REST request timeout -> 504")
    add("--model_name", default="default", help="model name with --model_base_path")
    add("--model_base_path", default="", help="directory holding integer version subdirectories")
    add("--model_config_file", default="", help="text ModelServerConfig; overrides name/base path")
    add("--model_config_file_poll_wait_seconds", type=int, default=0, help="re-read the config file")
    add("--file_system_poll_wait_seconds", type=int, default=1, help="base path poll interval")
    flag("enable_batching", False, "merge concurrent requests into batches")
    add("--batching_parameters_file", default="", help="text BatchingParameters")
    add("--monitoring_config_file", default="", help="text MonitoringConfig (Prometheus)")
    add("--ssl_config_file", default="", help="text SSLConfig (gRPC TLS)")
    flag("enable_model_warmup", True, "replay assets.extra/tf_serving_warmup_requests")
    add("--num_request_iterations_for_warmup", type=int, default=1)
    flag("allow_version_labels", True, "allow version_labels in the model config")
    flag("allow_version_labels_for_unavailable_models", False, "labels may point at new versions")
    add("--tensorflow_intra_op_parallelism", type=int, default=0, help="TF intra-op threads (0: TF's choice)")
    add("--tensorflow_inter_op_parallelism", type=int, default=0, help="TF inter-op threads (0: TF's choice)")
    add("--saved_model_tags", default="serve", help="comma separated MetaGraph tags")
    add("--grpc_channel_arguments", default="", help="comma separated key=value gRPC options")
    flag("rest_api_enable_cors_support", False, "CORS headers on REST responses")
    flag("version", False, "print the version and exit")
    add("--grpc_max_message_bytes", type=int, default=2**31 - 1, help="largest gRPC message")
    add("--rest_api_max_body_bytes", type=int, default=256 * 1024 * 1024, help="largest REST body")
    add(
        "--rest_api_workers",
        type=int,
        default=max(4, 2 * (os.cpu_count() or 1)),
        help="threads running REST signature calls (JSON work stays on the event loop)",
    )
    add("--grpc_workers", type=int, default=32, help="threads for the gRPC calls that leave the event loop")
    flag("pick_unused_ports", False, "bind both ports to free ports chosen by the OS")
    add(
        "--num_server_processes",
        type=int,
        default=1,
        help="serve from N processes sharing both ports (SO_REUSEPORT), each a complete server; "
        "the first one supervises (not a TF Serving flag)",
    )
    add("--server_process_index", type=int, default=-1, help=argparse.SUPPRESS)
    add("--ready_file", default="", help="write the bound ports here as JSON when ready")
    add("--log_level", default="INFO", help="Python logging level")
    for name in NO_OP_FLAGS:
        add(f"--{name}", nargs="?", const="true", default=None, help=argparse.SUPPRESS)
    return parser


@dataclass
class RunningServer:
    grpc_port: int
    rest_port: int | None


def _channel_arguments(text: str) -> tuple[tuple[str, object], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        pairs.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return tuple(pairs)


def _write_ready_file(path: str, payload: dict) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".ready-")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle)
    os.replace(tmp, target)


def _model_server_config(args: argparse.Namespace):
    """The ModelServerConfig the flags ask for (config file, or name + base path)."""
    from serving import config_protos
    from serving.model_store import resolve_base_path, single_model_config

    if args.model_config_file:
        config = config_protos.read_model_server_config(args.model_config_file)
        for model in config.model_config_list.config:
            model.base_path = resolve_base_path(model.base_path)
            if not args.allow_version_labels and model.version_labels:
                raise ValueError(f"model {model.name} has version_labels but --allow_version_labels=false")
        return config
    if args.model_base_path:
        return single_model_config(args.model_name, resolve_base_path(args.model_base_path))
    raise ValueError(
        "Both --model_base_path and --model_config_file are empty: give one "
        "(e.g. --model_name=NAME --model_base_path=/models/NAME)"
    )


def _batcher(args: argparse.Namespace):
    from serving import config_protos
    from serving.batching import BatchingOptions, DynamicBatcher

    if not args.enable_batching:
        return None
    params = config_protos.BatchingParameters()
    if args.batching_parameters_file:
        params = config_protos.read_text_proto(args.batching_parameters_file, config_protos.BatchingParameters)
    batcher = DynamicBatcher(BatchingOptions.from_proto(params))
    logger.info("dynamic batching on: %s", batcher.options)
    return batcher


def _metrics(args: argparse.Namespace):
    """(ServingMetrics, path) when the monitoring config enables Prometheus, else (None, None)."""
    from serving import config_protos
    from serving.metrics import DEFAULT_PATH, ServingMetrics

    if not args.monitoring_config_file:
        return None, None
    monitoring = config_protos.read_text_proto(args.monitoring_config_file, config_protos.MonitoringConfig)
    if not monitoring.prometheus_config.enable:
        return None, None
    return ServingMetrics(), monitoring.prometheus_config.path or DEFAULT_PATH


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from aiohttp import web

    from serving import config_protos
    from serving.core import ServingCore
    from serving.grpc_server import GrpcOptions, start_grpc_server
    from serving.model_store import ModelStore
    from serving.protocol import ServingError
    from serving.rest import RestApi, RestOptions, make_app
    from serving.servable import load_servable

    if args.tensorflow_intra_op_parallelism > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
    if args.tensorflow_inter_op_parallelism > 0:
        tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)
    for name in NO_OP_FLAGS:
        if getattr(args, name) is not None:
            logger.info("flag --%s=%s is accepted for compatibility and has no effect here", name, getattr(args, name))
    if not args.pick_unused_ports and args.rest_api_port and args.rest_api_port == args.port:
        print(f"error: --port and --rest_api_port must differ, both are {args.port}", file=sys.stderr)
        return 2
    try:
        config = _model_server_config(args)
        batcher = _batcher(args)
        metrics, metrics_path = _metrics(args)
        ssl = config_protos.read_text_proto(args.ssl_config_file, config_protos.SSLConfig) if args.ssl_config_file else None
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    tags = tuple(t.strip() for t in args.saved_model_tags.split(",") if t.strip())
    worker = args.server_process_index >= 0  # one of --num_server_processes > 1
    try:
        store = ModelStore(
            config,
            poll_wait_seconds=args.file_system_poll_wait_seconds,
            loader=lambda name, version, path: load_servable(name, version, path, tags),
            allow_labels_for_unavailable=args.allow_version_labels_for_unavailable_models,
        )
    except ServingError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    core = ServingCore(store, batcher)
    if args.enable_model_warmup:
        store.set_warmup(lambda servable: core.warmup(servable, args.num_request_iterations_for_warmup))
    if metrics is not None:
        store.add_listener(metrics.model_event)
    store.add_listener(_refreeze_gc)
    try:
        store.start()
    except ServingError as error:
        logger.error("%s", error.message)
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    _refreeze_gc()

    grpc_observe = (lambda m, a, c, s: metrics.observe(m, a, c, s, "GRPC")) if metrics else None
    rest_observe = (lambda m, a, c, s: metrics.observe(m, a, c, s, "REST")) if metrics else None

    grpc_options = GrpcOptions(
        host=args.host,
        port=0 if args.pick_unused_ports else args.port,
        max_workers=args.grpc_workers,
        max_message_bytes=args.grpc_max_message_bytes,
        ssl_server_key=ssl.server_key if ssl else "",
        ssl_server_cert=ssl.server_cert if ssl else "",
        ssl_custom_ca=ssl.custom_ca if ssl else "",
        ssl_client_verify=ssl.client_verify if ssl else False,
        channel_arguments=_channel_arguments(args.grpc_channel_arguments),
        reuse_port=worker,
    )
    executor = ThreadPoolExecutor(max_workers=args.rest_api_workers, thread_name_prefix="worker")
    grpc_executor = ThreadPoolExecutor(max_workers=args.grpc_workers, thread_name_prefix="grpc")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        grpc_server, grpc_port = loop.run_until_complete(
            start_grpc_server(core, grpc_options, grpc_executor, grpc_observe)
        )
    except (OSError, RuntimeError) as error:
        print(f"error: cannot serve gRPC on {args.host}:{grpc_options.port}: {error}", file=sys.stderr)
        store.stop()
        return 1
    logger.info("Running gRPC ModelServer at %s:%d ...", args.host, grpc_port)

    config_watch_stop = threading.Event()
    if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
        threading.Thread(
            target=_watch_config_file,
            args=(args.model_config_file, args.model_config_file_poll_wait_seconds, store, config_watch_stop),
            name="config-poll",
            daemon=True,
        ).start()

    rest_enabled = args.pick_unused_ports or args.rest_api_port > 0
    stop = asyncio.Event()
    runner_web = None
    rest_port = None
    if rest_enabled:
        api = RestApi(core, rest_observe)
        app = make_app(
            api,
            executor,
            RestOptions(
                max_body_bytes=args.rest_api_max_body_bytes,
                timeout_seconds=args.rest_api_timeout_in_ms / 1000.0 if args.rest_api_timeout_in_ms > 0 else 1e9,
                enable_cors=args.rest_api_enable_cors_support,
                metrics_path=metrics_path,
                pid_header=worker,
            ),
            metrics.exposition if metrics else None,
        )
        runner_web = web.AppRunner(app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner_web.setup())
        site = web.TCPSite(
            runner_web,
            args.host,
            0 if args.pick_unused_ports else args.rest_api_port,
            reuse_address=True,
            reuse_port=worker or None,
        )
        try:
            loop.run_until_complete(site.start())
        except OSError as error:
            print(f"error: cannot serve REST on {args.host}:{args.rest_api_port}: {error}", file=sys.stderr)
            loop.run_until_complete(grpc_server.stop(None))
            store.stop()
            return 1
        rest_port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp has no public getter
        logger.info("Exporting HTTP/REST API at:%s:%d ...", args.host, rest_port)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    if args.ready_file:
        _write_ready_file(args.ready_file, {"grpc_port": grpc_port, "rest_port": rest_port, "pid": os.getpid()})
    rest_text = f"{args.host}:{rest_port}" if rest_port else "disabled"
    print(f"SERVING grpc={args.host}:{grpc_port} rest={rest_text}", flush=True)

    loop.run_until_complete(stop.wait())
    logger.info("shutting down")
    config_watch_stop.set()
    if runner_web is not None:
        loop.run_until_complete(runner_web.cleanup())
    loop.run_until_complete(grpc_server.stop(grace=2))
    store.stop()
    if batcher is not None:
        batcher.shutdown()
    executor.shutdown(wait=False, cancel_futures=True)
    grpc_executor.shutdown(wait=False, cancel_futures=True)
    loop.close()
    logger.info("stopped")
    return 0


def _refreeze_gc(*_event: object) -> None:
    """Moves the loaded models' objects out of the cyclic GC's reach.

    TF keeps hundreds of thousands of Python objects alive; a full collection walks them all
    (about 0.5 s here, with the GIL held), and JSON requests allocate enough containers to
    trigger one every few seconds. Freezing after each load or unload (collecting first, so an
    unloaded model's cycles are still freed) keeps those pauses out of request latencies.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _watch_config_file(path: str, interval: int, store, stop: threading.Event) -> None:
    from serving import config_protos
    from serving.model_store import resolve_base_path

    last = Path(path).read_text()
    while not stop.wait(interval):
        try:
            text = Path(path).read_text()
            if text == last:
                continue
            last = text
            config = config_protos.read_model_server_config(path)
            for model in config.model_config_list.config:
                model.base_path = resolve_base_path(model.base_path)
            store.reload_config(config)
            logger.info("reloaded model config from %s", path)
        except Exception:  # noqa: BLE001 - keep serving the old config
            logger.exception("could not reload the model config from %s", path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.version:
        print("TensorFlow ModelServer: embedded (serving.server, TF Serving 2.16 API)")
        return 0
    if args.num_server_processes < 1:
        print(f"error: --num_server_processes must be >= 1, got {args.num_server_processes}", file=sys.stderr)
        return 2
    if args.num_server_processes > 1:
        from serving.multiprocess import supervise

        return supervise(args, list(sys.argv[1:] if argv is None else argv))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
