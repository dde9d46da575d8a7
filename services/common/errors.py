"""Errors as `google.rpc.Status` with an `ErrorInfo` reason.

Domain code raises `ServiceError`; the observability interceptor turns it into
a gRPC status whose `grpc-status-details-bin` trailer carries the rich status
(built by `grpc_status.rpc_status`, which is also how clients read it). Envoy's
`convert_grpc_status` renders that trailer as the REST error body.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "mlplane"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
HTTP_STATUS_HEADER = "x-http-status"


class ServiceError(Exception):
    """An error a caller can act on: a status code, a stable reason, a message."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})
        # Only for statuses Envoy cannot express on its own (413).
        self.http_status = http_status
        # More google.rpc details after the ErrorInfo (e.g. a BadRequest).
        self.details: list[Message] = []


def unauthenticated(reason: str, message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def permission_denied(reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, reason, message, metadata=metadata)


def invalid_argument(reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, reason, message, metadata=metadata)


def not_found(reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, reason, message, metadata=metadata)


def unavailable(reason: str, message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAVAILABLE, reason, message)


def not_implemented(method: str) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.UNIMPLEMENTED,
        "NOT_IMPLEMENTED",
        f"{method} is not implemented yet",
        metadata={"method": method},
    )


def internal(request_id: str) -> ServiceError:
    # Never say more: stack traces, SQL and paths stay in the server log.
    return ServiceError(
        grpc.StatusCode.INTERNAL,
        "INTERNAL",
        f"internal error; quote request id {request_id} when reporting it",
        metadata={"requestId": request_id},
    )


def to_status_proto(error: ServiceError) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    details = []
    for message in (info, *error.details):
        detail = any_pb2.Any()
        detail.Pack(message)
        details.append(detail)
    code_value: int = error.code.value[0]
    assert code_pb2.Code.Name(code_value)  # the grpc and google.rpc enums agree
    return status_pb2.Status(code=code_value, message=error.message, details=details)


def trailing_metadata(error: ServiceError) -> tuple[tuple[str, str | bytes], ...]:
    items: list[tuple[str, str | bytes]] = list(
        rpc_status.to_status(to_status_proto(error)).trailing_metadata
    )
    if error.http_status is not None:
        items.append((HTTP_STATUS_HEADER, str(error.http_status)))
    return tuple(items)


def error_info_from_trailers(
    metadata: tuple[tuple[str, str | bytes], ...] | None,
) -> error_details_pb2.ErrorInfo | None:
    """Client side: the ErrorInfo of a failed call, if the server sent one."""
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info
    return None
