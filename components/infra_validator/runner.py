"""Model-server runners for InfraValidator: a local process, or TFX's Docker / Kubernetes ones.

`LocalProcessRunner` is a TFX `BaseModelServerRunner` over `serving.process.ModelServerProcess`:
it runs `tensorflow_model_server` when it is on PATH, else the embedded server
(`python -m serving.server`), on free loopback ports. A ServingSpec with no serving_platform
set selects it; `local_docker` and `kubernetes` go to TFX's own runners unchanged.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

from tfx.components.infra_validator import error_types, serving_bins
from tfx.components.infra_validator import executor as tfx_executor
from tfx.components.infra_validator.model_server_runners import base_runner
from tfx.proto import infra_validator_pb2

from serving.errors import LoadTimeout
from serving.process import SERVER_AUTO, ModelServerProcess

logger = logging.getLogger(__name__)


class LocalProcessRunner(base_runner.BaseModelServerRunner):
    """Runs the model server as a child process of the executor, on loopback ports."""

    def __init__(
        self,
        model_path: str,
        serving_binary: serving_bins.ServingBinary,
        serving_spec: infra_validator_pb2.ServingSpec,
        server: str = SERVER_AUTO,
    ) -> None:
        # model_path is TF Serving flavoured: <base>/<model_name>/<version>.
        self._model_base_path = os.path.dirname(model_path)
        self._model_name = serving_spec.model_name
        self._serving_binary = serving_binary
        self._process = ModelServerProcess(
            model_name=self._model_name, model_base_path=self._model_base_path, server=server
        )
        self._running = False

    def __repr__(self) -> str:
        return f"LocalProcessRunner({self._process.description}, model_base_path={self._model_base_path})"

    @property
    def description(self) -> str:
        return self._process.description

    @property
    def process(self) -> ModelServerProcess:
        return self._process

    def GetEndpoint(self) -> str:
        if not self._running:
            raise AssertionError("the model server is not running yet: call Start() and WaitUntilRunning()")
        return self._process.grpc_endpoint

    def Start(self) -> None:
        self._process.start()

    def WaitUntilRunning(self, deadline: float) -> None:
        try:
            self._process.wait_until_serving(deadline)
        except LoadTimeout as error:
            raise error_types.DeadlineExceeded(str(error)) from error
        self._running = True

    def Stop(self) -> None:
        self._running = False
        self._process.stop()

    def GetLogs(self) -> Optional[str]:
        return self._process.logs() or None


def create_model_server_runner(
    model_path: str,
    serving_binary: serving_bins.ServingBinary,
    serving_spec: infra_validator_pb2.ServingSpec,
    *,
    local_server: str = SERVER_AUTO,
) -> base_runner.BaseModelServerRunner:
    """The runner for `serving_spec`'s platform: local process when none is set, else TFX's."""
    if serving_spec.WhichOneof("serving_platform") is None:
        return LocalProcessRunner(model_path, serving_binary, serving_spec, server=local_server)
    return tfx_executor._create_model_server_runner(  # noqa: SLF001 - TFX's own runner factory
        model_path=model_path, serving_binary=serving_binary, serving_spec=serving_spec
    )


def describe_runner(runner: base_runner.BaseModelServerRunner) -> str:
    """A short name for the server a runner runs, for the blessing and the summary."""
    if isinstance(runner, LocalProcessRunner):
        return runner.description
    return repr(runner)
