"""TF Serving's REST API (`/v1/models/...`) as a thin aiohttp adapter over `serving.core`.

`RestApi.handle(method, path, body)` is the whole API as a plain function returning
(HTTP status, JSON bytes): URL parsing with TF Serving's regexes, body parsing, the core call
and the error mapping. `RestApi.handle_async` is the same for the event loop: a small predict
is parsed and answered on the loop thread and only its signature call leaves it (to a worker
thread, or as the batcher's future); everything else runs `handle` in a worker thread. The
aiohttp part only reads the body (size limit, gzip) and applies the deadline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

import orjson
from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, input_pb2

from serving import protocol
from serving.core import ServingCore
from serving.protocol import Code, ServingError, invalid

logger = logging.getLogger(__name__)

# model_servers/http_rest_api_util.cc (kPredictionApiGegex, kModelStatusApiRegex); matched whole.
_POST_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_GET_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_API_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_INT64_MAX = 2**63 - 1
JSON_HEADERS = {"Content-Type": "application/json"}

# Called as observe(model_name, api, status_code, seconds) after every API request.
Observer = Callable[[str, str, Code, float], None]
# Runs a blocking callable in a worker thread under the request deadline.
RunBlocking = Callable[..., Awaitable[Any]]
# Bodies up to this size are parsed on the event loop; bigger ones in a worker thread.
INLINE_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class RestResponse:
    status: int
    body: bytes


def _error(error: ServingError) -> RestResponse:
    return RestResponse(error.http_status, protocol.error_json(error.message))


def _unexpected(method: str, path: str, error: Exception) -> RestResponse:
    """A 500 for an error no handler expected; logged with its traceback, the server lives on."""
    logger.exception("unexpected error for %s %s", method, path)
    return _error(ServingError(Code.INTERNAL, f"{type(error).__name__}: {error}"))


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text)
    if value > _INT64_MAX:
        raise invalid(f"Failed to convert version: {text} to numeric.")
    return value


def _pretty(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


class RestApi:
    """The REST API on top of a ServingCore, independent of any HTTP library."""

    def __init__(self, core: ServingCore, observe: Observer | None = None) -> None:
        self.core = core
        self._observe = observe

    def handle(self, method: str, path: str, body: bytes) -> RestResponse:
        started = time.perf_counter()
        model, api = "", "unknown"
        code = Code.OK
        try:
            if method == "POST":
                match = _POST_RE.fullmatch(path)
                if match is None:
                    raise invalid(f"Malformed request: {method} {path}")
                model = unquote(match.group(1))
                api = match.group(4).lower()
                version = _version(match.group(2))
                label = unquote(match.group(3)) if match.group(3) is not None else None
                doc = protocol.parse_json_body(body)
                if api == "predict":
                    result = self.core.predict_json(model, version, label, doc)
                else:
                    result = self._classify_regress(api, model, version, label, doc)
                return RestResponse(200, result)
            if method == "GET":
                match = _GET_RE.fullmatch(path)
                if match is None:
                    raise invalid(f"Malformed request: {method} {path}")
                if match.group(1) is None:
                    raise invalid("Missing model name in request.")
                model = unquote(match.group(1))
                version = _version(match.group(2))
                label = unquote(match.group(3)) if match.group(3) is not None else None
                if match.group(4):
                    api = "metadata"
                    return RestResponse(200, self._metadata(model, version, label))
                api = "status"
                return RestResponse(200, self._status(model, version, label))
            raise invalid(f"Malformed request: {method} {path}")
        except ServingError as error:
            code = error.code
            return _error(error)
        except Exception as error:  # noqa: BLE001 - never let a request take the server down
            code = Code.INTERNAL
            return _unexpected(method, path, error)
        finally:
            if self._observe is not None and model:
                self._observe(model, api, code, time.perf_counter() - started)

    async def handle_async(self, method: str, path: str, body: bytes, run_blocking: "RunBlocking") -> RestResponse:
        """`handle` for an event loop (see the module docstring). JSON work is GIL-bound
        wherever it runs, so it stays on one thread; the worker pool only holds signature
        calls, which release the GIL."""
        if method == "GET":
            # Status and metadata never touch a model: answered here, so readiness probes are
            # not queued behind slow predictions.
            return self.handle(method, path, body)
        match = _POST_RE.fullmatch(path) if method == "POST" else None
        if match is None or match.group(4).lower() != "predict" or len(body) > INLINE_BODY_BYTES:
            try:
                return await run_blocking(self.handle, method, path, body)
            except ServingError as error:  # the deadline passed
                return _error(error)
        started = time.perf_counter()
        model = unquote(match.group(1))
        code = Code.OK
        try:
            version = _version(match.group(2))
            label = unquote(match.group(3)) if match.group(3) is not None else None
            doc = protocol.parse_json_body(body)
            prepared = self.core.prepare_predict_json(model, version, label, doc)
            future = self.core.submit_prepared_async(prepared)
            if future is not None:
                outputs = await run_blocking(future)
            else:
                outputs = await run_blocking(self.core.run_prepared, prepared)
            return RestResponse(200, protocol.predict_response_json(outputs, prepared.fmt))
        except ServingError as error:
            code = error.code
            return _error(error)
        except Exception as error:  # noqa: BLE001 - never let a request take the server down
            code = Code.INTERNAL
            return _unexpected(method, path, error)
        finally:
            if self._observe is not None:
                self._observe(model, "predict", code, time.perf_counter() - started)

    def _classify_regress(
        self, api: str, model: str, version: int | None, label: str | None, doc: dict[str, Any]
    ) -> bytes:
        signature_name = protocol.signature_name_from_json(doc)
        examples, context = protocol.examples_from_json(doc, api)
        model_input = input_pb2.Input()
        if context is not None:
            model_input.example_list_with_context.context.CopyFrom(context)
            model_input.example_list_with_context.examples.extend(examples)
        else:
            model_input.example_list.examples.extend(examples)
        servable = self.core.store.get_servable(model, version, label)
        if api == "classify":
            _, result = self.core.classify_on(servable, signature_name, model_input)
            return protocol.classify_response_json(
                [[(c.label, c.score) for c in row.classes] for row in result.classifications]
            )
        _, result = self.core.regress_on(servable, signature_name, model_input)
        return protocol.regress_response_json([r.value for r in result.regressions])

    def _status(self, model: str, version: int | None, label: str | None) -> bytes:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if label is not None:
            request.model_spec.version_label = label
        elif version is not None:
            request.model_spec.version.value = version
        response = self.core.get_model_status(request)
        return json_format.MessageToJson(
            response,
            including_default_value_fields=True,
            preserving_proto_field_name=True,
            indent=1,
        ).encode()

    def _metadata(self, model: str, version: int | None, label: str | None) -> bytes:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        if label is not None:
            request.model_spec.version_label = label
        elif version is not None:
            request.model_spec.version.value = version
        response = self.core.get_model_metadata(request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return _pretty(
            {
                "model_spec": {
                    "name": response.model_spec.name,
                    "signature_name": "",
                    "version": str(response.model_spec.version.value),
                },
                "metadata": {
                    "signature_def": json_format.MessageToDict(
                        signature_map,
                        including_default_value_fields=True,
                        preserving_proto_field_name=True,
                    )
                },
            }
        )


async def within_deadline(future: "asyncio.Future[Any]", timeout_seconds: float | None) -> Any:
    """Awaits `future`; past the deadline cancels it and raises DEADLINE_EXCEEDED. A timer
    handle instead of `asyncio.wait_for`, which costs a task and two futures per request."""
    if timeout_seconds is None:
        return await future
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    timer = asyncio.get_running_loop().call_later(timeout_seconds, expire)
    try:
        return await future
    except asyncio.CancelledError:
        if expired:
            raise ServingError(Code.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        raise
    finally:
        timer.cancel()


def make_run_blocking(executor: Executor, timeout_seconds: float | None) -> RunBlocking:
    """`await run_blocking(fn, *args)` runs fn in `executor`; `await run_blocking(future)` waits
    for an asyncio future already running (the batcher's). Past the deadline: DEADLINE_EXCEEDED."""

    async def run_blocking(function: Callable[..., Any] | asyncio.Future, *args: Any) -> Any:
        if isinstance(function, asyncio.Future):
            future = function
        else:
            future = asyncio.get_running_loop().run_in_executor(executor, function, *args)
        return await within_deadline(future, timeout_seconds)

    return run_blocking


@dataclass(frozen=True)
class RestOptions:
    max_body_bytes: int = 256 * 1024 * 1024
    timeout_seconds: float = 30.0
    enable_cors: bool = False
    metrics_path: str | None = None
    # Adds `X-Serving-Pid: <pid>` to every response (set with --num_server_processes > 1, so a
    # client or test can see which process answered).
    pid_header: bool = False


def make_app(
    api: RestApi,
    executor: Executor,
    options: RestOptions,
    metrics: Callable[[], bytes] | None = None,
) -> web.Application:
    """The aiohttp application: one catch-all route, everything else in `api.handle`."""

    cors = (
        {
            "Access-Control-Allow-Origin": "*",
            "Access-Control-Allow-Methods": "POST, GET",
            "Access-Control-Allow-Headers": "Content-Type",
        }
        if options.enable_cors
        else {}
    )
    if options.pid_header:
        cors = {**cors, "X-Serving-Pid": str(os.getpid())}
    headers = {**JSON_HEADERS, **cors}

    def reply(status: int, body: bytes) -> web.Response:
        return web.Response(status=status, body=body, headers=headers)

    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if options.metrics_path is not None and metrics is not None and path == options.metrics_path:
            return web.Response(body=metrics(), headers={"Content-Type": "text/plain; version=0.0.4"})
        if not _API_RE.fullmatch(path):
            return web.Response(status=404, text="Not Found", headers=cors)
        if request.method == "OPTIONS" and options.enable_cors:
            origin = request.headers.get("Origin", "")
            if not origin.startswith(("http://", "https://")):
                return reply(400, protocol.error_json("Invalid CORS preflight request: missing Origin"))
            return web.Response(status=200, headers=cors)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return reply(
                413,
                protocol.error_json(
                    f"Request body is larger than the server's limit of {options.max_body_bytes} "
                    "bytes (--rest_api_max_body_bytes)"
                ),
            )
        except Exception as error:  # noqa: BLE001 - a broken gzip stream, a reset connection
            return reply(400, protocol.error_json(f"Could not read the request body: {error}"))
        result = await api.handle_async(request.method, path, body, run_blocking)
        return reply(result.status, result.body)

    run_blocking = make_run_blocking(executor, options.timeout_seconds)

    app = web.Application(client_max_size=options.max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app
