"""Start, wait for and stop a model-server process: the one way tests, the benchmark, the tools and the supervisor launch one.

`spawn` starts any server command in a session of its own (so a stop reaches its children),
`stop_processes` stops one or many (SIGTERM, then SIGKILL after a timeout), and
`wait_for_ready_files` waits for the embedded server's `--ready_file`, the readiness signal
written together with the one `SERVING grpc=HOST:PORT rest=HOST:PORT` line on stdout
(`announce_ready`, which the server and its supervisor call). `ModelServerProcess` puts them
together for the release tools: the real `tensorflow_model_server` when it is on PATH, else
`python -m serving.server` as one process (`--num_server_processes=1`), on free loopback ports
with its output in a log file.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Sequence

from serving import layout
from serving.errors import LoadTimeout, ServerStartError, shorten

logger = logging.getLogger(__name__)

# Names of the ways to run a local model server.
SERVER_AUTO = "auto"
SERVER_BINARY = "tensorflow_model_server"
SERVER_EMBEDDED = "embedded"
SERVER_CHOICES = (SERVER_AUTO, SERVER_BINARY, SERVER_EMBEDDED)

_LOG_TAIL_LINES = 30


def free_port() -> int:
    """An unused loopback TCP port (the OS picks; a tiny race with other binders is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_command() -> list[str]:
    """The argv prefix of the embedded server, run with this interpreter."""
    return [sys.executable, "-m", "serving.server"]


def server_command(server: str = SERVER_AUTO) -> tuple[list[str], str]:
    """(argv prefix, description) of the model server to run.

    `auto` prefers the real `tensorflow_model_server` on PATH and falls back to the embedded
    server run with this interpreter.
    """
    if server not in SERVER_CHOICES:
        raise ValueError(f"server {server!r} is not one of {', '.join(SERVER_CHOICES)}")
    if server in (SERVER_AUTO, SERVER_BINARY):
        binary = shutil.which("tensorflow_model_server")
        if binary:
            return [binary], f"tensorflow_model_server ({binary})"
        if server == SERVER_BINARY:
            raise ServerStartError(
                "tensorflow_model_server is not on PATH; install TF Serving or use server='embedded'"
            )
    return embedded_command(), "embedded server (python -m serving.server)"


# Set by `spawn(die_with_parent=True)` to the spawner's pid; `python -m serving.server` reads it
# at start-up (`die_with_parent_from_env`). The child asks for its SIGTERM itself, after exec,
# because a preexec_fn runs Python between fork and exec, which gRPC's fork handlers do not
# survive when the parent has live channels: the child aborted with "epoll_wait: Bad file
# descriptor" before exec (grpc/grpc#43055, about 1 spawn in 100 while the tests' gRPC
# clients were busy).
PARENT_PID_ENV = "SERVING_DIE_WITH_PARENT_PID"


def die_with_parent_from_env() -> None:
    """In a server started by `spawn(die_with_parent=True)`: SIGTERM when that parent dies
    (Linux prctl PR_SET_PDEATHSIG), at once if it died already. Nothing without the variable."""
    parent = os.environ.pop(PARENT_PID_ENV, "")
    if not parent.isdigit():
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the parent was gone before prctl took hold
        os.kill(os.getpid(), signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    *,
    stdout: IO[Any] | int | None,
    stderr: IO[Any] | int | None = subprocess.STDOUT,
    die_with_parent: bool = False,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen:
    """Starts a server process in a session of its own (a Ctrl-C to the caller's process group
    does not reach it; `stop_processes` signals its whole group), with the project's Keras
    (tf_keras) and unbuffered output set in its environment. With `die_with_parent` an embedded
    server gets SIGTERM when the calling process dies."""
    env = dict(os.environ)
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(PARENT_PID_ENV, None)
    if die_with_parent:
        env[PARENT_PID_ENV] = str(os.getpid())
    return subprocess.Popen(
        list(argv),
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def stop_processes(processes: Sequence[subprocess.Popen], timeout: float = 10.0, *, name: str = "server process") -> None:
    """SIGTERM to each running process's group, then waits (one deadline for all); SIGKILL
    for any still running after `timeout` seconds."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.error("%s %d did not stop within %g s; killing it", name, process.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ready_line(host: str, grpc_port: int, rest_port: int | None) -> str:
    """The line a ready server prints on stdout: `SERVING grpc=HOST:PORT rest=HOST:PORT|disabled`."""
    rest_text = f"{host}:{rest_port}" if rest_port else "disabled"
    return f"SERVING grpc={host}:{grpc_port} rest={rest_text}"


def write_ready_file(path: str | os.PathLike[str], payload: dict) -> None:
    """Writes the ready file atomically (a reader never sees half of it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with layout.atomic_file(target) as out:
        out.write(json.dumps(payload).encode())


def announce_ready(
    host: str, grpc_port: int, rest_port: int | None, ready_file: str | None, **extra: Any
) -> None:
    """A server is ready: `--ready_file` gets the ports and pid (plus `extra`), stdout the line."""
    if ready_file:
        write_ready_file(ready_file, {"grpc_port": grpc_port, "rest_port": rest_port, "pid": os.getpid(), **extra})
    print(ready_line(host, grpc_port, rest_port), flush=True)


def wait_for_ready_files(
    processes: Sequence[subprocess.Popen],
    ready_files: Sequence[str | os.PathLike[str]],
    deadline: float,
    *,
    interrupted: Callable[[], bool] = lambda: False,
) -> list[dict] | None:
    """Waits until each process wrote its ready file; returns their contents, or None once
    `interrupted()` is true. Raises ServerStartError naming a process that exited first, and
    LoadTimeout at `deadline` (a time.monotonic() value)."""
    paths = [Path(p) for p in ready_files]
    while not all(path.exists() for path in paths):
        failed = [p for p in processes if p.poll() is not None]
        if failed:
            raise ServerStartError(
                f"server process {failed[0].pid} exited with {failed[0].returncode} before it was ready"
            )
        if interrupted():
            return None
        if time.monotonic() > deadline:
            raise LoadTimeout("server processes not ready before the deadline")
        time.sleep(0.1)
    return [json.loads(path.read_text()) for path in paths]


class ModelServerProcess:
    """A TF Serving-compatible server process on free loopback ports, its output in a log file.

    Give either `model_name` + `model_base_path` or `model_config_file`. Use as a context manager
    or call start() / stop(); stop() is safe to call more than once and after a failed start().
    """

    def __init__(
        self,
        *,
        model_name: str | None = None,
        model_base_path: str | os.PathLike[str] | None = None,
        model_config_file: str | os.PathLike[str] | None = None,
        server: str = SERVER_AUTO,
        extra_args: Sequence[str] = (),
        pick_ports: bool = False,
        one_process: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        """`pick_ports` (embedded server only): the server binds ports the OS chooses and reports
        them, with its pid, in a ready file; wait_until_ready() reads it. `one_process=False`
        keeps the embedded server's default of one process per core."""
        if model_config_file is None and not (model_name and model_base_path):
            raise ValueError("give model_name and model_base_path, or model_config_file")
        self._command, self.description = server_command(server)
        self._pick_ports = pick_ports
        if pick_ports:
            self.grpc_port, self.rest_port = 0, 0
            self._args = ["--pick_unused_ports"]
        else:
            self.grpc_port = free_port()
            self.rest_port = free_port()
            while self.rest_port == self.grpc_port:
                self.rest_port = free_port()
            self._args = [f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}"]
        if model_config_file is not None:
            self._args.append(f"--model_config_file={model_config_file}")
        else:
            self._args += [f"--model_name={model_name}", f"--model_base_path={model_base_path}"]
        if one_process and self._command == embedded_command():
            # One process, not one per core: these servers check a model or host a live check
            # beside the pipeline, where a second copy of TensorFlow only costs memory and start time.
            self._args.append("--num_server_processes=1")
        self._args += list(extra_args)
        self._die_with_parent = die_with_parent
        self.process: subprocess.Popen | None = None
        self.ready: dict = {}  # with pick_ports: the ready file (ports, pid, worker_pids)
        self._log_dir: str | None = None
        self._log_handle = None
        self._final_logs: str | None = None

    def __repr__(self) -> str:
        return f"ModelServerProcess({self.description}, grpc={self.grpc_endpoint})"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def rest_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def argv(self) -> list[str]:
        return [*self._command, *self._args]

    def start(self) -> None:
        if self.process is not None:
            raise RuntimeError(f"{self!r} was already started; create a new one to restart")
        self._log_dir = tempfile.mkdtemp(prefix="model-server-log-")
        if self._pick_ports:
            self._args.append(f"--ready_file={self._ready_file()}")
        self._log_handle = open(os.path.join(self._log_dir, "server.log"), "wb")
        logger.info("starting %s: %s", self.description, " ".join(self.argv))
        try:
            self.process = spawn(self.argv, stdout=self._log_handle, die_with_parent=self._die_with_parent)
        except OSError as error:
            raise ServerStartError(f"could not run {self.argv[0]}: {error}") from error

    def exit_code(self) -> int | None:
        """None while running (or never started), else the exit code."""
        return None if self.process is None else self.process.poll()

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _ready_file(self) -> str:
        return os.path.join(self._log_dir or "", "ready.json")

    def wait_until_ready(self, timeout: float) -> dict:
        """With pick_ports: waits for the ready file, takes the ports from it and returns it."""
        (self.ready,) = wait_for_ready_files([self.process], [self._ready_file()], time.monotonic() + timeout)
        self.grpc_port, self.rest_port = self.ready["grpc_port"], self.ready["rest_port"]
        return self.ready

    def wait_until_serving(self, deadline: float) -> float:
        """Waits (until `deadline`, a time.time() value) for the gRPC port; returns seconds waited."""
        if self.process is None:
            raise RuntimeError("start() the server first")
        begin = time.monotonic()
        while time.time() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.description} exited with code {code} before serving: {self.failure_lines()}"
                )
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=0.5):
                    return time.monotonic() - begin
            time.sleep(0.2)
        raise LoadTimeout(
            f"{self.description} did not open port {self.grpc_port} within the deadline; "
            f"last log lines: {shorten(self.log_tail(8))}"
        )

    def logs(self) -> str:
        if self._final_logs is not None:
            return self._final_logs
        if self._log_dir is None:
            return ""
        with contextlib.suppress(OSError):
            return Path(self._log_dir, "server.log").read_text(errors="replace")
        return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def failure_lines(self) -> str:
        """The log's error lines (else its last lines), on one line: why the server gave up."""
        lines = self.logs().splitlines()
        errors = [line for line in lines if any(w in line.lower() for w in ("error", "failed", "fatal"))]
        return shorten(" | ".join((errors or lines)[-4:]) or "no log output")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            stop_processes([self.process], timeout, name=self.description)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
            self._final_logs = self.logs()  # the whole file, now that the server is gone
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> "ModelServerProcess":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
