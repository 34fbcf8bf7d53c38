"""Fixtures for the kubeflow tests.

`FakeKfp` is a loopback HTTP server speaking the slice of the KFP v2beta1 REST API that `submit` uses.

It is a real server on an ephemeral port, so the real kfp.Client talks to it over HTTP. `mode`
makes it behave like a Kubeflow that is healthy ("ok"), refuses every request ("401"/"403"),
sends the browser to a login page ("redirect"/"html") or lets health checks through but
refuses runs ("deny-runs"), or rejects the run itself ("bad-run").
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlparse

import pytest

# Project decision: tf_keras everywhere, set before anything imports TensorFlow.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeKfp:
    mode: str = "ok"
    requests: list[Recorded] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeKfp":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _reply(self, status: int, payload: Any = None, headers: dict[str, str] | None = None,
                       content_type: str = "application/json") -> None:
                body = b"" if payload is None else (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = urlparse(self.path).path
                fake.requests.append(Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if fake.mode in ("401", "403"):
                    self._reply(int(fake.mode), {"error": "denied", "code": 16, "message": "denied"})
                    return
                if fake.mode == "redirect":
                    self._reply(302, None, {"Location": "/dex/auth?client_id=kubeflow-oidc-authservice"})
                    return
                if fake.mode == "html":
                    self._reply(200, "<html><body>Log in</body></html>", content_type="text/html")
                    return
                if path == "/apis/v2beta1/healthz" and method == "GET":
                    self._reply(200, {"commit_sha": "fake", "tag_name": "2.0.5", "multi_user": False})
                    return
                if fake.mode == "deny-runs":
                    self._reply(403, {"error": "forbidden", "code": 7, "message": "user may not create runs"})
                    return
                if path == "/apis/v2beta1/experiments" and method == "GET":
                    query = parse_qs(urlparse(self.path).query)
                    wanted = json.loads(query["filter"][0])["predicates"][0]["stringValue"] if "filter" in query else None
                    found = [
                        {"experiment_id": eid, "display_name": name}
                        for name, eid in fake.experiments.items()
                        if wanted in (None, name)
                    ]
                    self._reply(200, {"experiments": found, "total_size": len(found)})
                    return
                if path == "/apis/v2beta1/experiments" and method == "POST":
                    eid = f"exp-{len(fake.experiments) + 1}"
                    fake.experiments[body["display_name"]] = eid
                    self._reply(200, {"experiment_id": eid, "display_name": body["display_name"]})
                    return
                if path == "/apis/v2beta1/runs" and method == "POST" and fake.mode == "bad-run":
                    self._reply(400, {"error": "bad", "code": 3, "message": "Invalid input error: pipeline spec is invalid"})
                    return
                if path == "/apis/v2beta1/runs" and method == "POST":
                    self._reply(200, {
                        "run_id": "run-1",
                        "experiment_id": body.get("experiment_id"),
                        "display_name": body.get("display_name"),
                        "state": "PENDING",
                    })
                    return
                self._reply(404, {"error": f"no route {method} {path}"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def posted(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == "POST" and r.path.startswith(path)]


@pytest.fixture
def fake_kfp() -> Iterator[FakeKfp]:
    fake = FakeKfp().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening: bound, closed, so connecting is refused."""
    from serving.process import free_port

    return free_port()


IMAGE = "registry.example.com/tfx-serving-kit:0.1.0"


@pytest.fixture(scope="session")
def image() -> str:
    """The pipeline image the session's compiled pipeline names."""
    return IMAGE


@pytest.fixture(scope="session")
def compiled_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's pipeline compiled once per session as `python -m kubeflow compile` does."""
    from components.infra_validator import make_infra_validator
    from kubeflow.compile import compile_pipeline
    from pipeline.configs import PipelineConfig

    out = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    config = PipelineConfig.for_data(
        "digits", pipeline_root="gs://bucket/pipelines", serving_dir="gs://bucket/models"
    )
    return compile_pipeline(config=config, image=IMAGE, output=out, infra_validator=make_infra_validator())
