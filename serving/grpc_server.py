"""TF Serving's gRPC services (PredictionService, ModelService) as thin adapters over the core.

Uses the servicer base classes and `add_*Servicer_to_server` from tensorflow-serving-api, so
the method names, request and response types are TF Serving's own. A ServingError becomes
the same gRPC status code and message TF Serving sends.
"""

from __future__ import annotations

import logging
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving.core import ServingCore
from serving.protocol import Code, ServingError

logger = logging.getLogger(__name__)

Observer = Callable[[str, str, Code, float], None]

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def grpc_code(code: Code) -> grpc.StatusCode:
    return _GRPC_CODES.get(int(code), grpc.StatusCode.UNKNOWN)


def _call(
    core_method: Callable[[Any], Any],
    api: str,
    request: Any,
    context: grpc.ServicerContext,
    observe: Observer | None,
    model_name: str,
) -> Any:
    started = time.perf_counter()
    code = Code.OK
    try:
        return core_method(request)
    except ServingError as error:
        code = error.code
        context.abort(grpc_code(error.code), error.message)
    except Exception as error:  # noqa: BLE001 - report, never crash the worker
        logger.exception("unexpected error in %s", api)
        code = Code.INTERNAL
        context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
    finally:
        if observe is not None and model_name:
            observe(model_name, api, code, time.perf_counter() - started)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, core: ServingCore, observe: Observer | None = None) -> None:
        self._core = core
        self._observe = observe

    def Classify(self, request, context):  # noqa: N802 - gRPC method names
        return _call(self._core.classify, "classify", request, context, self._observe, request.model_spec.name)

    def Regress(self, request, context):  # noqa: N802
        return _call(self._core.regress, "regress", request, context, self._observe, request.model_spec.name)

    def Predict(self, request, context):  # noqa: N802
        return _call(self._core.predict, "predict", request, context, self._observe, request.model_spec.name)

    def MultiInference(self, request, context):  # noqa: N802
        name = request.tasks[0].model_spec.name if request.tasks else ""
        return _call(self._core.multi_inference, "multi_inference", request, context, self._observe, name)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return _call(
            self._core.get_model_metadata, "metadata", request, context, self._observe, request.model_spec.name
        )


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, core: ServingCore) -> None:
        self._core = core

    def GetModelStatus(self, request, context):  # noqa: N802
        return _call(self._core.get_model_status, "status", request, context, None, "")

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        return _call(self._core.reload_config, "reload_config", request, context, None, "")


@dataclass(frozen=True)
class GrpcOptions:
    host: str = "127.0.0.1"
    port: int = 8500
    max_workers: int = 32
    max_message_bytes: int = 2**31 - 1
    ssl_server_key: str = ""
    ssl_server_cert: str = ""
    ssl_custom_ca: str = ""
    ssl_client_verify: bool = False
    channel_arguments: tuple[tuple[str, Any], ...] = ()
    # SO_REUSEPORT: several server processes share the port (--num_server_processes).
    reuse_port: bool = False


def _read_pem(value: str) -> bytes:
    """SSLConfig fields hold PEM text in TF Serving; a path is accepted too, for convenience."""
    if "-----BEGIN" in value:
        return value.encode()
    return Path(value).read_bytes()


def start_grpc_server(core: ServingCore, options: GrpcOptions, observe: Observer | None = None) -> tuple[grpc.Server, int]:
    """Starts the gRPC server; returns it and the bound port (useful with port 0)."""
    server_options = [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.so_reuseport", 1 if options.reuse_port else 0),
        *options.channel_arguments,
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.max_workers, thread_name_prefix="grpc"),
        options=server_options,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core, observe), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    address = f"{options.host}:{options.port}"
    if options.ssl_server_key and options.ssl_server_cert:
        credentials = grpc.ssl_server_credentials(
            [(_read_pem(options.ssl_server_key), _read_pem(options.ssl_server_cert))],
            root_certificates=_read_pem(options.ssl_custom_ca) if options.ssl_custom_ca else None,
            require_client_auth=options.ssl_client_verify,
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind the gRPC port at {address}")
    server.start()
    return server, port

