"""InfraValidator executor: TFX's, plus a local-process platform and failures that say why.

It subclasses TFX's executor and keeps its contract: same exec properties, the model copied into
a TF Serving layout, TFX's runners for `local_docker` / `kubernetes`, the standard InfraBlessing
(INFRA_BLESSED / INFRA_NOT_BLESSED file, `blessed` property) and `_CreateWarmupModel` writing the
requests as warmup records into the model copy the Pusher pushes. What it changes:

- a ServingSpec with no serving_platform runs the model server as a local process
  (`runner.LocalProcessRunner`);
- readiness, requests and timings go through `serving.validate`, so the blessing records the
  server's load error, the failing request and its status, and load/query seconds;
- a model with no signatures, or without a signature the RequestSpec names, is NOT blessed
  (TFX blesses the former in LOAD_ONLY and crashes on the latter);
- signatures taking named tensors are queried too (TFX limitation: only serialized tf.Example);
- only retryable failures are retried (server did not start, deadline, UNAVAILABLE): a model
  that fails to load or answer fails the same way every time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from tfx import types
from tfx.components.infra_validator import error_types, serving_bins
from tfx.components.infra_validator import executor as tfx_executor
from tfx.components.util import examples_utils, tfxio_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2, infra_validator_pb2
from tfx.types import artifact_utils
from tfx_bsl.tfxio import dataset_options

from components.infra_validator import runner as runner_lib
from components.infra_validator import spec
from serving import validate
from serving.errors import ServerStartError, UnservableModel, ValidationError, shorten
from serving.process import SERVER_AUTO, SERVER_CHOICES, server_command
from serving.saved_model import SERVING_TAG, read_signature_defs

logger = logging.getLogger(__name__)

_RAW_RECORDS_COLUMN = "raw_records"
_POLLING_INTERVAL_SECONDS = 0.5


@dataclass
class _Attempt:
    server: str = ""
    server_start_seconds: Optional[float] = None
    load_seconds: Optional[float] = None
    query_seconds: Optional[float] = None
    error: str = ""


@dataclass
class _Outcome:
    attempts: List[_Attempt] = field(default_factory=list)

    @property
    def last(self) -> _Attempt:
        return self.attempts[-1] if self.attempts else _Attempt()


def read_example_records(examples: types.Artifact, split_name: str, num_examples: int) -> List[bytes]:
    """Up to `num_examples` serialized tf.Examples of `split_name`, read as TFX's request_builder reads."""
    splits = artifact_utils.decode_split_names(examples.split_names)
    if split_name and split_name not in splits:
        raise ValueError(
            f"request_spec.split_name {split_name!r} is not in the examples artifact; "
            f"it has {', '.join(splits) or 'no splits'}"
        )
    split = split_name or (splits[0] if splits else "")
    if not split:
        raise ValueError(f"examples artifact {examples.uri} has no splits")
    payload_format = examples_utils.get_payload_format(examples)
    if payload_format != example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE:
        raise ValueError(
            "InfraValidator builds requests from tf.Examples; the examples artifact holds "
            f"{example_gen_pb2.PayloadFormat.Name(payload_format)}"
        )
    pattern = f"{artifact_utils.get_split_uri([examples], split)}/*"
    files = fileio.glob(pattern)
    if not files:
        raise ValueError(f"no example files match {pattern}")
    factory = tfxio_utils.get_tfxio_factory_from_artifact(
        examples=[examples],
        telemetry_descriptors=["InfraValidator"],
        read_as_raw_records=True,
        raw_record_column_name=_RAW_RECORDS_COLUMN,
    )
    dataset = factory(files).TensorFlowDataset(dataset_options.TensorFlowDatasetOptions(batch_size=num_examples))
    records: List[bytes] = []
    for batch in dataset.take(1):
        records.extend(batch[_RAW_RECORDS_COLUMN].numpy().tolist())
    return records


class Executor(tfx_executor.Executor):
    """TFX's InfraValidator executor with a local platform and recorded reasons and timings."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        local_server = exec_properties.get(spec.LOCAL_SERVER_KEY) or SERVER_AUTO
        if local_server not in SERVER_CHOICES:
            raise ValueError(
                f"exec property {spec.LOCAL_SERVER_KEY}={local_server!r}: expected one of "
                f"{', '.join(SERVER_CHOICES)}"
            )
        self._local_server = local_server
        self._outcome = _Outcome()
        super().Do(input_dict, output_dict, exec_properties)

    def _Do(
        self,
        model: types.Artifact,
        examples: Optional[types.Artifact],
        blessing: types.Artifact,
        serving_spec: infra_validator_pb2.ServingSpec,
        validation_spec: infra_validator_pb2.ValidationSpec,
        request_spec: Optional[infra_validator_pb2.RequestSpec],
    ) -> None:
        if serving_spec.WhichOneof("serving_binary") != "tensorflow_serving":
            raise ValueError("serving_spec must set tensorflow_serving (the only serving binary TFX knows)")
        platform = serving_spec.WhichOneof("serving_platform")
        binaries = serving_bins.parse_serving_binaries(serving_spec)
        if platform is None:
            try:
                server_command(self._local_server)
            except ServerStartError as error:  # a configuration error, not the model's
                raise ValueError(str(error)) from None
            # Tags and digests name Docker images; a local process is one server, validated once.
            binaries = [serving_bins.TensorFlowServing(model_name=serving_spec.model_name, tag="local")]
        elif not binaries:
            # TFX would bless without running anything here.
            raise ValueError(
                f"serving_spec.tensorflow_serving has no tags or digests, so no {platform} "
                "validation would run; set tags (e.g. ['latest'])"
            )
        query = bool(examples and request_spec)
        mode = spec.LOAD_AND_QUERY if query else spec.LOAD_ONLY
        blessing.set_string_custom_property(spec.MODE_KEY, mode)
        logger.info("InfraValidator runs in %s mode on platform %s", mode, platform or "local process")

        model_path = self._PrepareModelPath(model, serving_spec)
        try:
            tags = list(request_spec.tensorflow_serving.tag_set) if request_spec else []
            signature_defs = read_signature_defs(model_path, tags or [SERVING_TAG])
            validate.require_signatures(signature_defs, model.uri)
            if query:
                records = read_example_records(
                    examples, request_spec.split_name, request_spec.num_examples or 1
                )
                plan = validate.build_requests(
                    signature_defs,
                    model_name=serving_spec.model_name,
                    examples=records,
                    signature_names=list(request_spec.tensorflow_serving.signature_names),
                )
                if not plan.requests:
                    raise UnservableModel(
                        "LOAD_AND_QUERY: no signature of the model could be queried ("
                        + "; ".join(plan.skipped) + ")"
                    )
            else:
                plan = validate.RequestPlan(())
        except ValidationError as error:
            self._finish(blessing, passed=False, reason=str(error), plan=None)
            return

        for skipped in plan.skipped:
            logger.info("not queried: %s", skipped)
        passed = True
        for serving_binary in binaries:
            passed &= self._ValidateWithRetry(
                model_path=model_path,
                serving_binary=serving_binary,
                serving_spec=serving_spec,
                validation_spec=validation_spec,
                requests=list(plan.requests),
            )
            if not passed:
                break
        self._finish(blessing, passed=passed, reason=self._outcome.last.error, plan=plan)
        if passed and plan.requests and request_spec.make_warmup:
            self._CreateWarmupModel(blessing, model_path, warmup_requests=[p.request for p in plan.requests])

    def _finish(
        self,
        blessing: types.Artifact,
        *,
        passed: bool,
        reason: str,
        plan: Optional[validate.RequestPlan],
    ) -> None:
        last = self._outcome.last
        if passed:
            tfx_executor._mark_blessed(blessing)  # noqa: SLF001 - TFX's own blessing helpers
        else:
            tfx_executor._mark_not_blessed(blessing)  # noqa: SLF001
            blessing.set_string_custom_property(spec.FAILURE_REASON_KEY, reason or "unknown failure")
            logger.error("InfraValidator: NOT blessed: %s", reason)
        blessing.set_int_custom_property(spec.ATTEMPTS_KEY, len(self._outcome.attempts))
        if last.server:
            blessing.set_string_custom_property(spec.SERVER_KEY, last.server)
        for key, value in (
            (spec.SERVER_START_SECONDS_KEY, last.server_start_seconds),
            (spec.LOAD_SECONDS_KEY, last.load_seconds),
            (spec.QUERY_SECONDS_KEY, last.query_seconds),
        ):
            if value is not None:
                blessing.set_float_custom_property(key, round(value, 4))
        if plan is not None:
            blessing.set_int_custom_property(spec.NUM_REQUESTS_KEY, len(plan.requests))
            blessing.set_string_custom_property(
                spec.REQUESTS_KEY, json.dumps([p.describe() for p in plan.requests])
            )
            if plan.skipped:
                blessing.set_string_custom_property(spec.SKIPPED_KEY, json.dumps(list(plan.skipped)))
        if passed:
            logger.info("InfraValidator: blessed (%s)", _timings(last))

    def _ValidateWithRetry(
        self,
        model_path: str,
        serving_binary: serving_bins.ServingBinary,
        serving_spec: infra_validator_pb2.ServingSpec,
        validation_spec: infra_validator_pb2.ValidationSpec,
        requests: Sequence[validate.PlannedRequest],
    ) -> bool:
        for index in range(validation_spec.num_tries):
            logger.info("infra validation attempt %d/%d", index + 1, validation_spec.num_tries)
            attempt = _Attempt()
            self._outcome.attempts.append(attempt)
            try:
                self._ValidateOnce(
                    model_path=model_path,
                    serving_binary=serving_binary,
                    serving_spec=serving_spec,
                    validation_spec=validation_spec,
                    requests=requests,
                    attempt=attempt,
                )
            except error_types.GracefulShutdown:
                raise
            except Exception as error:  # noqa: BLE001 - any failure is this attempt's verdict
                attempt.error = _reason(error)
                # Failures of unknown kind (Docker API, Kubernetes) are retried as TFX does.
                retryable = getattr(error, "retryable", not isinstance(error, ValidationError))
                logger.warning(
                    "infra validation attempt %d/%d failed (%s): %s",
                    index + 1, validation_spec.num_tries, "will retry" if retryable else "final", attempt.error,
                )
                if isinstance(error, error_types.DeadlineExceeded):
                    logger.info("consider raising ValidationSpec.max_loading_time_seconds")
                if not retryable:
                    return False
            else:
                return True
        return False

    def _ValidateOnce(  # pylint: disable=arguments-differ
        self,
        model_path: str,
        serving_binary: serving_bins.ServingBinary,
        serving_spec: infra_validator_pb2.ServingSpec,
        validation_spec: infra_validator_pb2.ValidationSpec,
        requests: Sequence[validate.PlannedRequest],
        attempt: Optional[_Attempt] = None,
    ) -> None:
        attempt = attempt or _Attempt()
        deadline = time.time() + validation_spec.max_loading_time_seconds
        runner = runner_lib.create_model_server_runner(
            model_path, serving_binary, serving_spec, local_server=self._local_server
        )
        attempt.server = runner_lib.describe_runner(runner)
        local = isinstance(runner, runner_lib.LocalProcessRunner)
        try:
            logger.info("starting %r", runner)
            begin = time.monotonic()
            runner.Start()
            runner.WaitUntilRunning(deadline)
            attempt.server_start_seconds = time.monotonic() - begin
            endpoint = runner.GetEndpoint()
            attempt.load_seconds = validate.wait_until_available(
                endpoint,
                serving_spec.model_name,
                deadline=deadline,
                is_alive=runner.process.is_alive if local else None,
                describe_exit=(lambda: f"exit code {runner.process.exit_code()}: {runner.process.failure_lines()}")
                if local else None,
                poll_interval=_POLLING_INTERVAL_SECONDS,
            )
            logger.info("model loaded in %.2f s", attempt.load_seconds)
            if requests:
                result = validate.send_requests(endpoint, requests)
                attempt.query_seconds = result.seconds
                logger.info("%d request(s) answered in %.3f s", result.count, result.seconds)
        except Exception:
            logs = runner.GetLogs()
            if logs:
                tail = "\n".join(logs.splitlines()[-60:])
                logger.error("model server log (last lines):\nBEGIN_MODEL_SERVER_LOG\n%s\nEND_MODEL_SERVER_LOG", tail)
            else:
                logger.error("no model server logs available")
            raise
        finally:
            logger.info("stopping %r", runner)
            runner.Stop()


def _reason(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return str(error)
    return f"{type(error).__name__}: {shorten(str(error))}"


def _timings(attempt: _Attempt) -> str:
    parts = [attempt.server or "unknown server"]
    if attempt.server_start_seconds is not None:
        parts.append(f"server up in {attempt.server_start_seconds:.1f} s")
    if attempt.load_seconds is not None:
        parts.append(f"model loaded in {attempt.load_seconds:.1f} s")
    if attempt.query_seconds is not None:
        parts.append(f"queries took {attempt.query_seconds:.3f} s")
    return ", ".join(parts)
