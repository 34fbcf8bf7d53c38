"""`--num_server_processes=N`: N complete servers sharing the gRPC and REST ports (by default
one per usable core, at most 4; `--num_server_processes=1` serves from one process as TF Serving).

Python serves one request at a time per process (the GIL), so on a machine with several cores
one server process leaves most of them idle. With N > 1 the process started by the user becomes
a supervisor that imports no TensorFlow and serves nothing itself: it chooses the ports (once,
so `--pick_unused_ports` still gives one pair), starts N copies of `python -m serving.server`
with the same flags that bind both ports with SO_REUSEPORT (the kernel spreads new connections
over them), and waits until every copy is ready before it prints the one `SERVING ...` line and
writes `--ready_file` (its own pid, plus `worker_pids`). Every copy loads the models, polls the
base paths (hot reload) and batches on its own; REST responses carry `X-Serving-Pid`. Unless
`--tensorflow_intra_op_parallelism` / `--tensorflow_inter_op_parallelism` are given, each copy
gets cores / N threads for both (TF's default of one per core each would oversubscribe), and
unless the batching parameters set `num_batch_threads`, cores / N batch threads.
The kernel balances connections, not requests: a client with one connection (a gRPC channel,
one keep-alive HTTP session) is served by one copy.

SIGTERM or SIGINT to the supervisor is forwarded to every copy; it exits 0 once they all
stopped. If a copy exits on its own, the supervisor stops the others and exits 1 (let the
process manager restart the whole server). Copies get SIGTERM if the supervisor dies.

Per-process state stays per process: Prometheus metrics (a scrape sees one copy), and a gRPC
`HandleReloadConfigRequest` reaches one copy only (use `--model_config_file` with
`--model_config_file_poll_wait_seconds` to change the config of all of them).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serving.errors import LoadTimeout, ServerStartError
from serving.process import announce_ready, embedded_command, spawn, stop_processes, wait_for_ready_files
from serving.server.cpus import share_per_process, usable_cpus
from serving.server.flags import rest_enabled

logger = logging.getLogger("serving.server")

_READY_TIMEOUT_SECONDS = 600.0


def _reserve_port(host: str, port: int) -> tuple[int, socket.socket]:
    """Checks that nobody holds `port` (0: picks one), then holds it with SO_REUSEPORT.

    The probe binds without SO_REUSEPORT, so it fails when any socket, even one that allows
    sharing, already has the port: two unrelated servers never end up sharing one by accident.
    The held socket never listens, so it takes no connections; it is closed once the copies
    listen."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as error:
            raise OSError(f"cannot use port {port} on {host}: {error}") from None
        port = probe.getsockname()[1]
    held = socket.socket(family, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    held.bind((host, port))
    return port, held


def _stop_all(processes: list[subprocess.Popen]) -> None:
    stop_processes(processes, 30.0)


def _copy_command(args: argparse.Namespace, argv: list[str], grpc_port: int, rest_port: int, ready_file: Path, index: int) -> list[str]:
    """The argv of copy `index`: the user's flags, then these (argparse keeps a repeated flag's
    last value). N copies with TF's default thread pools (one thread per core each) would
    oversubscribe the cores; unless the flags say otherwise, each copy gets its share. A copy
    is told N (for its batch threads) and its index (so it serves rather than supervises)."""
    share = share_per_process(usable_cpus(), args.num_server_processes)
    threads = [
        f"--tensorflow_{kind}_op_parallelism={share}"
        for kind in ("intra", "inter")
        if getattr(args, f"tensorflow_{kind}_op_parallelism") <= 0
    ]
    return [
        *embedded_command(),
        *argv,
        *threads,
        "--pick_unused_ports=false",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--ready_file={ready_file}",
        f"--num_server_processes={args.num_server_processes}",
        f"--server_process_index={index}",
    ]


def _reserve_ports(args: argparse.Namespace) -> tuple[int, int, list[socket.socket]]:
    """(gRPC port, REST port or 0, the held sockets); OSError when a port is taken."""
    held: list[socket.socket] = []
    try:
        grpc_port, sock = _reserve_port(args.host, 0 if args.pick_unused_ports else args.port)
        held.append(sock)
        rest_port = 0
        if rest_enabled(args):
            rest_port, sock = _reserve_port(args.host, 0 if args.pick_unused_ports else args.rest_api_port)
            held.append(sock)
    except OSError:
        for sock in held:
            sock.close()
        raise
    return grpc_port, rest_port, held


def _serve_until_stopped(processes: list[subprocess.Popen], stop_requested: list[int]) -> int:
    """Watches the copies until a signal (exit 0 when all stop cleanly) or one exits (1)."""
    while not stop_requested:
        failed = [p for p in processes if p.poll() is not None]
        if failed:
            logger.error("server process %d exited with %d; stopping the others", failed[0].pid, failed[0].returncode)
            _stop_all(processes)
            return 1
        time.sleep(0.2)
    logger.info("signal %d: stopping %d server processes", stop_requested[0], len(processes))
    _stop_all(processes)
    codes = [p.returncode for p in processes]
    logger.info("stopped (exit statuses %s)", codes)
    return 0 if all(code == 0 for code in codes) else 1


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Runs `args.num_server_processes` servers on shared ports until SIGTERM/SIGINT."""
    from serving.server.model_server import StartError, read_flag_files

    count = args.num_server_processes
    try:
        read_flag_files(args)  # bad flags or files: one line and exit 2, before any copy starts
    except StartError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    try:
        grpc_port, rest_port, held = _reserve_ports(args)
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    stop_requested: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, _frame: stop_requested.append(signum))

    workdir = Path(tempfile.mkdtemp(prefix="serving-procs-"))
    processes: list[subprocess.Popen] = []
    ready_files = [workdir / f"ready-{index}.json" for index in range(count)]
    try:
        for index in range(count):
            # The copies' SERVING lines go to stderr: stdout has only the supervisor's line. Own
            # session: a Ctrl-C (or a signal to the process group) reaches the supervisor only,
            # which forwards one SIGTERM to each copy.
            command = _copy_command(args, argv, grpc_port, rest_port, ready_files[index], index)
            processes.append(spawn(command, stdout=sys.stderr.fileno(), stderr=None, die_with_parent=True))
        logger.info(
            "started %d server processes (pids %s) sharing gRPC port %d and REST port %s",
            count,
            ", ".join(str(p.pid) for p in processes),
            grpc_port,
            rest_port or "disabled",
        )
        try:
            ready = wait_for_ready_files(
                processes, ready_files, time.monotonic() + _READY_TIMEOUT_SECONDS, interrupted=lambda: bool(stop_requested)
            )
        except ServerStartError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1  # the copies are stopped below
        except LoadTimeout:
            print(f"error: server processes not ready after {_READY_TIMEOUT_SECONDS:g} s", file=sys.stderr)
            return 1
        if ready is None:
            return 0
        for sock in held:
            sock.close()
        held.clear()
        announce_ready(args.host, grpc_port, rest_port or None, args.ready_file, worker_pids=[p.pid for p in processes])
        return _serve_until_stopped(processes, stop_requested)
    finally:
        for sock in held:
            sock.close()
        _stop_all(processes)
        shutil.rmtree(workdir, ignore_errors=True)  # the ready files
