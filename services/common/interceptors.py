"""Cross-cutting concerns as grpc.aio server interceptors.

Kept whole (over 400 lines): its three interceptors are one scheme, each handler rewrapped once.

Each interceptor rewraps the method handler it is given with a handler of the
same streaming kind (unary or stream in, unary or stream out), so adding one
never changes what a method is on the wire.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from services.common import access
from services.common.auth import TokenVerifier, current_principal_var, require_role
from services.common.errors import (
    HTTP_STATUS_HEADER,
    ServiceError,
    internal,
    invalid_argument,
    trailing_metadata,
)
from services.common.logs import method_var, request_id_var, subject_var
from services.common.metrics import MethodMetrics, ServerMetrics
from services.common.validation import RequestValidator

log = logging.getLogger("mlplane.rpc")

Behavior = Callable[..., Any]
Wrap = Callable[[Behavior, bool, bool], Behavior]
Req = TypeVar("Req")
Resp = TypeVar("Resp")
# Strings: grpc's classes are generic only in their type stubs, not at runtime.
Handler: TypeAlias = "grpc.RpcMethodHandler[Req, Resp]"
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]]"
)

# Headers a handler wants on its response (e.g. `x-http-status: 201`); the
# observability interceptor sends them as initial metadata before the first
# response message, since only then can the gateway still act on them.
response_headers_var: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar(
    "response_headers", default=None
)


def set_response_header(key: str, value: str) -> None:
    headers = response_headers_var.get()
    if headers is None:
        raise RuntimeError("set_response_header outside an RPC")
    headers.append((key, value))


def set_http_status(status: int) -> None:
    """Ask the gateway to answer a REST call with this status (201, 202)."""
    set_response_header(HTTP_STATUS_HEADER, str(status))


def rewrap(
    handler: Handler[Req, Resp],
    wrap: Wrap,
    deserializer: Callable[[Callable[[bytes], Any]], Callable[[bytes], Any]] | None = None,
) -> Handler[Req, Resp]:
    """A handler of the same streaming kind whose behaviour is `wrap(behaviour)` (and whose
    request deserializer is `deserializer(the old one)`, when given)."""
    req, resp = handler.request_streaming, handler.response_streaming
    make = {
        (False, False): (grpc.unary_unary_rpc_method_handler, handler.unary_unary),
        (False, True): (grpc.unary_stream_rpc_method_handler, handler.unary_stream),
        (True, False): (grpc.stream_unary_rpc_method_handler, handler.stream_unary),
        (True, True): (grpc.stream_stream_rpc_method_handler, handler.stream_stream),
    }
    factory, behavior = make[(req, resp)]
    assert behavior is not None
    parse = handler.request_deserializer
    return factory(
        wrap(behavior, req, resp),
        request_deserializer=deserializer(parse) if deserializer and parse else parse,
        response_serializer=handler.response_serializer,
    )


class MalformedRequest:
    """What a request that does not parse as its message type becomes: grpc would answer
    UNKNOWN ("Unexpected DecodeError") before any interceptor runs, so the parse error is
    kept and turned into INVALID_ARGUMENT by the observability interceptor."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error

    def refusal(self) -> ServiceError:
        return invalid_argument(
            "MALFORMED_REQUEST",
            "the request is not a valid protobuf message of this method's request type "
            f"(invalid wire format or a string that is not UTF-8): {self.error}",
        )


def tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse_or_keep_error(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as error:
            return MalformedRequest(error)

    return parse_or_keep_error


def _well_formed(request: Any) -> Any:
    if isinstance(request, MalformedRequest):
        raise request.refusal()
    return request


async def _well_formed_stream(
    requests: AsyncIterator[Any], metrics: MethodMetrics
) -> AsyncIterator[Any]:
    received = metrics.received
    async for request in requests:
        received.inc()
        yield _well_formed(request)


async def _call_unary(
    behavior: Behavior, request: Any, context: aio.ServicerContext[Any, Any]
) -> Any:
    result = behavior(request, context)
    if inspect.isawaitable(result):
        return await result
    return result


async def _iterate(
    behavior: Behavior, request: Any, context: aio.ServicerContext[Any, Any]
) -> AsyncIterator[Any]:
    result = behavior(request, context)
    if inspect.isasyncgen(result):
        async for item in result:
            yield item
    elif inspect.isawaitable(result):
        await result  # a handler that wrote with context.write()
    else:
        for item in result:
            yield item


def _metadata_value(context: aio.ServicerContext[Any, Any], key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key and isinstance(v, str):
            return v
    return None


class _Call:
    """Per-call bookkeeping of the observability interceptor."""

    def __init__(self, method: str, metrics: MethodMetrics) -> None:
        self.method = method
        self.metrics = metrics
        self.started = time.perf_counter()
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False

    def begin(self, context: aio.ServicerContext[Any, Any]) -> None:
        request_id = _metadata_value(context, "x-request-id") or uuid.uuid4().hex
        request_id_var.set(request_id)
        method_var.set(self.method)
        subject_var.set(None)
        self.headers = [("x-request-id", request_id)]
        response_headers_var.set(self.headers)
        self.metrics.started.inc()

    async def flush_headers(self, context: aio.ServicerContext[Any, Any]) -> None:
        if not self.headers_sent:
            self.headers_sent = True
            await context.send_initial_metadata(tuple(self.headers))

    async def flush_unary(self, context: aio.ServicerContext[Any, Any]) -> None:
        """Before a unary response: headers a handler asked for go out as initial
        metadata (the gateway acts on them); the request id alone rides in the
        trailers instead, which saves a separate send on the hottest calls. The
        gateway answers REST calls with the request id header either way."""
        if len(self.headers) > 1:
            await self.flush_headers(context)
        else:
            context.set_trailing_metadata(tuple(self.headers))

    async def fail(self, context: aio.ServicerContext[Any, Any], error: ServiceError) -> None:
        self.finish(error.code.name, error.message)
        metadata = trailing_metadata(error)
        if not self.headers_sent:
            # Trailers-only response: these become the HTTP response headers.
            metadata = (*self.headers, *metadata)
        await context.abort(error.code, error.message, trailing_metadata=metadata)

    def finish(self, code: str, message: str = "") -> None:
        """The call ended with `code`, a grpc.StatusCode name ("OK", "CANCELLED")."""
        elapsed = time.perf_counter() - self.started
        self.metrics.handled(code, elapsed)
        level = logging.INFO if code in ("OK", "CANCELLED") else logging.WARNING
        if code == "INTERNAL":
            level = logging.ERROR
        log.log(
            level,
            "rpc finished",
            extra={"grpc_code": code, "duration_ms": round(elapsed * 1000, 3), "detail": message},
        )


class _Rewrapper:
    """The wrapped handler of each method, built on its first call: grpc asks
    the interceptors for a handler on every call, and the wrapping depends only
    on the method (per-call state lives inside the behaviours)."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[object, object]] = {}

    def cached(self, method: str, handler: Handler[Req, Resp]) -> Handler[Req, Resp] | None:
        entry = self._wrapped.get(method)
        if entry is not None and entry[0] is handler:
            return entry[1]  # type: ignore[return-value]
        return None

    def remember(
        self, method: str, handler: Handler[Req, Resp], wrapped: Handler[Req, Resp]
    ) -> Handler[Req, Resp]:
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class ObservabilityInterceptor(aio.ServerInterceptor):
    """Request id, JSON access log, the go-grpc-prometheus server metrics (started,
    handled by code, messages received and sent, handling seconds; labelled with the
    method's streaming kind), and the translation of `ServiceError` (or any surprise)
    into a rich gRPC status."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._handlers = _Rewrapper()

    async def intercept_service(
        self,
        continuation: Continuation[Req, Resp],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        cached = self._handlers.cached(method, handler)
        if cached is not None:
            return cached

        def wrap(behavior: Behavior, request_streaming: bool, response_streaming: bool) -> Behavior:
            metrics = self._metrics.method(method, request_streaming, response_streaming)
            received, sent = metrics.received, metrics.sent

            def checked(request: Any) -> Any:
                if request_streaming:
                    return _well_formed_stream(request, metrics)
                received.inc()
                return _well_formed(request)

            if response_streaming:

                async def stream_behavior(
                    request: Any, context: aio.ServicerContext[Any, Any]
                ) -> AsyncIterator[Any]:
                    call = _Call(method, metrics)
                    call.begin(context)
                    try:
                        async for item in _iterate(behavior, checked(request), context):
                            await call.flush_headers(context)
                            sent.inc()
                            yield item
                    except ServiceError as error:
                        await call.fail(context, error)
                    except aio.AbortError:
                        call.finish(_code_name(context))
                        raise
                    except GeneratorExit:
                        # grpc closes the stream of a call whose client went away (no
                        # status can be sent any more): a cancellation, not an error.
                        call.finish("CANCELLED", "client went away")
                        raise
                    except BaseException as error:
                        await _unexpected(call, context, error)
                    else:
                        await call.flush_headers(context)
                        call.finish("OK")

                return stream_behavior

            async def unary_behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
                call = _Call(method, metrics)
                call.begin(context)
                try:
                    response = await _call_unary(behavior, checked(request), context)
                except ServiceError as error:
                    await call.fail(context, error)
                except aio.AbortError:
                    call.finish(_code_name(context))
                    raise
                except BaseException as error:
                    await _unexpected(call, context, error)
                await call.flush_unary(context)
                call.finish("OK")
                sent.inc()
                return response

            return unary_behavior

        return self._handlers.remember(method, handler, rewrap(handler, wrap, tolerant))


async def _unexpected(
    call: _Call, context: aio.ServicerContext[Any, Any], error: BaseException
) -> None:
    import asyncio

    if isinstance(error, asyncio.CancelledError):
        call.finish("CANCELLED", "client went away")
        raise error
    log.exception("unhandled error in %s", call.method, exc_info=error)
    await call.fail(context, internal(request_id_var.get() or "?"))


def _code_name(context: aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


Guard: TypeAlias = "Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]"


def _guarded(behavior: Behavior, response_streaming: bool, guard: Guard) -> Behavior:
    """`behavior` behind `guard(request, context)`, which may refuse the call by raising or
    hand on a replacement request (a checked request stream)."""
    if response_streaming:

        async def stream_behavior(
            request: Any, context: aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            admitted = await guard(request, context)
            async for item in _iterate(behavior, admitted, context):
                yield item

        return stream_behavior

    async def unary_behavior(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        return await _call_unary(behavior, await guard(request, context), context)

    return unary_behavior


async def _admit(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
    return request


class _GuardInterceptor(aio.ServerInterceptor):
    """Puts a guard in front of every method but the open infrastructure services
    (health, reflection); `guard_for` builds it once per method and streaming kind."""

    def __init__(self) -> None:
        self._handlers = _Rewrapper()

    def guard_for(self, method: str, request_streaming: bool) -> Guard:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Continuation[Req, Resp],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or access.is_open(method):
            return handler
        cached = self._handlers.cached(method, handler)
        if cached is not None:
            return cached

        def wrap(behavior: Behavior, request_streaming: bool, response_streaming: bool) -> Behavior:
            return _guarded(behavior, response_streaming, self.guard_for(method, request_streaming))

        return self._handlers.remember(method, handler, rewrap(handler, wrap))


class AuthInterceptor(_GuardInterceptor):
    """Verifies the bearer token and the caller's role for every method except
    the open infrastructure services (health, reflection)."""

    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__()
        self._verifier = verifier

    def guard_for(self, method: str, request_streaming: bool) -> Guard:
        if access.is_link_authenticated(method):
            return _admit  # the servicer verifies the request's signed link itself
        allowed = access.allowed_roles(method)
        verifier = self._verifier

        async def authorize(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            principal = await verifier.verify(verifier.token_of(context.invocation_metadata()))
            subject_var.set(principal.subject)
            require_role(principal, method, allowed)
            current_principal_var.set(principal)
            return request

        return authorize


class ValidationInterceptor(_GuardInterceptor):
    """Checks every request message against the contract's field rules (protovalidate)
    before the servicer sees it; for client streams, each message as it arrives. Runs
    after authentication, so an anonymous caller learns nothing about the rules."""

    def __init__(self, validator: RequestValidator) -> None:
        super().__init__()
        self._validator = validator

    def guard_for(self, method: str, request_streaming: bool) -> Guard:
        check = self._validator.check

        async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for message in requests:
                check(message)
                yield message

        async def admit(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
            if request_streaming:
                return checked(request)
            check(request)
            return request

        return admit
