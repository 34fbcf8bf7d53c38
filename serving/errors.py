"""The errors of serving/: TF Serving's status codes and their HTTP meaning, and the release tools' verdicts.

`ServingError` carries a status code (what a server answers); `VersionStatus` is what
GetModelStatus says of one version (the server's record and the client's reading: one type);
`ValidationError` and its kinds carry a one-line reason for a run summary (what validating a
model in a server found). No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = [
    "Code",
    "ServingError",
    "invalid",
    "shorten",
    "VersionStatus",
    "ValidationError",
    "ServerStartError",
    "ModelLoadError",
    "LoadTimeout",
    "RequestFailed",
    "UnservableModel",
    "PushError",
]

_MAX_REASON_CHARS = 600


class Code(enum.IntEnum):
    """absl/gRPC canonical status codes (same numbers as tensorflow.error.Code)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc).
_HTTP_STATUS = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INTERNAL: 500,
    Code.DATA_LOSS: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.FAILED_PRECONDITION: 400,
    Code.OUT_OF_RANGE: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """An error with a TF Serving status code; its message is what the client sees."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS.get(self.code, 500)

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """One version in GetModelStatus: its state (`AVAILABLE`, `END`, ... as TF Serving's REST
    API names ModelVersionStatus.State) and its status (a `Code` name and the message)."""

    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""


def shorten(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    """`text` on one line, cut to `limit` characters (reasons go into properties and summaries)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Verdicts of the release tools (validate, push, live check): each a one-line reason.


class ValidationError(Exception):
    """The model (or the server running it) failed validation; `str()` is the reason."""

    retryable = False


class ServerStartError(ValidationError):
    """The model server process could not be started or exited before it served.

    Not retried: tensorflow_model_server exits when its initial model fails to load, and the
    same model fails the same way again.
    """


class ModelLoadError(ValidationError):
    """The server reported that the model failed to load (GetModelStatus state END)."""


class LoadTimeout(ValidationError):
    """The model was not AVAILABLE before the deadline."""

    retryable = True


class RequestFailed(ValidationError):
    """A validation request was answered with an error."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class UnservableModel(ValidationError, ServingError):
    """The SavedModel on disk cannot be served at all (missing graph, no signatures, ...).

    Also a ServingError, so the server reports it with its status code (a version that fails
    to load), and the release tools as a validation verdict."""

    def __init__(self, message: str, code: Code = Code.FAILED_PRECONDITION) -> None:
        ServingError.__init__(self, code, message)


class PushError(Exception):
    """`serving.push` could not push, roll back or export; the message says why and what to do."""
