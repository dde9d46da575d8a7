"""Typed errors: every failed call becomes an `MlplaneError` subclass.

The server puts a `google.rpc.Status` with an `ErrorInfo` into the
`grpc-status-details-bin` trailer; its `reason` (a stable, upper-case code such
as `MODEL_NOT_FOUND`) and `metadata` are on the exception, so callers branch on
`e.reason` instead of parsing messages.

>>> try:  # doctest: +SKIP
...     c.get_model("no-such-model")
... except NotFound as e:
...     print(e.reason)
MODEL_NOT_FOUND
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

_REQUEST_ID_KEY = "x-request-id"


class MlplaneError(Exception):
    """A call failed. `str(e)` is one line: `CODE REASON: message`.

    Attributes:
        code: the gRPC status code.
        reason: `ErrorInfo.reason` sent by the service (empty when the failure
            came from the network or the gateway, e.g. a missing token).
        metadata: `ErrorInfo.metadata`, e.g. `{"field": "name"}`.
        message: the human-readable status message.
        request_id: the `x-request-id` of the call; quote it when reporting.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.code.name} {self.reason}" if self.reason else self.code.name
        text = " ".join(self.message.split()) or "(no message)"
        return f"{head}: {text}"


class NotFound(MlplaneError):
    """NOT_FOUND: unknown id, or another tenant's resource."""


class PermissionDenied(MlplaneError):
    """PERMISSION_DENIED: wrong role, asset not granted, or separation of duties."""


class Unauthenticated(MlplaneError):
    """UNAUTHENTICATED: missing, expired or invalid token."""


class InvalidArgument(MlplaneError):
    """INVALID_ARGUMENT / OUT_OF_RANGE: bad input (not ONNX, bad time range, ...)."""


class Conflict(MlplaneError):
    """ALREADY_EXISTS / ABORTED / FAILED_PRECONDITION: the resource is not in a
    state that allows this (already submitted, already decided, ...)."""


class ResourceExhausted(MlplaneError):
    """RESOURCE_EXHAUSTED: too large (model over the size limit) or rate-limited."""


class Unavailable(MlplaneError):
    """UNAVAILABLE: the gateway, a service, the database or the store is down."""


class DeadlineExceeded(MlplaneError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


class IntegrityError(MlplaneError):
    """DATA_LOSS raised by the client itself: received bytes do not hash to the
    SHA-256 the server recorded (reason `SHA256_MISMATCH`), or a stream ended
    without its manifest (reason `INCOMPLETE_STREAM`)."""

    def __init__(
        self, message: str, *, reason: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(grpc.StatusCode.DATA_LOSS, message, reason=reason, metadata=metadata)


_BY_CODE: dict[grpc.StatusCode, type[MlplaneError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_class(code: grpc.StatusCode) -> type[MlplaneError]:
    """The exception class for a status code (`MlplaneError` for the rest)."""
    return _BY_CODE.get(code, MlplaneError)


def from_rpc_error(error: grpc.RpcError, *, request_id: str | None = None) -> MlplaneError:
    """Translate a `grpc.RpcError` into the matching `MlplaneError` subclass.

    `request_id` is the id the client sent; the one the server echoes wins.
    """
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (error.details() if callable(getattr(error, "details", None)) else None) or ""
    reason, metadata = "", dict[str, str]()
    if isinstance(error, grpc.Call):
        info = _error_info(error)
        if info is not None:
            reason, metadata = info.reason, dict(info.metadata)
        request_id = _echoed_request_id(error) or request_id
    return error_class(code)(code, message, reason=reason, metadata=metadata, request_id=request_id)


def _error_info(call: grpc.Call) -> error_details_pb2.ErrorInfo | None:
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # code or message differ from the trailer's; trust neither
        return None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None


def _echoed_request_id(call: grpc.Call) -> str | None:
    for items in (call.trailing_metadata(), call.initial_metadata()):
        for key, value in items or ():
            if key == _REQUEST_ID_KEY and isinstance(value, str):
                return value
    return None
