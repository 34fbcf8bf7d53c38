"""TF Serving's REST API (`/v1/models/...`) as a thin aiohttp adapter over `serving.server.core`.

`RestApi.handle(method, path, body)` is the whole API as a plain function returning
(HTTP status, JSON bytes): URL parsing with TF Serving's regexes, body parsing, the core call
and the error mapping. `RestApi.handle_async` is the same for the event loop: a small predict
is parsed and answered on the loop thread and only its signature call leaves it (to a worker
thread, or as the batcher's future); everything else runs `handle` in a worker thread. The
aiohttp part only reads the body (size limit, gzip) and applies the deadline. With
`image_api=True` (`--enable_raw_image_api`) it also answers the `:classify_image` extension
(`serving.server.raw_images`); off, that URL is malformed, as in TF Serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import unquote

import orjson
from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, input_pb2

from serving.saved_model import DEFAULT_SIGNATURE
from serving.server import health, raw_images, rest_json, security
from serving.server.core import RunBlocking, ServingCore, make_run_blocking
from serving.server.metrics import Observer
from serving.server.servable import PredictCall
from serving.errors import Code, ServingError, invalid

logger = logging.getLogger(__name__)

# model_servers/http_rest_api_util.cc (kPredictionApiGegex, kModelStatusApiRegex); matched whole.
_VERSION = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_POST_RE = re.compile(r"/v1/models/([^/:]+)" + _VERSION + ":(classify|regress|predict)", re.IGNORECASE)
_GET_RE = re.compile(r"/v1/models(?:/([^/:]+))?" + _VERSION + "(?:/(metadata))?", re.IGNORECASE)
# The opt-in extension (serving/server/raw_images.py): a verb TF Serving's grammar does not have.
_IMAGE_RE = re.compile(r"/v1/models/([^/:]+)" + _VERSION + ":(" + raw_images.API + ")", re.IGNORECASE)
_API_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_INT64_MAX = 2**63 - 1
JSON_HEADERS = {"Content-Type": "application/json"}

# Bodies up to this size are parsed on the event loop; bigger ones in a worker thread.
INLINE_BODY_BYTES = 256 * 1024


@dataclass(frozen=True)
class RestResponse:
    status: int
    body: bytes


def _error_response(method: str, path: str, error: Exception) -> tuple[Code, RestResponse]:
    """TF Serving's status and `{"error": ...}` body for a failed request. An error no handler
    expected is a 500, logged with its traceback; the server lives on."""
    if not isinstance(error, ServingError):
        logger.exception("unexpected error for %s %s", method, path)
        error = ServingError(Code.INTERNAL, f"{type(error).__name__}: {error}")
    return error.code, RestResponse(error.http_status, rest_json.error_json(error.message))


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    value = int(text)
    if value > _INT64_MAX:
        raise invalid(f"Failed to convert version: {text} to numeric.")
    return value


def _fill_spec(spec: Any, route: Route) -> None:
    spec.name = route.model
    if route.label is not None:
        spec.version_label = route.label
    elif route.version is not None:
        spec.version.value = route.version


def _pretty(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2)


@dataclass(frozen=True)
class Route:
    """What a request's method and URL name (TF Serving's URL grammar)."""

    api: str  # predict, classify, regress, metadata, status (or classify_image, the extension)
    model: str
    version: int | None
    label: str | None


def parse_route(method: str, path: str, *, image_api: bool = False) -> Route:
    """The API, model and version or label a request URL names; INVALID_ARGUMENT otherwise.
    `image_api` also accepts the `:classify_image` extension."""
    regex = _POST_RE if method == "POST" else _GET_RE if method == "GET" else None
    match = regex.fullmatch(path) if regex is not None else None
    if match is None and image_api and method == "POST":
        match = _IMAGE_RE.fullmatch(path)
    if match is None:
        raise invalid(f"Malformed request: {method} {path}")
    if match.group(1) is None:
        raise invalid("Missing model name in request.")
    if method == "POST":
        api = match.group(4).lower()
    else:
        api = "metadata" if match.group(4) else "status"
    label = unquote(match.group(3)) if match.group(3) is not None else None
    return Route(api, unquote(match.group(1)), _version(match.group(2)), label)


@dataclass
class _Exchange:
    """What one request came to: its route once parsed, its status code and answer."""

    route: Route | None = None
    code: Code = Code.OK
    response: RestResponse | None = None


class RestApi:
    """The REST API on top of a ServingCore, independent of any HTTP library.

    `handle` answers any request on the calling thread; `handle_async` answers on the event
    loop (see the module docstring). Both parse the URL with `parse_route` and go through
    `_exchange`, the one place that answers errors and records metrics."""

    def __init__(self, core: ServingCore, observe: Observer | None = None, *, image_api: bool = False) -> None:
        self.core = core
        self._observe = observe
        self.image_api = image_api

    def handle(self, method: str, path: str, body: bytes, query: str = "") -> RestResponse:
        with self._exchange(method, path) as exchange:
            route = exchange.route = parse_route(method, path, image_api=self.image_api)
            if route.api == raw_images.API:
                servable = self.core.store.get_servable(route.model, route.version, route.label)
                answer = raw_images.classify_image(self.core, servable, body, raw_images.top_k_from_query(query))
                exchange.response = RestResponse(200, _pretty(answer))
            elif route.api == "metadata":
                exchange.response = RestResponse(200, self._metadata(route))
            elif route.api == "status":
                exchange.response = RestResponse(200, self._status(route))
            elif route.api == "predict":
                call, fmt = self._predict_call(route, rest_json.parse_json_body(body))
                exchange.response = RestResponse(200, rest_json.predict_response_json(self.core.predict(call), fmt))
            else:
                exchange.response = RestResponse(200, self._classify_regress(route, rest_json.parse_json_body(body)))
        return exchange.response

    async def handle_async(
        self, method: str, path: str, body: bytes, run_blocking: "RunBlocking", query: str = ""
    ) -> RestResponse:
        """`handle` for an event loop. JSON work is GIL-bound wherever it runs, so a small
        predict stays on the loop thread and only its signature call leaves it; status and
        metadata never touch a model, so they are answered here (readiness probes never queue
        behind slow predictions); everything else runs `handle` in a worker thread."""
        if method == "GET":
            return self.handle(method, path, body)
        match = _POST_RE.fullmatch(path) if method == "POST" else None
        if match is None or match.group(4).lower() != "predict" or len(body) > INLINE_BODY_BYTES:
            try:
                return await run_blocking(self.handle, method, path, body, query)
            except ServingError as error:  # the deadline passed
                return _error_response(method, path, error)[1]
        with self._exchange(method, path) as exchange:
            route = exchange.route = parse_route(method, path)
            call, fmt = self._predict_call(route, rest_json.parse_json_body(body))
            outputs = await self.core.predict_async(call, run_blocking)
            exchange.response = RestResponse(200, rest_json.predict_response_json(outputs, fmt))
        return exchange.response

    @contextlib.contextmanager
    def _exchange(self, method: str, path: str) -> Iterator[_Exchange]:
        """One request, sync or async: an error becomes TF Serving's answer (`_error_response`)
        and metrics record the route, status and time once the answer is known."""
        exchange = _Exchange()
        started = time.perf_counter()
        try:
            yield exchange
        except Exception as error:  # noqa: BLE001 - never let a request take the server down
            exchange.code, exchange.response = _error_response(method, path, error)
        finally:
            if self._observe is not None and exchange.route is not None:
                self._observe(exchange.route.model, exchange.route.api, exchange.code, time.perf_counter() - started)

    def _predict_call(self, route: Route, doc: dict[str, Any]) -> tuple[PredictCall, rest_json.RequestFormat]:
        """The JSON body as the core's PredictCall, and the format to answer in."""
        signature_name = rest_json.signature_name_from_json(doc)
        servable = self.core.store.get_servable(route.model, route.version, route.label)
        signature = servable.signatures.get(signature_name or DEFAULT_SIGNATURE)
        if signature is None:
            raise invalid(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        inputs, fmt = rest_json.predict_inputs_from_json(doc, signature.input_specs, signature_name)
        return PredictCall(servable, signature, inputs), fmt

    def _classify_regress(self, route: Route, doc: dict[str, Any]) -> bytes:
        signature_name = rest_json.signature_name_from_json(doc)
        examples, context = rest_json.examples_from_json(doc, route.api)
        model_input = input_pb2.Input()
        if context is not None:
            model_input.example_list_with_context.context.CopyFrom(context)
            model_input.example_list_with_context.examples.extend(examples)
        else:
            model_input.example_list.examples.extend(examples)
        servable = self.core.store.get_servable(route.model, route.version, route.label)
        if route.api == "classify":
            _, result = self.core.classify_on(servable, signature_name, model_input)
            return rest_json.classify_response_json(
                [[(c.label, c.score) for c in row.classes] for row in result.classifications]
            )
        _, result = self.core.regress_on(servable, signature_name, model_input)
        return rest_json.regress_response_json([r.value for r in result.regressions])

    def _status(self, route: Route) -> bytes:
        request = get_model_status_pb2.GetModelStatusRequest()
        _fill_spec(request.model_spec, route)
        response = self.core.get_model_status(request)
        return json_format.MessageToJson(
            response,
            including_default_value_fields=True,
            preserving_proto_field_name=True,
            indent=1,
        ).encode()

    def _metadata(self, route: Route) -> bytes:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _fill_spec(request.model_spec, route)
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


@dataclass(frozen=True)
class RestOptions:
    max_body_bytes: int = 256 * 1024 * 1024
    timeout_seconds: float = 30.0
    enable_cors: bool = False
    metrics_path: str | None = None
    # Adds `X-Serving-Pid: <pid>` to every response (set with --num_server_processes > 1, so a
    # client or test can see which process answered).
    pid_header: bool = False
    # --auth_token_file's token: every request but /healthz and /readyz must carry it.
    auth_token: str = field(default="", repr=False)


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
        if path in health.HEALTH_PATHS and request.method in ("GET", "HEAD"):
            return reply(*health.rest_health(path, api.core.store))
        if options.auth_token and not security.token_matches(request.headers.get("Authorization"), options.auth_token):
            return web.Response(
                status=401,
                body=rest_json.error_json(security.UNAUTHENTICATED_MESSAGE),
                headers={**headers, "WWW-Authenticate": "Bearer"},
            )
        if options.metrics_path is not None and metrics is not None and path == options.metrics_path:
            return web.Response(body=metrics(), headers={"Content-Type": "text/plain; version=0.0.4"})
        if not _API_RE.fullmatch(path):
            return web.Response(status=404, text="Not Found", headers=cors)
        if request.method == "OPTIONS" and options.enable_cors:
            origin = request.headers.get("Origin", "")
            if not origin.startswith(("http://", "https://")):
                return reply(400, rest_json.error_json("Invalid CORS preflight request: missing Origin"))
            return web.Response(status=200, headers=cors)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return reply(
                413,
                rest_json.error_json(
                    f"Request body is larger than the server's limit of {options.max_body_bytes} "
                    "bytes (--rest_api_max_body_bytes)"
                ),
            )
        except Exception as error:  # noqa: BLE001 - a broken gzip stream, a reset connection
            return reply(400, rest_json.error_json(f"Could not read the request body: {error}"))
        result = await api.handle_async(request.method, path, body, run_blocking, request.rel_url.raw_query_string)
        return reply(result.status, result.body)

    run_blocking = make_run_blocking(executor, options.timeout_seconds)

    app = web.Application(client_max_size=options.max_body_bytes)
    # [\s\S], not `.`: a path with an encoded newline (/v1/models/%0A) must reach the handler too.
    app.router.add_route("*", "/{tail:[\\s\\S]*}", handler)
    return app
