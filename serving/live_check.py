"""After a push: prove the live endpoint serves the new version and answers correctly.

`check_live_endpoint` waits (bounded) until the pushed version is AVAILABLE on a running server
(given by its gRPC and/or REST address; real TF Serving works) or, when none is given, on an
embedded server it starts on the serving directory and stops afterwards. It then sends sample
eval rows through `serving.client.ServingClient`, pinned to that version, and checks the answers
against the same SavedModel run in-process (every output equal within float tolerance) and,
when the examples carry labels, the accuracy on the samples. The typed report names the endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from serving import layout, validate
from serving.errors import ValidationError, shorten
from serving.process import SERVER_AUTO, ModelServerProcess
from serving.saved_model import DEFAULT_SIGNATURE, read_signature_defs, score_output

logger = logging.getLogger(__name__)

# How long a server may take to start and make the pushed version AVAILABLE.
LIVE_CHECK_WAIT_SECONDS = 60.0
_RTOL = 1e-4
_ATOL = 1e-5


@dataclass(frozen=True)
class EndpointCheck:
    """The check against one endpoint over one protocol."""

    protocol: str  # "grpc" or "rest"
    endpoint: str
    ok: bool
    state: str  # the version's last state (AVAILABLE, LOADING, END, ...)
    wait_seconds: float
    samples: int
    matched: int  # rows whose every output equals the in-process answer
    correct: int | None  # rows whose predicted class equals the label (None: no labels)
    reason: str

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None or not self.samples else self.correct / self.samples

    def summary(self) -> str:
        where = f"{self.protocol} {self.endpoint}"
        if not self.ok:
            return f"{where}: FAILED: {self.reason}"
        text = f"{where}: {self.state} after {self.wait_seconds:.1f} s, {self.matched}/{self.samples} answers match the model"
        if self.accuracy is not None:
            text += f", accuracy {self.accuracy:.3f} on {self.samples} eval samples"
        return text


@dataclass(frozen=True)
class LiveCheckReport:
    model_name: str
    version: int
    started_server: str | None  # description of the server started for the check, else None
    checks: tuple[EndpointCheck, ...]
    reason: str = ""  # set when no endpoint could be checked at all

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.reason and all(c.ok for c in self.checks)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(f"{c.protocol}://{c.endpoint}" for c in self.checks)

    def summary(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        head = f"live check {verdict}: {self.model_name!r} version {self.version}"
        if self.started_server:
            head += f" on {self.started_server} started for the check"
        if self.reason:
            return f"{head}: {self.reason}"
        return head + "; " + "; ".join(c.summary() for c in self.checks)


def load_examples(examples_uri: str | os.PathLike[str], split: str = "eval", limit: int = 8) -> list[bytes]:
    """Up to `limit` serialized tf.Examples from an ExampleGen artifact's `Split-<split>` directory."""
    import tensorflow as tf

    split_dir = os.path.join(os.fspath(examples_uri), f"Split-{split}")
    files = sorted(f for f in glob.glob(os.path.join(split_dir, "*")) if f.endswith(".gz") or "tfrecord" in os.path.basename(f))
    if not files:
        raise ValueError(f"no TFRecord files in {split_dir}: expected ExampleGen's data_tfrecord-*.gz")
    compression = "GZIP" if files[0].endswith(".gz") else ""
    dataset = tf.data.TFRecordDataset(files, compression_type=compression).take(limit)
    return [record.numpy() for record in dataset]


def _labels(parsed: Sequence, label_key: str | None) -> list[int] | None:
    if not label_key or not parsed:
        return None
    labels = []
    for example in parsed:
        feature = example.features.feature.get(label_key)
        if feature is None or not feature.int64_list.value:
            return None
        labels.append(int(feature.int64_list.value[0]))
    return labels


def _row_matches(expected: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray], rows: int) -> tuple[int, str]:
    """How many rows agree on every output the signature declares, and the first disagreement."""
    good = np.ones(rows, dtype=bool)
    first = ""
    for name, want in expected.items():
        if name not in actual:
            return 0, f"output {name!r} missing from the answer (got {sorted(actual)})"
        got = np.asarray(actual[name])
        want = np.asarray(want)
        if got.shape != want.shape:
            return 0, f"output {name!r} has shape {got.shape}, the model gives {want.shape}"
        if want.dtype.kind in "OSU":
            same = np.array([a == b for a, b in zip(got.reshape(rows, -1).tolist(), want.reshape(rows, -1).tolist())])
        else:
            close = np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=_RTOL, atol=_ATOL)
            same = close.reshape(rows, -1).all(axis=1)
        if not same.all() and not first:
            row = int(np.argmin(same))
            first = f"output {name!r} row {row} differs from the in-process answer"
        good &= same
    return int(good.sum()), first


def predicted_classes(outputs: Mapping[str, np.ndarray], class_output: str | None, rows: int) -> np.ndarray | None:
    """Class ids per row: `class_output` when the model returns it, else the arg-max of its only
    [batch, classes] output, or of the one named like class scores; None when there are none."""
    if class_output and class_output in outputs:
        return np.asarray(outputs[class_output]).reshape(-1).astype(np.int64)
    name = score_output(outputs)
    if name is None:
        return None
    scores = np.asarray(outputs[name])
    if scores.ndim == 2 and scores.shape[0] == rows and scores.shape[1] >= 2 and scores.dtype.kind == "f":
        return scores.argmax(axis=1).astype(np.int64)
    return None


def _expected_outputs(model_dir: Path, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir))
    function = loaded.signatures[signature_name]
    result = function(**{key: tf.constant(value) for key, value in inputs.items()})
    return {name: tensor.numpy() for name, tensor in result.items()}


def _check_endpoint(
    protocol: str,
    endpoint: str,
    *,
    model_name: str,
    version: int,
    inputs: Mapping[str, np.ndarray],
    expected: Callable[[], Mapping[str, np.ndarray]],
    labels: list[int] | None,
    signature_name: str,
    class_output: str | None,
    deadline: float,
    timeout: float,
    min_accuracy: float | None,
) -> EndpointCheck:
    from serving.client import ClientError, ServingClient

    rows = len(next(iter(inputs.values())))
    begin = time.monotonic()
    with ServingClient(endpoint, protocol, model_name, version=version, timeout=timeout) as client:
        try:
            client.wait_until_available(max(0.0, deadline - time.time()), 0.3)
        except ClientError as error:  # the version ended (failed to load), or the deadline passed
            state = "END" if error.code == "FAILED_PRECONDITION" else "UNKNOWN"
            return EndpointCheck(protocol, endpoint, False, state, time.monotonic() - begin, 0, 0, None,
                                 shorten(str(error), 300))
        state, waited = "AVAILABLE", time.monotonic() - begin
        try:
            actual = client.predict(dict(inputs), signature_name=signature_name)
        except ClientError as error:
            return EndpointCheck(protocol, endpoint, False, state, waited, rows, 0, None,
                                 f"predict on {signature_name!r} failed: {shorten(str(error))}")
    try:
        wanted = expected()
    except Exception as error:  # noqa: BLE001 - any load failure is the check's answer
        return EndpointCheck(protocol, endpoint, False, state, waited, rows, 0, None,
                             f"the pushed SavedModel does not load in-process: {shorten(str(error))}")
    matched, mismatch = _row_matches(wanted, actual, rows)
    correct = None
    predicted = predicted_classes(actual, class_output, rows)
    if labels is not None and predicted is not None:
        correct = int((predicted == np.asarray(labels)).sum())
    ok = matched == rows
    reason = "" if ok else f"{rows - matched}/{rows} answers differ from the model run in-process ({mismatch})"
    if ok and min_accuracy is not None and correct is not None and correct / rows < min_accuracy:
        ok, reason = False, f"accuracy {correct / rows:.3f} on the samples is below {min_accuracy}"
    return EndpointCheck(protocol, endpoint, ok, state, waited, rows, matched, correct, reason)


def check_live_endpoint(
    serving_dir: str | os.PathLike[str],
    model_name: str,
    *,
    version: int | None = None,
    grpc_endpoint: str | None = None,
    rest_endpoint: str | None = None,
    examples: Sequence[bytes] = (),
    label_key: str | None = "label",
    class_output: str | None = "class_id",
    signature_name: str = DEFAULT_SIGNATURE,
    wait_seconds: float = LIVE_CHECK_WAIT_SECONDS,
    timeout: float = 10.0,
    min_accuracy: float | None = None,
    server: str = SERVER_AUTO,
) -> LiveCheckReport:
    """Checks that `version` (default: the latest in the serving dir) is live and answers right.

    grpc_endpoint / rest_endpoint: HOST:PORT of a running server (either or both). With neither,
    a server is started on `<serving_dir>/<model_name>` for the check (both protocols checked)
    and stopped afterwards. `examples` are serialized eval tf.Examples (see `load_examples`);
    inputs are filled from their features of the same name, labels read from `label_key` and
    compared with the `class_output` output. Never raises for a failed check: the report says why.
    """
    model_dir = Path(serving_dir) / model_name
    try:
        version, version_dir = layout.find_version(model_dir, version)
    except layout.LayoutError as error:
        return LiveCheckReport(model_name, version or 0, None, (), reason=str(error))
    try:
        signature_defs = read_signature_defs(version_dir)
    except ValidationError as error:
        return LiveCheckReport(model_name, version, None, (), reason=str(error))
    if signature_name not in signature_defs:
        return LiveCheckReport(
            model_name, version, None, (),
            reason=f"version {version} has no signature {signature_name!r}; it has {sorted(signature_defs)}",
        )
    inputs = validate.signature_inputs(signature_defs[signature_name], examples)
    # Loaded only once a server said AVAILABLE: a version that fails there is reported as such.
    expected = functools.cache(lambda: _expected_outputs(version_dir, signature_name, inputs))
    labels = _labels(validate.parse_examples(examples), label_key)

    targets = [(p, e) for p, e in (("grpc", grpc_endpoint), ("rest", rest_endpoint)) if e]
    process = None
    deadline = time.time() + wait_seconds
    with contextlib.ExitStack() as stack:  # stops the server, then removes its config
        if not targets:
            # Pin the checked version (the default policy would serve only the latest).
            config_file = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="live-check-")), "models.config")
            config_file.write_text(
                f'model_config_list {{ config {{ name: "{model_name}" base_path: "{model_dir.resolve()}" '
                f'model_platform: "tensorflow" model_version_policy {{ specific {{ versions: {version} }} }} }} }}\n'
            )
            process = ModelServerProcess(model_config_file=config_file, server=server)
            stack.callback(process.stop)
            process.start()
            try:
                process.wait_until_serving(deadline)
            except ValidationError as error:
                return LiveCheckReport(model_name, version, process.description, (), reason=str(error))
            targets = [("grpc", process.grpc_endpoint), ("rest", process.rest_endpoint.removeprefix("http://"))]
        checks = tuple(
            _check_endpoint(
                protocol, endpoint, model_name=model_name, version=version, inputs=inputs, expected=expected,
                labels=labels, signature_name=signature_name, class_output=class_output, deadline=deadline,
                timeout=timeout, min_accuracy=min_accuracy,
            )
            for protocol, endpoint in targets
        )
    report = LiveCheckReport(model_name, version, process.description if process else None, checks)
    (logger.info if report.ok else logger.error)("%s", report.summary())
    return report


def endpoints_from_arg(text: str) -> dict[str, str]:
    """`--endpoint` text -> {"grpc_endpoint": ..., "rest_endpoint": ...} for check_live_endpoint.

    Comma-separated items: `grpc://HOST:PORT`, `http://HOST:PORT` (or `rest://`), or a bare
    `HOST:PORT` on TF Serving's well-known ports (8500 gRPC, 8501 REST).
    """
    result: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        scheme, sep, address = item.partition("://")
        if not sep:
            scheme, address = "", item
        port = address.rpartition(":")[2]
        if scheme == "grpc" or (not scheme and port == "8500"):
            key = "grpc_endpoint"
        elif scheme in ("http", "rest") or (not scheme and port == "8501"):
            key = "rest_endpoint"
        else:
            raise ValueError(
                f"endpoint {item!r}: say which protocol, e.g. grpc://{address} or http://{address} "
                "(a bare HOST:PORT is understood only on ports 8500 = gRPC and 8501 = REST)"
            )
        if not port.isdigit():
            raise ValueError(f"endpoint {item!r} is not HOST:PORT")
        result[key] = address
    if not result:
        raise ValueError("no endpoint given")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.live_check",
        description="Check that a pushed version is AVAILABLE and answers like the model does.",
    )
    parser.add_argument("--serving-dir", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--version", type=int, help="default: the latest version in the serving dir")
    parser.add_argument("--endpoint", help="grpc://HOST:PORT and/or http://HOST:PORT, comma-separated; "
                        "default: start a local server for the check")
    parser.add_argument("--examples", help="an ExampleGen Examples artifact directory for sample rows")
    parser.add_argument("--split", default="eval")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--min-accuracy", type=float)
    parser.add_argument("--wait-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    try:
        endpoints = endpoints_from_arg(args.endpoint) if args.endpoint else {}
        examples = load_examples(args.examples, args.split, args.samples) if args.examples else []
    except ValueError as error:
        print(f"live_check: {error}", file=sys.stderr)
        return 2
    report = check_live_endpoint(
        args.serving_dir, args.model_name, version=args.version, examples=examples,
        min_accuracy=args.min_accuracy, wait_seconds=args.wait_seconds, **endpoints,
    )
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
