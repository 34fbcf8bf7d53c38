"""serving.process: the one way to launch, wait for and stop a server process (with stand-in processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving import process
from serving.errors import LoadTimeout, ServerStartError

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, tmp_path) -> subprocess.Popen:
    return process.spawn([sys.executable, "-c", code], stdout=open(tmp_path / "log", "wb"))


def test_ready_line_and_file(tmp_path, capsys):
    assert process.ready_line("127.0.0.1", 8500, None) == "SERVING grpc=127.0.0.1:8500 rest=disabled"
    process.announce_ready("127.0.0.1", 8500, 8501, str(tmp_path / "r" / "ready.json"), worker_pids=[1, 2])
    assert capsys.readouterr().out == "SERVING grpc=127.0.0.1:8500 rest=127.0.0.1:8501\n"
    written = json.loads((tmp_path / "r" / "ready.json").read_text())
    assert written["grpc_port"] == 8500 and written["rest_port"] == 8501 and written["worker_pids"] == [1, 2]


def test_wait_for_ready_files_returns_what_the_processes_wrote(tmp_path):
    ready = tmp_path / "ready.json"
    child = _python(
        f"import time, serving.process as p; time.sleep(0.3); p.write_ready_file({str(ready)!r}, {{'grpc_port': 1}}); time.sleep(60)",
        tmp_path,
    )
    try:
        assert process.wait_for_ready_files([child], [ready], time.monotonic() + 60) == [{"grpc_port": 1}]
    finally:
        process.stop_processes([child], 10)
    assert child.returncode == -15  # SIGTERM reached it


def test_wait_for_ready_files_names_an_exit_and_a_timeout(tmp_path):
    exits = _python("raise SystemExit(3)", tmp_path)
    with pytest.raises(ServerStartError, match=f"server process {exits.pid} exited with 3 before it was ready"):
        process.wait_for_ready_files([exits], [tmp_path / "never.json"], time.monotonic() + 60)
    sleeps = _python("import time; time.sleep(60)", tmp_path)
    try:
        with pytest.raises(LoadTimeout):
            process.wait_for_ready_files([sleeps], [tmp_path / "never.json"], time.monotonic() + 0.3)
        assert process.wait_for_ready_files([sleeps], [tmp_path / "never.json"], time.monotonic() + 60,
                                            interrupted=lambda: True) is None
    finally:
        process.stop_processes([sleeps], 10)


def test_stop_processes_kills_what_ignores_sigterm(tmp_path):
    stubborn = _python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)", tmp_path)
    deadline = time.monotonic() + 30
    while b"up" not in (tmp_path / "log").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.stop_processes([stubborn], 0.5)
    assert stubborn.returncode == -9


def test_free_ports_are_bindable():
    import socket

    port = process.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_server_dies_with_the_process_that_spawned_it(tmp_path, half_plus_two_dir, still_running):
    """SIGKILL to the spawner (no chance to stop anything) still stops the server and its copies."""
    ready = tmp_path / "ready.json"
    command = [*process.embedded_command(), "--model_name=half_plus_two", f"--model_base_path={half_plus_two_dir}",
               "--pick_unused_ports", "--num_server_processes=2", f"--ready_file={ready}"]
    spawner = _python(
        "import sys, time, serving.process as p; "
        f"s = p.spawn({command!r}, stdout=open({str(tmp_path / 'server.log')!r}, 'wb'), die_with_parent=True); "
        "print(s.pid, flush=True); time.sleep(600)",
        tmp_path,
    )
    try:
        [written] = process.wait_for_ready_files([spawner], [ready], time.monotonic() + 120)
        pids = [written["pid"], *written["worker_pids"]]
        assert len(pids) == 3
    finally:
        spawner.kill()
        spawner.wait()
    assert still_running(pids, 60) == []


# A process with busy gRPC channels that spawns children as the tests and the pipeline do; prints
# how many of them died before they could run.
_SPAWN_UNDER_GRPC = """
import subprocess, sys, threading
from concurrent import futures
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from serving import process

server = grpc.server(futures.ThreadPoolExecutor(4))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
stop = threading.Event()

def call_forever():
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while not stop.is_set():
            stub.Check(health_pb2.HealthCheckRequest())

callers = [threading.Thread(target=call_forever) for _ in range(4)]
for caller in callers:
    caller.start()
failed = []
for _ in range(int(sys.argv[1])):
    child = process.spawn(["true"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, die_with_parent=True)
    _, err = child.communicate(timeout=60)
    if child.returncode != 0:
        failed.append(f"{child.returncode}: {err.decode(errors='replace').strip()[-200:]}")
stop.set()
for caller in callers:
    caller.join(10)
server.stop(None)
print(f"failed {len(failed)}", *failed[:3], sep="\\n")
"""


def test_spawning_while_grpc_calls_run_never_kills_the_child(tmp_path):
    """gRPC's fork handlers abort a child that runs Python between fork and exec while the parent's
    channels are busy (grpc/grpc#43055): with a preexec_fn, 1-4 of these 300 children died (-6,
    "epoll_wait error: Bad file descriptor") in each of three runs on this machine."""
    script = tmp_path / "spawn_under_grpc.py"
    script.write_text(_SPAWN_UNDER_GRPC)
    result = subprocess.run([sys.executable, str(script), "300"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1:] == ["failed 0"], result.stdout
