"""Typed errors: every failed call becomes an `MlplaneError` subclass.

The server puts a `google.rpc.Status` into the `grpc-status-details-bin`
trailer: its `ErrorInfo` `reason` (a stable, upper-case code such as
`MODEL_NOT_FOUND`) and `metadata` are on the exception, so callers branch on
`e.reason` instead of parsing messages; a `BadRequest` becomes
`e.field_violations`. For the usual ways to get stuck (no token, an expired
one, the wrong role, nothing listening at the URL) `e.hint` says what to do
next, and `str(e)` ends with it:

>>> try:  # doctest: +SKIP
...     Client("localhost:8080").list_assets()
... except Unauthenticated as e:
...     print(e)
UNAUTHENTICATED: Jwt is missing
hint: pass token= or set MLPLANE_TOKEN (a dev stack mints one with `mlplane token --role data_scientist`)
"""  # noqa: E501 (a hint is one line)

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

from mlplane_client._hints import SDK, Cause, Diagnosis, Wording, diagnose, render

if TYPE_CHECKING:
    from mlplane_client.resources import ValidationReport

_REQUEST_ID_KEY = "x-request-id"
_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The detail types of google/rpc/error_details.proto, by full name.
_DETAIL_TYPES: dict[str, type[Message]] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.DebugInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.RequestInfo,
        error_details_pb2.ResourceInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
    )
}


class FieldViolation(NamedTuple):
    """One bad field of a request: `field` as a REST caller spells it
    (`metadata.name`, `trainingExportIds[0]`), `description` what is wrong."""

    field: str
    description: str


class MlplaneError(Exception):
    """A call failed. `str(e)` is `CODE REASON: message`, plus a second line
    `hint: …` when there is an obvious next step.

    Attributes:
        code: the gRPC status code.
        reason: `ErrorInfo.reason` (empty when the failure came from the
            network, or from a gateway that sends none).
        domain: `ErrorInfo.domain`: `mlplane` (a service) or `gateway.mlplane`.
        metadata: `ErrorInfo.metadata`, e.g. `{"field": "name"}`.
        message: the human-readable status message.
        request_id: the `x-request-id` of the call; quote it when reporting.
        field_violations: the `BadRequest` detail's `(field, description)`
            pairs, every bad field of an INVALID_ARGUMENT.
        details: every detail of the status, unpacked (`ErrorInfo`,
            `BadRequest`, `Help`, …; unknown types stay `Any`).
        hint: one line on what to do next, or "".
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
        field_violations: Iterable[tuple[str, str]] = (),
        details: Iterable[Message] = (),
        diagnosis: Diagnosis | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.request_id = request_id
        self.field_violations: list[FieldViolation] = [FieldViolation(*v) for v in field_violations]
        self.details: tuple[Message, ...] = tuple(details)
        self.diagnosis = diagnosis
        super().__init__(str(self))

    @property
    def hint(self) -> str:
        return self.hint_for(SDK)

    def hint_for(self, wording: Wording) -> str:
        """The hint worded for a reader (the CLI says `--token`, not `token=`)."""
        return render(self.diagnosis, wording) if self.diagnosis is not None else ""

    @property
    def headline(self) -> str:
        """The first line of `str(e)`: `CODE REASON: message`."""
        head = f"{self.code.name} {self.reason}" if self.reason else self.code.name
        text = " ".join(self.message.split()) or "(no message)"
        return f"{head}: {text}"

    def __str__(self) -> str:
        hint = self.hint
        return f"{self.headline}\nhint: {hint}" if hint else self.headline


class NotFound(MlplaneError):
    """NOT_FOUND: unknown id, or another tenant's resource."""


class PermissionDenied(MlplaneError):
    """PERMISSION_DENIED: wrong role, asset not granted, or separation of duties."""


class Unauthenticated(MlplaneError):
    """UNAUTHENTICATED: missing, expired or invalid token."""


class InvalidArgument(MlplaneError):
    """INVALID_ARGUMENT / OUT_OF_RANGE: bad input (not ONNX, bad time range, ...);
    `field_violations` names every bad field."""


class Conflict(MlplaneError):
    """ALREADY_EXISTS / ABORTED / FAILED_PRECONDITION: the resource is not in a
    state that allows this (already submitted, already decided, approving a
    version whose validation has not passed: `VALIDATION_NOT_PASSED`, ...)."""


class ResourceExhausted(MlplaneError):
    """RESOURCE_EXHAUSTED: too large (model over the size limit, an evaluation set
    over 64 MiB: `EVALUATION_SET_TOO_LARGE`) or rate-limited."""


class Unavailable(MlplaneError):
    """UNAVAILABLE: the gateway, a service, the database or the store is down.

    Also a call whose answer the transport cut off (reason `STREAM_RESET`, `.code` as
    gRPC reported it, INTERNAL or UNKNOWN): the service behind the gateway stopped while
    it answered, so the gateway could only reset the stream. As for any UNAVAILABLE, a
    write may or may not have taken effect."""


class DeadlineExceeded(MlplaneError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


class ValidationTimeout(DeadlineExceeded, TimeoutError):
    """Raised by the client itself (`Client.wait_for_validation`, reason
    `VALIDATION_TIMEOUT`): the version's validation was still `PENDING` or
    `RUNNING` when the wait ran out. `report` is the last report read. Also a
    `TimeoutError`, so `except TimeoutError` catches it."""

    def __init__(self, model_id: str, version: int, report: ValidationReport, waited: float):
        self.report = report
        super().__init__(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"model {model_id} v{version}: validation still {report.state} after {waited:g} s "
            f"({report.attempts} attempt(s) so far)",
            reason="VALIDATION_TIMEOUT",
            metadata={"modelId": model_id, "version": str(version), "state": report.state.value},
            diagnosis=Diagnosis(Cause.VALIDATION_TIMEOUT, model_id=model_id, version=str(version)),
        )


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


STREAM_RESET = "STREAM_RESET"
# gRPC core's words for an HTTP/2 stream reset or a connection closed under a call
# (RST_STREAM maps to INTERNAL, gRFC "HTTP/2 transport mapping"): Envoy resets the
# client's stream when the service dies after its answer has begun.
_RESET_TEXT = re.compile(r"rst_stream|stream removed|socket closed|connection reset", re.I)


def _is_stream_reset(code: grpc.StatusCode, message: str, has_status: bool) -> bool:
    """A failure of the transport, not an answer: no status from a service (every one
    of ours carries an ErrorInfo) and gRPC core's words for a reset."""
    return (
        not has_status
        and code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        and _RESET_TEXT.search(message) is not None
    )


def from_rpc_error(
    error: grpc.RpcError,
    *,
    request_id: str | None = None,
    url: str = "",
    token_sent: bool | None = None,
) -> MlplaneError:
    """Translate a `grpc.RpcError` into the matching `MlplaneError` subclass.

    `request_id` is the id the client sent; the one the server echoes wins.
    `url` (where the call went) and `token_sent` (whether it carried a token)
    let the hint name the cause when the server's status does not.
    """
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (error.details() if callable(getattr(error, "details", None)) else None) or ""
    details: list[Message] = []
    if isinstance(error, grpc.Call):
        details = _status_details(error, code)
        request_id = _echoed_request_id(error) or request_id
    info = next((d for d in details if isinstance(d, error_details_pb2.ErrorInfo)), None)
    reason = info.reason if info is not None else ""
    metadata = dict(info.metadata) if info is not None else {}
    cls = error_class(code)
    if _is_stream_reset(code, message, bool(details)):
        cls, reason = Unavailable, STREAM_RESET
    violations = [
        (v.field, v.description)
        for d in details
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    ]
    return cls(
        code,
        message,
        reason=reason,
        domain=info.domain if info is not None else "",
        metadata=metadata,
        request_id=request_id,
        field_violations=violations,
        details=details,
        diagnosis=diagnose(code, reason, message, metadata, url=url, token_sent=token_sent),
    )


def _status_details(call: grpc.Call, code: grpc.StatusCode) -> list[Message]:
    """Every detail of the `google.rpc.Status` in the trailers, unpacked.

    A status whose code differs from the call's is not this call's (a proxy
    rewrote the code): trust none of it. Its message may differ (a gateway words
    its refusals its own way): the call's message is the one shown.
    """
    for key, value in call.trailing_metadata() or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return []
        if status.code != code.value[0]:
            return []
        return [_unpack(detail) for detail in status.details]
    return []


def _unpack(detail: any_pb2.Any) -> Message:
    cls = _DETAIL_TYPES.get(detail.TypeName())
    if cls is None:
        return detail
    message = cls()
    return message if detail.Unpack(message) else detail


def _echoed_request_id(call: grpc.Call) -> str | None:
    for items in (call.trailing_metadata(), call.initial_metadata()):
        for key, value in items or ():
            if key == _REQUEST_ID_KEY and isinstance(value, str):
                return value
    return None
