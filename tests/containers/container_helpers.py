"""Helpers for the container tests: the Docker client, polling, HTTP as curl does it."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Callable

# Debian's client, matching its engine (another client may come first on PATH).
DOCKER = "/usr/bin/docker"
# The names bin/docker-setup builds (same environment variables, same defaults).
PIPELINE_IMAGE = os.environ.get("TSK_PIPELINE_IMAGE", "tfx-serving-kit:local")
SERVING_IMAGE = os.environ.get("TSK_SERVING_IMAGE", "tfx-serving-kit-server:local")
# Every container a test session starts carries this label (the session's process id), so the
# session removes its own leftovers and never another session's containers.
LABEL = f"tfx-serving-kit.test-session={os.getpid()}"


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the Docker client; on failure the assertion shows its stderr."""
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def inspect(ref: str) -> dict[str, Any]:
    return json.loads(docker("inspect", ref).stdout)[0]


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """One HTTP request as curl would send it; (status, parsed JSON or text); (0, error) if unreachable."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return 0, str(error)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def host_port(container: str, container_port: int) -> int:
    """The loopback host port Docker published `container_port` on."""
    out = docker("port", container, f"{container_port}/tcp").stdout.split()
    return int(out[0].rsplit(":", 1)[1])
