"""serving.process: the one way to launch, wait for and stop a server process (with stand-in processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from serving import process
from serving.errors import LoadTimeout, ServerStartError


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
