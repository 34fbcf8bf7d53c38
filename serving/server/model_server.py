"""`ModelServer`: the model store, the core and both transports of one server, started and stopped.

`start()` loads the models (every initial version, warmed up), then binds gRPC and REST on an
event loop in a thread of its own and returns; `stop()` undoes it all. So the whole server runs
in-process in a test, and `python -m serving.server` (serving.server.main) is this object plus
signal handling. Failures to start raise `StartError` with the process exit status to use.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving import process
from serving.errors import ServingError
from serving.server import config_protos
from serving.server.cpus import share_per_process, usable_cpus
from serving.server.flags import NO_OP_FLAGS, channel_arguments, rest_enabled, server_processes

logger = logging.getLogger("serving.server")


class StartError(Exception):
    """The server could not start; `exit_code` is 2 for bad flags or config, 1 otherwise."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ModelServer:
    """One server process's serving: give it parsed flags (`serving.server.flags.build_parser`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.grpc_port: int | None = None
        self.rest_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._store: Any = None
        self._batcher: Any = None
        self._grpc_server: Any = None
        self._web_runner: Any = None
        self._executors: list[ThreadPoolExecutor] = []
        self._config_watch_stop = threading.Event()
        self._grpc_health: Any = None

    @property
    def worker(self) -> bool:
        """One of the processes of --num_server_processes > 1 (shares its ports)."""
        return self.args.server_process_index >= 0

    def start(self) -> None:
        args = self.args
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        tf = import_tensorflow_without_keras()

        from serving.server.batching import DynamicBatcher
        from serving.server.core import ServingCore
        from serving.server.metrics import ServingMetrics
        from serving.server.model_store import ModelStore, single_model_config
        from serving.server.servable import load_servable

        if args.tensorflow_intra_op_parallelism > 0:
            tf.config.threading.set_intra_op_parallelism_threads(args.tensorflow_intra_op_parallelism)
        if args.tensorflow_inter_op_parallelism > 0:
            tf.config.threading.set_inter_op_parallelism_threads(args.tensorflow_inter_op_parallelism)
        for name in NO_OP_FLAGS:
            if getattr(args, name) is not None:
                logger.info("flag --%s=%s is accepted for compatibility and has no effect here", name, getattr(args, name))
        files = read_flag_files(args)
        config = files.model_config
        if config is None:
            config = single_model_config(args.model_name, config_protos.resolve_base_path(args.model_base_path))
        if files.batching is not None:
            self._batcher = DynamicBatcher(files.batching)
            logger.info("dynamic batching on (--enable_batching=false turns it off): %s", self._batcher.options)
        metrics = ServingMetrics() if files.metrics_path else None

        tags = tuple(t.strip() for t in args.saved_model_tags.split(",") if t.strip())
        try:
            store = ModelStore(
                config,
                poll_wait_seconds=args.file_system_poll_wait_seconds,
                loader=lambda name, version, path: load_servable(name, version, path, tags),
                allow_labels_for_unavailable=args.allow_version_labels_for_unavailable_models,
            )
        except ServingError as error:
            raise StartError(error.message, 2) from None
        core = ServingCore(store, self._batcher)
        if args.enable_model_warmup:
            store.set_warmup(lambda servable: core.warmup(servable, args.num_request_iterations_for_warmup))
        if metrics is not None:
            store.add_listener(metrics.model_event)
        store.add_listener(_refreeze_gc)
        try:
            store.start()
        except ServingError as error:
            logger.error("%s", error.message)
            raise StartError(error.message, 1) from None
        self._store = store
        _refreeze_gc()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="event-loop", daemon=True)
        self._thread.start()
        try:
            self._bind(core, metrics, files)
        except StartError:
            self.stop()
            raise
        if args.model_config_file and args.model_config_file_poll_wait_seconds > 0:
            threading.Thread(
                target=_watch_config_file,
                args=(args.model_config_file, args.model_config_file_poll_wait_seconds, store, self._config_watch_stop),
                name="config-poll",
                daemon=True,
            ).start()

    def _on_loop(self, coroutine: Any) -> Any:
        """Runs a coroutine on the server's event loop and waits for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _bind(self, core: Any, metrics: Any, files: FlagFiles) -> None:
        from aiohttp import web

        from serving.server.grpc_api import GrpcOptions, start_grpc_server
        from serving.server.health import GrpcHealth
        from serving.server.rest import RestApi, RestOptions, make_app

        args, ssl = self.args, files.ssl
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
            channel_arguments=channel_arguments(args.grpc_channel_arguments),
            reuse_port=self.worker,
            auth_token=files.auth_token,
        )
        executor = ThreadPoolExecutor(max_workers=args.rest_api_workers, thread_name_prefix="worker")
        grpc_executor = ThreadPoolExecutor(max_workers=args.grpc_workers, thread_name_prefix="grpc")
        self._executors = [executor, grpc_executor]
        try:
            if args.enable_grpc_healthcheck_service:
                self._grpc_health = GrpcHealth(core.store, self._loop)
                core.store.add_listener(self._grpc_health.on_model_event)
            self._grpc_server, self.grpc_port = self._on_loop(
                start_grpc_server(core, grpc_options, grpc_executor, grpc_observe, self._grpc_health)
            )
            if self._grpc_health is not None:
                self._on_loop(self._grpc_health.update())
        except (OSError, RuntimeError) as error:
            raise StartError(f"cannot serve gRPC on {args.host}:{grpc_options.port}: {error}", 1) from None
        logger.info("Running gRPC ModelServer at %s:%d ...", args.host, self.grpc_port)
        if not rest_enabled(args):
            return
        api = RestApi(core, rest_observe, image_api=args.enable_raw_image_api)
        app = make_app(
            api,
            executor,
            RestOptions(
                max_body_bytes=args.rest_api_max_body_bytes,
                timeout_seconds=args.rest_api_timeout_in_ms / 1000.0 if args.rest_api_timeout_in_ms > 0 else 1e9,
                enable_cors=args.rest_api_enable_cors_support,
                metrics_path=files.metrics_path,
                pid_header=self.worker,
                auth_token=files.auth_token,
            ),
            metrics.exposition if metrics else None,
        )
        self._web_runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._on_loop(self._web_runner.setup())
        site = web.TCPSite(
            self._web_runner,
            args.host,
            0 if args.pick_unused_ports else args.rest_api_port,
            reuse_address=True,
            reuse_port=self.worker or None,
            ssl_context=files.rest_ssl,
        )
        try:
            self._on_loop(site.start())
        except OSError as error:
            raise StartError(f"cannot serve REST on {args.host}:{args.rest_api_port}: {error}", 1) from None
        self.rest_port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - aiohttp has no public getter
        logger.info("Exporting HTTP/REST API at:%s:%d ...", args.host, self.rest_port)

    def announce_ready(self) -> None:
        """The `SERVING ...` line on stdout and the --ready_file: both ports listen."""
        process.announce_ready(self.args.host, self.grpc_port, self.rest_port, self.args.ready_file)

    def stop(self) -> None:
        """Stops both transports, unloads the models and ends the event loop; safe to repeat."""
        self._config_watch_stop.set()
        if self._loop is not None and self._loop.is_running():
            if self._web_runner is not None:
                self._on_loop(self._web_runner.cleanup())
                self._web_runner = None
            if self._grpc_health is not None:
                self._on_loop(self._grpc_health.shutdown())
            if self._grpc_server is not None:
                self._on_loop(self._grpc_server.stop(grace=2))
                self._grpc_server = None
        if self._store is not None:
            self._store.stop()
            self._store = None
        if self._batcher is not None:
            self._batcher.shutdown()
            self._batcher = None
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
        self._executors = []
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join()
            self._loop.close()
            self._loop = None

    def __enter__(self) -> "ModelServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# What `import tensorflow` imports eagerly "so that registration of optimizers in the
# SavedModel registry happens at load time": tf_keras (TF_USE_LEGACY_KERAS=1) or Keras 3.
_EAGER_KERAS_MODULES = ("tf_keras.src.optimizers", "keras.src.optimizers")


def import_tensorflow_without_keras() -> Any:
    """`import tensorflow`, minus the Keras that TF imports eagerly for training's sake.

    A server only calls signatures; the eager import of tf_keras (all its layers, applications,
    pandas, pyarrow, PIL) costs about 65 MB of RSS and 2 s of start-up per server process
    (docs/peers-benchmark.md, "Where the memory goes"). TF catches the ImportError of a module
    marked None in sys.modules; the marks are removed right after, so anything that does need
    Keras later still imports it (tf.saved_model.load does so itself for a SavedModel holding a
    Keras OptimizerV2). No effect when TensorFlow is already imported (tests, tools)."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    marked = [name for name in _EAGER_KERAS_MODULES if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import tensorflow as tf
    finally:
        for name in marked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return tf


@dataclass(frozen=True)
class FlagFiles:
    """What the files named by the flags say, read and checked (`read_flag_files`)."""

    model_config: Any  # ModelServerConfig from --model_config_file, None with --model_base_path
    batching: Any  # BatchingOptions with --enable_batching, else None
    metrics_path: str | None  # the Prometheus path when --monitoring_config_file enables it
    ssl: Any  # SSLConfig or None
    rest_ssl: Any  # ssl.SSLContext for REST or None
    auth_token: str


def read_flag_files(args: argparse.Namespace) -> FlagFiles:
    """Reads and checks the flags and every file they name (model config, batching, monitoring,
    TLS, token) without TensorFlow, so the supervisor can refuse bad ones with one line before
    it starts any server process. Raises StartError (exit status 2)."""
    from serving.server import security

    if not args.pick_unused_ports and args.rest_api_port and args.rest_api_port == args.port:
        raise StartError(f"--port and --rest_api_port must differ, both are {args.port}", 2)
    try:
        model_config = _model_config_file(args)
        batching = _batching_options(args)
        metrics_path = _metrics_path(args)
        ssl = config_protos.read_text_proto(args.ssl_config_file, config_protos.SSLConfig) if args.ssl_config_file else None
        rest_ssl = (
            security.rest_ssl_context(ssl.server_key, ssl.server_cert, ssl.custom_ca, ssl.client_verify)
            if ssl and rest_enabled(args) else None
        )
        auth_token = security.read_auth_token(args.auth_token_file) if args.auth_token_file else ""
    except (ValueError, OSError) as error:
        raise StartError(str(error), 2) from None
    return FlagFiles(model_config, batching, metrics_path, ssl, rest_ssl, auth_token)


def _model_config_file(args: argparse.Namespace):
    """The ModelServerConfig of --model_config_file (None with --model_base_path)."""
    if args.model_config_file:
        config = config_protos.read_model_server_config(args.model_config_file)
        for model in config.model_config_list.config:
            if not args.allow_version_labels and model.version_labels:
                raise ValueError(f"model {model.name} has version_labels but --allow_version_labels=false")
        return config
    if args.model_base_path:
        return None
    raise ValueError(
        "Both --model_base_path and --model_config_file are empty: give one "
        "(e.g. --model_name=NAME --model_base_path=/models/NAME)"
    )


def _batching_options(args: argparse.Namespace):
    """BatchingOptions (checked) with --enable_batching, else None. Unless the file sets
    `num_batch_threads`, TF Serving's one per core, shared among the server processes (one
    batch thread per process on 2 cores, which beat two: docs/serving-benchmark.md)."""
    from serving.server.batching import BatchingOptions

    if not args.enable_batching:
        return None
    params = config_protos.BatchingParameters()
    if args.batching_parameters_file:
        params = config_protos.read_text_proto(args.batching_parameters_file, config_protos.BatchingParameters)
    if not params.HasField("num_batch_threads"):
        params.num_batch_threads.value = share_per_process(usable_cpus(), server_processes(args))
    return BatchingOptions.from_proto(params)  # raises ValueError naming a bad value


def _metrics_path(args: argparse.Namespace) -> str | None:
    """The Prometheus path when the monitoring config enables it, else None."""
    from serving.server.metrics import DEFAULT_PATH

    if not args.monitoring_config_file:
        return None
    monitoring = config_protos.read_text_proto(args.monitoring_config_file, config_protos.MonitoringConfig)
    prometheus = monitoring.prometheus_config
    return (prometheus.path or DEFAULT_PATH) if prometheus.enable else None


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
    last = Path(path).read_text()
    while not stop.wait(interval):
        try:
            text = Path(path).read_text()
            if text == last:
                continue
            last = text
            store.reload_config(config_protos.read_model_server_config(path))
            logger.info("reloaded model config from %s", path)
        except Exception:  # noqa: BLE001 - keep serving the old config
            logger.exception("could not reload the model config from %s", path)


