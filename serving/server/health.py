"""Health for orchestrators: the readiness verdict, REST `/healthz` and `/readyz`, and grpc.health.v1.

Liveness is "the process answers". Readiness is "every configured model has an AVAILABLE
version"; when not, the reason names each model that has none and its versions' states. REST
answers `/healthz` with 200 and `/readyz` with 200 or 503 and `{"error": reason}`; the standard
gRPC health service (`--enable_grpc_healthcheck_service`) reports SERVING or NOT_SERVING for
the overall service `""` and for `tensorflow.serving.PredictionService`, kept in step with the
model store's load and unload events.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from serving.errors import Code, ServingError
from serving.server.model_store import ModelStore

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
HEALTH_PATHS = (LIVENESS_PATH, READINESS_PATH)
# The gRPC service names whose health is reported ("" is the whole server, by convention).
GRPC_SERVICES = ("", "tensorflow.serving.PredictionService")


def _why_unavailable(store: ModelStore, name: str) -> str:
    try:
        states = store.version_status(name)
    except ServingError:
        return f"model {name!r} has no version yet (none found under its base path)"
    described = []
    for status in states[:3]:
        text = f"version {status.version} {status.state}"
        if status.error_message:
            text += f": {status.error_message[:200]}"
        described.append(text)
    return f"model {name!r} has no AVAILABLE version ({', '.join(described)})"


def not_ready_reason(store: ModelStore) -> str | None:
    """Why the server is not ready, or None when every configured model has an AVAILABLE version."""
    reasons = []
    for name in store.model_names():
        try:
            store.get_servable(name)
        except ServingError as error:
            if error.code != Code.NOT_FOUND:
                raise
            reasons.append(_why_unavailable(store, name))
    if not store.model_names():
        return "no model is configured"
    return "; ".join(reasons) or None


def rest_health(path: str, store: ModelStore) -> tuple[int, bytes]:
    """The answer to GET `/healthz` or `/readyz` (a path in HEALTH_PATHS): status and JSON body."""
    if path == LIVENESS_PATH:
        return 200, b'{"status": "alive"}'
    reason = not_ready_reason(store)
    if reason is None:
        return 200, b'{"status": "ready"}'
    return 503, orjson.dumps({"error": f"not ready: {reason}"})


class GrpcHealth:
    """grpc.health.v1.Health on the server's event loop, updated on every model store event."""

    def __init__(self, store: ModelStore, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._servicer = health.aio.HealthServicer()

    def add_to_server(self, server: Any) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def update(self) -> None:
        """Sets every reported service to SERVING or NOT_SERVING from the readiness verdict."""
        ready = not_ready_reason(self._store) is None
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in GRPC_SERVICES:
            await self._servicer.set(service, status)

    def on_model_event(self, *_event: object) -> None:
        """A model store listener (any thread): re-evaluates readiness on the event loop."""
        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.update(), self._loop)

    async def shutdown(self) -> None:
        """NOT_SERVING everywhere, so watchers see the server go before its port closes."""
        await self._servicer.enter_graceful_shutdown()
