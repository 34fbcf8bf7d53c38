"""The naive baseline of the serving benchmark: one thread, `http.server` + `json` + a SavedModel call.

This is the approach the seeds contrast TF Serving with (a hand-written script wrapping the model
in a JSON-over-HTTP endpoint). It answers `POST <any path>` with TF Serving's row format
(`{"instances": [...]}` -> `{"predictions": [...]}`) so the benchmark's load generator sends it the
very same bytes as the real server, and `GET <any path>` with 200 once the model is loaded.

Two settings keep the comparison fair rather than rigged against it: the listen backlog is 128
(socketserver's default of 5 would drop SYNs from 16 concurrent clients and add 1 s TCP retries),
and it speaks HTTP/1.0, one request per connection, which is what lets a single-threaded server
take turns between concurrent clients at all (with keep-alive one client would hold it).

    python benchmarks/naive_server.py --port 8601 --model_dir runs/serving/digits/3
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def make_handler(signature: Any) -> type[http.server.BaseHTTPRequestHandler]:
    import tensorflow as tf

    input_name, input_spec = next(iter(signature.structured_input_signature[1].items()))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._send(200, {"status": "ready"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                inputs = tf.constant(body["instances"], dtype=input_spec.dtype)
                outputs = {k: v.numpy().tolist() for k, v in signature(**{input_name: inputs}).items()}
                rows = len(next(iter(outputs.values())))
                if len(outputs) == 1:
                    predictions = _plain(next(iter(outputs.values())))
                else:
                    predictions = [{k: _plain(v[i]) for k, v in outputs.items()} for i in range(rows)]
                self._send(200, {"predictions": predictions})
            except Exception as err:  # noqa: BLE001 - a naive script: any failure is a 400 with the text
                self._send(400, {"error": str(err)})

        def _send(self, status: int, document: Any) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


class _Server(http.server.HTTPServer):
    request_queue_size = 128


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model_dir", required=True, help="a SavedModel directory (one version)")
    parser.add_argument("--signature", default="serving_default")
    args = parser.parse_args(argv)
    import tensorflow as tf

    signature = tf.saved_model.load(args.model_dir).signatures[args.signature]
    server = _Server(("127.0.0.1", args.port), make_handler(signature))
    print(f"naive server on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
