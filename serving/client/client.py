"""`ServingClient`: one TF Serving client for a model, the same calls over REST or gRPC.

It speaks to the real `tensorflow_model_server` or `serving.server` with the same methods
(predict, predict_images, classify, regress, status, metadata, evaluate) over one transport
object (`RestTransport` or `GrpcTransport`, chosen once). Every call carries a deadline, gRPC
channels allow large messages, and every failure is one `ClientError` whose message says what
went wrong (an unreachable endpoint, TF Serving's own error text with its status, an exceeded
deadline). Class names always come from the model (its `class_name` output or the Classify
API's labels). `evaluate` is TF Serving's `mnist_client` (`do_inference(hostport, concurrency,
num_tests)`) generalised to any labelled image set and both protocols.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from serving.client.grpc_transport import GrpcTransport
from serving.client.images import encoded_image, find_bytes_signature, image_input, load_image, source_name
from serving.client.rest import RestTransport
from serving.client.types import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT_S,
    ClientError,
    EvaluationReport,
    ImageEncoding,
    ModelMetadata,
    ModelRef,
    Prediction,
    Protocol,
    SignatureSpec,
    VersionStatus,
    describe_specs,
    interpret_classifier_outputs,
    parse_endpoint,
)
from serving.saved_model import DEFAULT_SIGNATURE, NUMPY_BY_ENUM_NAME

logger = logging.getLogger(__name__)


class ServingClient:
    """A TF Serving client for one model over REST (`HOST:8501`) or gRPC (`HOST:8500`).

    `version` or `label` (not both) pins the served version, as in TF Serving's ModelSpec; neither
    means the latest. `timeout` is the deadline in seconds of every call. Thread-safe: `evaluate`
    shares one client between its workers (`pool_size` HTTP connections are kept alive).
    """

    def __init__(
        self,
        endpoint: str,
        protocol: Protocol = "rest",
        model: str = "model",
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        pool_size: int = 16,
    ):
        if protocol not in ("rest", "grpc"):
            raise ClientError(
                f"protocol {protocol!r} is not supported: expected 'rest' or 'grpc'",
                code="INVALID_ARGUMENT",
            )
        if version is not None and label is not None:
            raise ClientError(
                f"give a version ({version}) or a label ({label!r}), not both", code="INVALID_ARGUMENT"
            )
        if not model:
            raise ClientError(
                "model name is empty: pass the name the server serves", code="INVALID_ARGUMENT"
            )
        if not timeout or timeout <= 0:
            raise ClientError(
                f"timeout must be a positive number of seconds, got {timeout!r}",
                code="INVALID_ARGUMENT",
            )
        self.endpoint = endpoint
        self.protocol: Protocol = protocol
        self.model = model
        self.version = int(version) if version is not None else None
        self.label = label
        self.timeout = float(timeout)
        host, port = parse_endpoint(endpoint)
        self._ref = ModelRef(model, self.version, label)
        self._transport: RestTransport | GrpcTransport = (
            RestTransport(host, port, pool_size)
            if protocol == "rest"
            else GrpcTransport(host, port, max_message_bytes)
        )
        self._metadata: ModelMetadata | None = None

    def __enter__(self) -> "ServingClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def __repr__(self) -> str:
        pin = f", version={self.version}" if self.version is not None else ""
        pin += f", label={self.label!r}" if self.label else ""
        return (
            f"ServingClient({self.endpoint!r}, protocol={self.protocol!r}, model={self.model!r}{pin})"
        )

    # -- model status and metadata ------------------------------------------------------------

    def status(self, *, timeout: float | None = None) -> list[VersionStatus]:
        """Versions of the model and their states (all versions unless version/label is set)."""
        return self._transport.status(self._ref, timeout=timeout or self.timeout)

    def wait_until_available(
        self, timeout: float = 30.0, poll_s: float = 0.1, *, is_alive: Callable[[], bool] | None = None
    ) -> list[VersionStatus]:
        """Polls status until the model is ready, by TFX's TensorFlowServingClient rule: every
        version listed (only the pinned one with version/label) is AVAILABLE, and one in END
        fails at once. The one readiness rule of serving/ (validate and live_check use it).

        Raises ClientError: FAILED_PRECONDITION with the version's load error, UNAVAILABLE once
        `is_alive()` is false (a server process that exited), DEADLINE_EXCEEDED with the last
        state after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last: str = "no answer yet"
        while True:
            try:
                versions = self.status(timeout=min(self.timeout, max(timeout, 0.5)))
            except ClientError as err:
                versions, last = [], str(err)
            if versions:
                last = ", ".join(f"version {v.version} {v.state} {v.error_message}".strip() for v in versions)
                ended = next((v for v in versions if v.state == "END"), None)
                if ended is not None:
                    reason = ended.error_message or "no error message (the version was unloaded)"
                    raise ClientError(f"version {ended.version} failed to load: {reason}", code="FAILED_PRECONDITION")
                if all(v.state == "AVAILABLE" for v in versions):
                    return versions
            if is_alive is not None and not is_alive():
                raise ClientError(f"model server exited before {self.model!r} became AVAILABLE", code="UNAVAILABLE")
            if time.monotonic() >= deadline:
                raise ClientError(
                    f"model {self.model!r} at {self.endpoint} was not AVAILABLE within "
                    f"{timeout:g} s: {last}",
                    code="DEADLINE_EXCEEDED",
                )
            time.sleep(poll_s)

    def metadata(self, *, timeout: float | None = None) -> ModelMetadata:
        """Signatures of the served version (asked once, then cached)."""
        # No lock: two threads asking at once both fetch the same answer, and the assignment is atomic.
        if self._metadata is None:
            self._metadata = self._transport.metadata(self._ref, timeout=timeout or self.timeout)
        return self._metadata

    # -- inference ----------------------------------------------------------------------------

    def predict(
        self,
        inputs: np.ndarray | Sequence[Any] | Mapping[str, Any],
        *,
        signature_name: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a predict signature. `inputs` is one array (for a one-input signature) or a dict of
        input name -> array; returns output name -> array."""
        signature = self.metadata().signature(signature_name)
        named = self._named_inputs(inputs, signature)
        return self._transport.predict(self._ref, signature, named, timeout=timeout or self.timeout)

    def classify(
        self,
        examples: Sequence[Any],
        *,
        context: Mapping[str, Any] | None = None,
        signature_name: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> list[list[tuple[str, float]]]:
        """TF Serving's Classify API: per example, (class label, score) pairs as the model names them.

        `examples` are dicts of feature -> value(s) or tf.train.Example protos."""
        return self._examples_call("classify", examples, context, signature_name, timeout)

    def regress(
        self,
        examples: Sequence[Any],
        *,
        context: Mapping[str, Any] | None = None,
        signature_name: str = DEFAULT_SIGNATURE,
        timeout: float | None = None,
    ) -> list[float]:
        """TF Serving's Regress API: one value per example."""
        return self._examples_call("regress", examples, context, signature_name, timeout)

    def predict_images(
        self,
        images: Sequence[str | os.PathLike[str] | bytes],
        *,
        encoding: ImageEncoding = "auto",
        signature_name: str = DEFAULT_SIGNATURE,
        batch_size: int = 64,
        timeout: float | None = None,
    ) -> list[Prediction]:
        """Classifies PNG/JPEG files (paths or bytes).

        encoding: "pixels" decodes and resizes each image to the signature's [H, W, C] input;
        "bytes" sends the files as they are to the model's signature with an `image_bytes` input;
        "auto" uses the bytes signature when the model has one, else pixels.
        """
        metadata = self.metadata()
        bytes_sig = find_bytes_signature(metadata) if encoding in ("auto", "bytes") else None
        if encoding == "bytes" and bytes_sig is None:
            raise ClientError(
                f"model {self.model!r} has no signature with an 'image_bytes' string input "
                f"(signatures: {sorted(metadata.signatures)}); use encoding='pixels'",
                code="INVALID_ARGUMENT",
            )
        logger.debug(
            "predict_images: %d image(s) to %s",
            len(images),
            f"signature {bytes_sig[0]!r} as encoded bytes" if bytes_sig else "pixels resized to the input",
        )
        results: list[Prediction] = []
        step = max(1, batch_size)
        for start in range(0, len(images), step):
            chunk = list(images[start : start + step])
            if bytes_sig is not None:
                sig_name, input_name = bytes_sig
                array = np.empty(len(chunk), dtype=object)
                array[:] = [encoded_image(c) for c in chunk]
            else:
                sig_name = signature_name
                input_name, height, width, channels = image_input(metadata.signature(signature_name))
                array = np.stack([load_image(c, height, width, channels) for c in chunk])
            outputs = self.predict({input_name: array}, signature_name=sig_name, timeout=timeout)
            for source, row in zip(chunk, interpret_classifier_outputs(outputs)):
                results.append(dataclasses.replace(row, source=source_name(source)))
        return results

    def evaluate(
        self,
        images: np.ndarray,
        labels: Sequence[int] | Sequence[str] | np.ndarray,
        *,
        concurrency: int = 1,
        batch_size: int = 1,
        signature_name: str = DEFAULT_SIGNATURE,
    ) -> EvaluationReport:
        """Sends a labelled set with `concurrency` workers, `batch_size` rows per request.

        Integer labels are compared with the model's class id, text labels with its class name.
        Failed requests count as errors (as in mnist_client) and are reported separately."""
        if len(images) != len(labels):
            message = f"{len(images)} images but {len(labels)} labels"
            raise ClientError(message, code="INVALID_ARGUMENT")
        if concurrency < 1 or batch_size < 1:
            raise ClientError(
                f"concurrency ({concurrency}) and batch size ({batch_size}) must be at least 1",
                code="INVALID_ARGUMENT",
            )
        signature = self.metadata().signature(signature_name)
        input_name = next(iter(signature.inputs)) if len(signature.inputs) == 1 else "image"
        label_array = np.asarray(labels)
        by_name = label_array.dtype.kind in "USO"
        chunks = [(s, min(s + batch_size, len(images))) for s in range(0, len(images), batch_size)]

        def run(chunk: tuple[int, int]) -> tuple[float, int] | str:
            """(latency in ms, rows the model got right) of one request, or its error."""
            start, stop = chunk
            began = time.perf_counter()
            try:
                batch = {input_name: np.asarray(images[start:stop], dtype=np.float32)}
                rows = interpret_classifier_outputs(self.predict(batch, signature_name=signature_name))
            except ClientError as err:
                return str(err)
            elapsed_ms = (time.perf_counter() - began) * 1e3
            hits = sum(
                (row.class_name == str(label)) if by_name else (row.class_id == int(label))
                for row, label in zip(rows, label_array[start:stop])
            )
            return elapsed_ms, hits

        began = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            results = list(pool.map(run, chunks))
        wall = time.perf_counter() - began
        answered = [r for r in results if not isinstance(r, str)]
        errors = [r for r in results if isinstance(r, str)]
        return EvaluationReport(
            examples=len(images),
            correct=sum(hits for _, hits in answered),
            failed_requests=len(errors),
            first_error=errors[0] if errors else None,
            requests=len(chunks),
            wall_s=wall,
            latencies_ms=tuple(ms for ms, _ in answered),
            concurrency=concurrency,
            batch_size=batch_size,
        )

    # -- internals ----------------------------------------------------------------------------

    def _examples_call(
        self, api: str, examples: Sequence[Any], context: Mapping[str, Any] | None, signature_name: str,
        timeout: float | None,
    ) -> Any:
        """The transport's classify or regress, once an empty list of examples is refused."""
        if not examples:
            raise ClientError(f"{api} needs at least one example", code="INVALID_ARGUMENT")
        call = self._transport.classify if api == "classify" else self._transport.regress
        return call(self._ref, signature_name, examples, context, timeout=timeout or self.timeout)

    @staticmethod
    def _named_inputs(inputs: Any, signature: SignatureSpec) -> dict[str, np.ndarray]:
        if not isinstance(inputs, Mapping):
            if len(signature.inputs) != 1:
                raise ClientError(
                    f"signature {signature.name!r} has {len(signature.inputs)} inputs "
                    f"({describe_specs(signature.inputs)}): pass a dict of input name -> array",
                    code="INVALID_ARGUMENT",
                )
            inputs = {next(iter(signature.inputs)): inputs}
        unknown = sorted(set(inputs) - set(signature.inputs))
        if unknown:
            raise ClientError(
                f"signature {signature.name!r} has no input(s) {unknown}; its inputs are "
                f"{describe_specs(signature.inputs)}",
                code="INVALID_ARGUMENT",
            )
        return {k: np.asarray(v, dtype=NUMPY_BY_ENUM_NAME.get(signature.inputs[k].dtype)) for k, v in inputs.items()}
