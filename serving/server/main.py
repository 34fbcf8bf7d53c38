"""`python -m serving.server`: an embedded, wire-compatible stand-in for tensorflow_model_server.

Started like the binary:

    python -m serving.server --port=8500 --rest_api_port=8501 \\
        --model_name=NAME --model_base_path=/abs/path/NAME

Flags keep the binary's names and meanings (`--flag=value` and `--flag value` both work;
booleans also as bare `--flag`). Real TF Serving flags this server has no use for are accepted
and logged as no-ops. Two defaults differ, so that no flags give the fast configuration
(`--enable_batching=false --num_server_processes=1` restore the binary's):

- `--enable_batching` is on: concurrent requests to one signature are merged into one call
  from what is already queued when a batch thread is free (`batch_timeout_micros` 0, so no
  added wait at low load); see serving/server/batching.py;
- `--num_server_processes` is 0: one server process per usable core (affinity, cgroup CPU
  quota; at most 4), sharing both ports (serving/server/supervisor.py).

Other deliberate differences, all opt-in or safer:

- it binds 127.0.0.1 unless `--host=0.0.0.0` (the binary binds every interface);
- `--pick_unused_ports` lets the OS choose both ports (`--port=0` alone does so for gRPC;
  `--rest_api_port=0` keeps its TF Serving meaning: REST disabled);
- `--rest_api_max_body_bytes` caps REST bodies (413), `--grpc_max_message_bytes` caps gRPC
  messages (RESOURCE_EXHAUSTED); the binary allows 2 GiB on gRPC and has no REST cap;
- only complete SavedModels (saved_model.pb + the checkpoint its graph needs) are loaded;
- `--enable_raw_image_api` (default off) adds the REST extension `:classify_image`: an image
  file as the body, the top-k classes back (serving/server/raw_images.py).

Readiness: once every model's initial versions are loaded and both ports listen, one line
`SERVING grpc=HOST:PORT rest=HOST:PORT` (rest=disabled when off) is printed to stdout, and
`--ready_file` (if given) receives `{"grpc_port": N, "rest_port": M, "pid": P}`.
SIGTERM/SIGINT shut down cleanly (exit status 0).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from typing import Sequence

from serving.process import die_with_parent_from_env
from serving.server.flags import build_parser, server_processes

logger = logging.getLogger("serving.server")


# glibc gives each thread that finds the heap locked an arena of its own, up to 8 per core; a
# server's threads (event loop, batch thread, TF's pools, gRPC's) share 2 with no measurable
# cost, for about 8 MB less RSS per process after load (docs/peers-benchmark.md, "Where the
# memory goes").
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)


def cap_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Caps this process's glibc malloc arenas (what MALLOC_ARENA_MAX does); True when applied.

    Left to glibc when MALLOC_ARENA_MAX or GLIBC_TUNABLES' arena_max is set (the user's choice),
    and a no-op without glibc."""
    if "MALLOC_ARENA_MAX" in os.environ or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        return ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas) == 1
    except (OSError, AttributeError):
        return False


def run(args) -> int:
    """Serves until SIGTERM/SIGINT; the exit status (0 after a clean stop)."""
    from serving.server.model_server import ModelServer, StartError

    cap_malloc_arenas()  # before TensorFlow starts its threads
    server = ModelServer(args)
    try:
        server.start()
    except StartError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.announce_ready()
    stop.wait()
    logger.info("shutting down")
    server.stop()
    logger.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    die_with_parent_from_env()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.version:
        print("TensorFlow ModelServer: embedded (serving.server, TF Serving 2.16 API)")
        return 0
    if args.num_server_processes < 0:
        print(
            f"error: --num_server_processes must be >= 0 (0: one per usable core), got {args.num_server_processes}",
            file=sys.stderr,
        )
        return 2
    args.num_server_processes = server_processes(args)
    if args.num_server_processes > 1 and args.server_process_index < 0:
        from serving.server.supervisor import supervise

        return supervise(args, list(sys.argv[1:] if argv is None else argv))
    return run(args)

