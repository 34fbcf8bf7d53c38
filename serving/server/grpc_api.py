"""TF Serving's gRPC services (PredictionService, ModelService) as thin adapters over the core.

Uses the servicer base classes and `add_*Servicer_to_server` from tensorflow-serving-api, so
the method names, request and response types are TF Serving's own. A ServingError becomes
the same gRPC status code and message TF Serving sends. The server is grpc.aio, on the same
event loop as the REST API (one thread runs both transports; signature calls run in the
batcher's or a worker pool's threads, which release the GIL inside TensorFlow).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from serving.server import grpc_converters
from serving.server.core import ServingCore, make_run_blocking
from serving.errors import Code, ServingError
from serving.server.health import GrpcHealth
from serving.server.metrics import Observer
from serving.server.security import BearerTokenInterceptor, read_pem

logger = logging.getLogger(__name__)


_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


async def _call(
    run: Callable[[], Awaitable[Any]],
    api: str,
    context: grpc.aio.ServicerContext,
    observe: Observer | None,
    model_name: str,
) -> Any:
    """Runs one RPC; a ServingError becomes TF Serving's status code and message."""
    started = time.perf_counter()
    code = Code.OK
    try:
        return await run()
    except ServingError as error:
        code = error.code
        await context.abort(_GRPC_CODES.get(int(error.code), grpc.StatusCode.UNKNOWN), error.message)
    except Exception as error:  # noqa: BLE001 - report, never crash the server
        logger.exception("unexpected error in %s", api)
        code = Code.INTERNAL
        await context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
    finally:
        if observe is not None and model_name:
            observe(model_name, api, code, time.perf_counter() - started)


def _in_thread(executor: Executor, method: Callable[[Any], Any], request: Any) -> Callable[[], Awaitable[Any]]:
    return lambda: asyncio.get_running_loop().run_in_executor(executor, method, request)


async def _on_loop(method: Callable[[Any], Any], request: Any) -> Any:
    """For `_call`: answers on the event loop (calls that only read the model store)."""
    return method(request)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService on the event loop. Predict converts tensors on the loop and only its
    signature call leaves it (the batcher's future, or a worker thread); the other calls,
    which run the model through the proto path, run whole in a worker thread."""

    def __init__(self, core: ServingCore, executor: Executor, observe: Observer | None = None) -> None:
        self._core = core
        self._executor = executor
        self._observe = observe
        self._run_blocking = make_run_blocking(executor, None)

    async def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        call = grpc_converters.predict_call(request, self._core.servable_for(request.model_spec))
        outputs = await self._core.predict_async(call, self._run_blocking)
        return grpc_converters.predict_response(call, outputs)

    async def Classify(self, request, context):  # noqa: N802 - gRPC method names
        run = _in_thread(self._executor, self._core.classify, request)
        return await _call(run, "classify", context, self._observe, request.model_spec.name)

    async def Regress(self, request, context):  # noqa: N802
        run = _in_thread(self._executor, self._core.regress, request)
        return await _call(run, "regress", context, self._observe, request.model_spec.name)

    async def Predict(self, request, context):  # noqa: N802
        return await _call(lambda: self._predict(request), "predict", context, self._observe, request.model_spec.name)

    async def MultiInference(self, request, context):  # noqa: N802
        name = request.tasks[0].model_spec.name if request.tasks else ""
        run = _in_thread(self._executor, self._core.multi_inference, request)
        return await _call(run, "multi_inference", context, self._observe, name)

    async def GetModelMetadata(self, request, context):  # noqa: N802
        run = functools.partial(_on_loop, self._core.get_model_metadata, request)
        return await _call(run, "metadata", context, self._observe, request.model_spec.name)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServingCore, executor: Executor) -> None:
        self._core = core
        self._executor = executor

    async def GetModelStatus(self, request, context):  # noqa: N802
        run = functools.partial(_on_loop, self._core.get_model_status, request)
        return await _call(run, "status", context, None, "")

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        # Loads models: a worker thread, so other requests go on meanwhile.
        run = _in_thread(self._executor, self._core.reload_config, request)
        return await _call(run, "reload_config", context, None, "")


@dataclass(frozen=True)
class GrpcOptions:
    host: str = "127.0.0.1"
    port: int = 8500
    max_workers: int = 32  # threads for the calls that leave the event loop
    max_message_bytes: int = 2**31 - 1
    ssl_server_key: str = ""
    ssl_server_cert: str = ""
    ssl_custom_ca: str = ""
    ssl_client_verify: bool = False
    channel_arguments: tuple[tuple[str, Any], ...] = ()
    # SO_REUSEPORT: several server processes share the port (--num_server_processes).
    reuse_port: bool = False
    # --auth_token_file's token: every call but the health service must carry it.
    auth_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class _Undecodable:
    """Stands for request bytes that did not parse, so the call can answer INVALID_ARGUMENT."""

    message: str


class _UndecodableRequestsAreInvalid(grpc.aio.ServerInterceptor):
    """Request bytes that do not parse as the method's message get INVALID_ARGUMENT naming the
    method (grpc.aio itself answers UNKNOWN "Unexpected DecodeError"). Handlers are wrapped
    once per method."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler
        parse, behaviour = handler.request_deserializer, handler.unary_unary

        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and its kin
                return _Undecodable(f"Malformed request: {method}: {error}")

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return await behaviour(request, context)

        wrapped = grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=deserialize, response_serializer=handler.response_serializer
        )
        self._wrapped[method] = wrapped
        return wrapped


async def start_grpc_server(
    core: ServingCore,
    options: GrpcOptions,
    executor: Executor,
    observe: Observer | None = None,
    health: GrpcHealth | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Starts the gRPC server on the running event loop; returns it and the bound port (useful
    with port 0). `executor` runs the calls that leave the loop; `health` adds grpc.health.v1."""
    server_options = [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.so_reuseport", 1 if options.reuse_port else 0),
        *options.channel_arguments,
    ]
    interceptors: list[grpc.aio.ServerInterceptor] = [_UndecodableRequestsAreInvalid()]
    if options.auth_token:
        interceptors.insert(0, BearerTokenInterceptor(options.auth_token))
    server = grpc.aio.server(options=server_options, interceptors=interceptors)
    if health is not None:
        health.add_to_server(server)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core, executor, observe), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core, executor), server)
    address = f"{options.host}:{options.port}"
    try:
        if options.ssl_server_key and options.ssl_server_cert:
            credentials = grpc.ssl_server_credentials(
                [(read_pem(options.ssl_server_key), read_pem(options.ssl_server_cert))],
                root_certificates=read_pem(options.ssl_custom_ca) if options.ssl_custom_ca else None,
                require_client_auth=options.ssl_client_verify,
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as error:  # grpc.aio raises where the sync server returned 0
        raise OSError(f"could not bind the gRPC port at {address}: {error}") from None
    if port == 0:
        raise OSError(f"could not bind the gRPC port at {address}")
    await server.start()
    return server, port
