"""Submit a compiled pipeline to a Kubeflow Pipelines 2.x endpoint with the kfp client.

`load_package` reads what `kubeflow.compile` wrote (the KubeflowV2DagRunner's PipelineJob
JSON, or a PipelineSpec YAML) and checks it parses as a `PipelineSpec`. `check_endpoint`
asks the endpoint's health route first, without following redirects, so that an unreachable
host or a login page becomes one clear sentence instead of the kfp client's retry loop and
traceback. `submit` then creates (or reuses) the experiment and starts the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

logger = logging.getLogger(__name__)

HEALTHZ_PATH = "/apis/v2beta1/healthz"
_LOGIN_HINT = (
    "log in first: export KFP_TOKEN=<bearer token> or KFP_COOKIES='authservice_session=...' "
    "(see docs/kubeflow.md, 'Authentication')"
)


class SubmitError(RuntimeError):
    """A package that cannot be submitted or an endpoint that will not take it; one line."""


@dataclass(frozen=True)
class Package:
    """A compiled pipeline ready to submit."""

    path: Path
    pipeline_spec: dict[str, Any]
    pipeline_name: str
    display_name: str
    pipeline_root: str | None
    parameters: dict[str, Any]
    tasks: tuple[str, ...]
    images: tuple[str, ...]
    beam_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Credentials:
    """How to get past a Kubeflow login. Read from the environment by `from_env`, never argv."""

    token: str | None = None
    cookies: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Credentials":
        return cls(token=environ.get("KFP_TOKEN") or None, cookies=environ.get("KFP_COOKIES") or None)

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = self.cookies
        return headers


@dataclass(frozen=True)
class SubmitRequest:
    host: str
    package: Package
    experiment: str
    run_name: str
    pipeline_root: str | None = None
    namespace: str | None = None
    enable_caching: bool | None = None
    service_account: str | None = None
    credentials: Credentials = field(default_factory=Credentials)


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    experiment_id: str
    url: str


def load_package(path: str | Path) -> Package:
    """Reads a compiled pipeline; raises SubmitError when it is missing or not a PipelineSpec."""
    path = Path(path)
    if not path.is_file():
        raise SubmitError(
            f"no compiled pipeline at {path}: run `python -m kubeflow compile --image IMAGE` first "
            "or pass --package FILE"
        )
    text = path.read_text()
    try:
        if path.suffix == ".json":
            documents = [json.loads(text)]
        else:
            documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except ValueError as error:  # json.JSONDecodeError
        raise SubmitError(f"{path} is not valid JSON: {error}") from None
    except yaml.YAMLError as error:
        raise SubmitError(f"{path} is not valid YAML: {error}".splitlines()[0]) from None
    if not documents or not isinstance(documents[0], dict):
        raise SubmitError(f"{path} holds no pipeline: expected a PipelineJob JSON or PipelineSpec YAML")
    document = documents[0]
    runtime: dict[str, Any] = {}
    if "pipelineSpec" in document:  # the KubeflowV2DagRunner's PipelineJob wrapper
        spec_dict = document["pipelineSpec"]
        runtime = document.get("runtimeConfig") or {}
        display_name = document.get("displayName") or ""
    else:
        spec_dict = document
        display_name = ""
    spec = pipeline_spec_pb2.PipelineSpec()
    try:
        json_format.ParseDict(spec_dict, spec)
    except json_format.ParseError as error:
        raise SubmitError(f"{path} is not a valid KFP PipelineSpec: {error}") from None
    if not spec.pipeline_info.name or not spec.root.dag.tasks:
        raise SubmitError(f"{path} is not a compiled pipeline: it has no pipelineInfo.name or no tasks")
    # deploymentSpec is a free-form Struct in the proto; read the executors' images from JSON.
    images = sorted(_images(spec_dict))
    return Package(
        path=path,
        pipeline_spec=spec_dict,
        pipeline_name=spec.pipeline_info.name,
        display_name=display_name or spec.pipeline_info.name,
        pipeline_root=runtime.get("gcsOutputDirectory") or spec.default_pipeline_root or None,
        parameters=_runtime_parameters(runtime),
        tasks=tuple(sorted(spec.root.dag.tasks)),
        images=tuple(images),
        beam_args=_beam_args(spec_dict),
    )


def _images(spec_dict: Mapping[str, Any]) -> set[str]:
    executors = spec_dict.get("deploymentSpec", {}).get("executors", {})
    return {e["container"]["image"] for e in executors.values() if "container" in e}


def _beam_args(spec_dict: Mapping[str, Any]) -> tuple[str, ...]:
    """The pipeline's Beam arguments: KubeflowV2DagRunner appends them to every container's
    arguments, after the `{{$}}` executor-input placeholder."""
    executors = spec_dict.get("deploymentSpec", {}).get("executors", {})
    for name in sorted(executors):
        args = executors[name].get("container", {}).get("args", [])
        if "{{$}}" in args:
            return tuple(args[args.index("{{$}}") + 1:])
    return ()


def _runtime_parameters(runtime: Mapping[str, Any]) -> dict[str, Any]:
    if runtime.get("parameterValues"):  # schema 2.1: plain JSON values
        return dict(runtime["parameterValues"])
    values = {}
    for name, value in (runtime.get("parameters") or {}).items():  # schema 2.0: typed Value
        values[name] = next(iter(value.values())) if isinstance(value, dict) and value else value
    return values


def default_run_name(package: Package, now: dt.datetime | None = None) -> str:
    stamp = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H-%M-%S")
    return f"{package.pipeline_name} {stamp}"


def describe(request: SubmitRequest) -> str:
    """What `submit` would send, for --dry-run; contacts nothing."""
    package = request.package
    root = request.pipeline_root or package.pipeline_root or "(the KFP server's default)"
    auth = [name for name, value in (("token", request.credentials.token), ("cookies", request.credentials.cookies)) if value]
    rows = [
        ("host", request.host),
        ("package", str(package.path)),
        ("pipeline", f"{package.pipeline_name} ({package.display_name})"),
        ("experiment", request.experiment),
        ("run name", request.run_name),
        ("namespace", request.namespace or "(client default)"),
        ("pipeline root", root),
        ("image(s)", ", ".join(package.images)),
        (f"tasks ({len(package.tasks)})", ", ".join(package.tasks)),
        ("beam", _describe_beam(package.beam_args)),
        ("parameters", json.dumps(package.parameters, sort_keys=True) if package.parameters else "(none)"),
        ("caching", "compile-time settings" if request.enable_caching is None else str(request.enable_caching)),
        ("credentials", f"{', '.join(auth) if auth else 'none'} (values not shown)"),
    ]
    lines = ["dry run: nothing was sent"] + [f"{label + ':':<15}{value}" for label, value in rows]
    return "\n".join(lines)


def _describe_beam(args: tuple[str, ...]) -> str:
    if not args:
        return "TFX default (DirectRunner inside each task's pod)"
    from kubeflow.beam import BeamArgsError, describe

    try:
        return ", ".join(f"{key}={value}" for key, value in describe(args).items())
    except BeamArgsError as error:
        return f"{' '.join(args)} (not valid for this Beam version: {error})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # surface 30x as HTTPError: a redirect here means a login page


def check_endpoint(host: str, credentials: Credentials = Credentials(), timeout: float = 10.0) -> dict[str, Any]:
    """Asks the KFP health route; returns its JSON or raises SubmitError saying what is wrong."""
    base = normalise_host(host)
    url = base + HEALTHZ_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json", **credentials.headers()})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(65536)
    except urllib.error.HTTPError as error:
        raise SubmitError(_http_error_message(base, error.code, error.headers.get("Location"))) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise SubmitError(f"cannot reach Kubeflow Pipelines at {base}: {_reason(reason)}") from None
    try:
        health = json.loads(body)
    except ValueError:
        raise SubmitError(
            f"{base}{HEALTHZ_PATH} did not answer with JSON (probably a login page): {_LOGIN_HINT}"
        ) from None
    if not isinstance(health, dict):
        raise SubmitError(f"{base}{HEALTHZ_PATH} answered {body[:80]!r}, not the KFP health object")
    return health


def normalise_host(host: str) -> str:
    if not host or host.isspace():
        raise SubmitError("--host is empty: expected the KFP endpoint, e.g. http://localhost:8080")
    if "://" not in host:
        host = "http://" + host
    parsed = urllib.parse.urlparse(host)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SubmitError(f"--host {host!r} is not an http(s) URL: expected e.g. http://localhost:8080")
    return host.rstrip("/")


def _http_error_message(base: str, status: int, location: str | None) -> str:
    if status in (401, 403):
        return f"{base} refused the login (HTTP {status}): {_LOGIN_HINT}"
    if 300 <= status < 400:
        return f"{base} redirected to a login page ({location or 'no Location header'}): {_LOGIN_HINT}"
    if status == 404:
        return (
            f"{base} has no {HEALTHZ_PATH} (HTTP 404): not a Kubeflow Pipelines 2.x API; "
            "expected e.g. http://localhost:8080 after "
            "`kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80`"
        )
    return f"Kubeflow Pipelines at {base} is not healthy: HTTP {status} from {HEALTHZ_PATH}"


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is the port-forward or ingress running?)"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    return str(reason) or type(reason).__name__


ClientFactory = Callable[..., Any]


def _kfp_client(**kwargs: Any) -> Any:
    import kfp  # imported late: kfp pulls in kubernetes and the server API at import

    return kfp.Client(**kwargs)


def submit(request: SubmitRequest, client_factory: ClientFactory = _kfp_client) -> SubmittedRun:
    """Creates or reuses the experiment and starts a run; raises SubmitError with one line."""
    host = normalise_host(request.host)
    check_endpoint(host, request.credentials)
    package = request.package
    from kfp_server_api.exceptions import ApiException  # the kfp client's HTTP error type
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        with tempfile.TemporaryDirectory(prefix="kfp-submit-") as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            # kfp.Client only reads .yaml packages holding a bare PipelineSpec.
            spec_file = Path(tmp) / "pipeline.yaml"
            spec_file.write_text(yaml.safe_dump(package.pipeline_spec, sort_keys=True))
            client = client_factory(
                host=host,
                existing_token=request.credentials.token,
                cookies=request.credentials.cookies,
                **({"namespace": request.namespace} if request.namespace else {}),
            )
            # The client prints links on stdout; the CLI prints its own summary instead.
            with contextlib.redirect_stdout(io.StringIO()):
                result = client.create_run_from_pipeline_package(
                    pipeline_file=str(spec_file),
                    arguments=package.parameters or None,
                    run_name=request.run_name,
                    experiment_name=request.experiment,
                    namespace=request.namespace,
                    pipeline_root=request.pipeline_root or package.pipeline_root,
                    enable_caching=request.enable_caching,
                    service_account=request.service_account,
                )
    except ApiException as error:
        raise SubmitError(_api_error_message(host, error)) from None
    except (TimeoutError, ValueError) as error:  # the client's healthz retries; name clashes
        raise SubmitError(f"Kubeflow Pipelines at {host} did not accept the run: {error}") from None
    except (Urllib3Error, OSError) as error:
        raise SubmitError(f"lost Kubeflow Pipelines at {host}: {_reason(error)}") from None
    run_info = result.run_info
    run_id = result.run_id
    return SubmittedRun(
        run_id=run_id,
        experiment_id=getattr(run_info, "experiment_id", "") or "",
        url=f"{host}/#/runs/details/{run_id}",
    )


def _api_error_message(host: str, error: Any) -> str:
    status = getattr(error, "status", None)
    if status in (401, 403):
        return f"{host} refused the login (HTTP {status}): {_LOGIN_HINT}"
    detail = ""
    body = getattr(error, "body", None)
    if body:
        try:
            decoded = json.loads(body)
            detail = decoded.get("message") or decoded.get("error") or ""
        except (ValueError, AttributeError):
            detail = str(body)[:200]
    reason = getattr(error, "reason", "") or ""
    return f"Kubeflow Pipelines at {host} rejected the run: HTTP {status} {reason} {detail}".strip()
