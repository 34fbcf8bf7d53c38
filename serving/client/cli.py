"""`python -m serving.client {predict,evaluate,status,metadata} --endpoint HOST:PORT ...`: the client's CLI."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from serving.client.client import ServingClient
from serving.client.datasets import load_digits_set, load_folder_set, load_npz_set
from serving.client.images import image_input
from serving.client.types import DEFAULT_TIMEOUT_S, ClientError
from serving.saved_model import DEFAULT_SIGNATURE

_DESCRIPTION = "Client for TF Serving's REST and gRPC APIs: the real `tensorflow_model_server` or `serving.server`."


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", required=True, help="HOST:PORT (TF Serving: 8501 REST, 8500 gRPC)")
    common.add_argument("--protocol", choices=("rest", "grpc"), default="rest",
                        help="rest (TF Serving port 8501) or grpc (port 8500); default rest")
    common.add_argument("--model", required=True, help="model name the server serves")
    pin = common.add_mutually_exclusive_group()
    pin.add_argument("--version", type=int, help="ask for this version (default: latest)")
    pin.add_argument("--label", help="ask for the version with this label (e.g. stable, canary)")
    common.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="deadline of each call, seconds")
    common.add_argument("--signature", default=DEFAULT_SIGNATURE, help="signature name")

    parser = argparse.ArgumentParser(prog="python -m serving.client", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", parents=[common], help="classify PNG/JPEG files")
    predict.add_argument("images", nargs="+", help="PNG or JPEG files")
    predict.add_argument("--send", choices=("auto", "pixels", "bytes"), default="auto",
                         help="pixels: resize to the model's input; bytes: send the files to the "
                              "image_bytes signature; auto: bytes when the model has that signature")
    predict.add_argument("--top", type=int, default=3, help="also print the N most probable class ids")
    evaluate = commands.add_parser("evaluate", parents=[common], help="accuracy and latency on a labelled set")
    evaluate.add_argument("--data", default="digits",
                          help="'digits' (the pipeline's eval split of scikit-learn's bundled digits), "
                               "'digits-all' (all 1797), an .npz file, or a folder of class sub-folders")
    evaluate.add_argument("--concurrency", type=int, default=4, help="concurrent requests")
    evaluate.add_argument("--batch-size", type=int, default=1, help="rows per request")
    evaluate.add_argument("--num-tests", type=int, default=0, help="use only the first N examples (0: all)")
    commands.add_parser("status", parents=[common], help="versions and their states")
    commands.add_parser("metadata", parents=[common], help="signatures of the served version")
    return parser


def _run(args: argparse.Namespace) -> int:
    with ServingClient(
        args.endpoint,
        args.protocol,
        args.model,
        version=args.version,
        label=args.label,
        timeout=args.timeout,
        pool_size=max(16, getattr(args, "concurrency", 1)),  # one kept-alive connection per worker
    ) as client:
        if args.command == "status":
            for v in client.status():
                error = f" ({v.error_code}: {v.error_message})" if v.error_code != "OK" else ""
                print(f"version {v.version}: {v.state}{error}")
            return 0
        if args.command == "metadata":
            metadata = client.metadata()
            print(f"model {metadata.name} version {metadata.version}")
            for sig in metadata.signatures.values():
                print(f"signature {sig.name} ({sig.method_name})")
                for kind, specs in (("input", sig.inputs), ("output", sig.outputs)):
                    for spec in specs.values():
                        shape = list(spec.shape) if spec.shape is not None else "unknown rank"
                        print(f"  {kind:6} {spec.name}: {spec.dtype} {shape}")
            return 0
        if args.command == "predict":
            for row in client.predict_images(args.images, encoding=args.send, signature_name=args.signature):
                top = np.argsort(row.probabilities)[::-1][: max(0, args.top)]
                others = ", ".join(f"{i}: {row.probabilities[i]:.4f}" for i in top)
                print(
                    f"{row.source}: {row.class_name} (class {row.class_id}, p={row.probability:.4f}) "
                    f"top class ids [{others}]"
                )
            return 0
        return _evaluate(client, args)


def _evaluate(client: ServingClient, args: argparse.Namespace) -> int:
    if args.data in ("digits", "digits-all"):
        images, labels = load_digits_set("all" if args.data == "digits-all" else "eval")
    elif Path(args.data).is_dir():
        _, h, w, c = image_input(client.metadata().signature(args.signature))
        images, labels = load_folder_set(args.data, h, w, c)
    elif Path(args.data).is_file():
        images, labels = load_npz_set(args.data)
    else:
        message = f"--data {args.data!r} is neither 'digits', 'digits-all', an .npz file nor a folder"
        raise ClientError(message, code="INVALID_ARGUMENT")
    if args.num_tests > 0:
        images, labels = images[: args.num_tests], labels[: args.num_tests]
    client.metadata()  # Fails fast, with one clear message, when the endpoint or model is wrong.
    report = client.evaluate(
        images, labels, concurrency=args.concurrency, batch_size=args.batch_size, signature_name=args.signature
    )
    pin = f" version {client.version}" if client.version is not None else ""
    pin += f" label {client.label}" if client.label else ""
    print(
        f"{report.examples} examples, {report.requests} requests of {report.batch_size} row(s), "
        f"{report.concurrency} concurrent, {client.protocol} {client.endpoint} model {client.model}{pin}"
    )
    print(f"accuracy {report.accuracy:.4f}  inference error rate {report.error_rate * 100:.2f}%  "
          f"failed requests {report.failed_requests}")
    print(
        f"latency ms p50 {report.latency_percentile(50):.2f}  p90 {report.latency_percentile(90):.2f}  "
        f"p99 {report.latency_percentile(99):.2f}  throughput {report.throughput:.1f} examples/s "
        f"({report.wall_s:.2f} s)"
    )
    if report.failed_requests:
        print(f"error: {report.failed_requests} of {report.requests} requests failed; first: {report.first_error}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    # 3: TF's C++ start-up lines (CUDA factory registration) are logged at ERROR level.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)  # google.api_core on Python 3.10
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130

