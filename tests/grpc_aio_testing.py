"""grpc_testing for grpc.aio services: a servicer of `async def` methods, behind the
interceptors of the real server, driven by grpc_testing's in-memory server. No port, no
PostgreSQL: the unit tests of servicers and interceptors (tests/models/test_servicer_unit.py,
tests/common/test_role_interceptor_unit.py).

grpc_testing alone cannot do this: it calls a synchronous servicer's method in a thread
of its own, and neither awaits a coroutine nor runs interceptors (grpc.aio's included). So
`AioService` hands grpc_testing one synchronous method per RPC of the service descriptor,
which runs what grpc.aio would run: the servicer's handler from its generated
`add_*Servicer_to_server`, rewrapped by the interceptors in the server's order, on an event
loop of the harness, with an aio `ServicerContext` over grpc_testing's. Each handler must keep
its RPC's streaming kind (the interceptors' promise), or the call fails.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc_testing
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc import aio

from services.common.auth import TokenVerifier
from services.common.errors import error_info_from_trailers
from services.common.interceptors import (
    AuthInterceptor,
    ObservabilityInterceptor,
    ValidationInterceptor,
)
from services.common.metrics import ServerMetrics
from services.common.settings import Settings
from services.common.validation import RequestValidator

Metadata = tuple[tuple[str, str | bytes], ...]
_END = object()


def server_interceptors(settings: Settings) -> list[aio.ServerInterceptor]:
    """The chain `start_server` (services/common/server.py) puts in front of every service,
    in its order: the first is the outermost."""
    return [
        ObservabilityInterceptor(ServerMetrics()),
        AuthInterceptor(TokenVerifier(settings)),
        ValidationInterceptor(RequestValidator()),
    ]


@dataclass
class Outcome:
    """How a call ended, as a client would see it."""

    code: grpc.StatusCode
    details: str
    initial_metadata: Metadata
    trailing_metadata: Metadata
    response: Any = None  # a unary response (None when the call failed)
    responses: Sequence[Any] = ()  # a stream's responses

    def error_info(self) -> error_details_pb2.ErrorInfo:
        info = error_info_from_trailers(self.trailing_metadata)
        assert info is not None, f"no ErrorInfo in the trailers: {self.trailing_metadata}"
        return info

    def header(self, key: str) -> str | bytes | None:
        """A key of the initial metadata, else of the trailers (a trailers-only response)."""
        for k, v in (*self.initial_metadata, *self.trailing_metadata):
            if k == key:
                return v
        return None


class _HandlerCallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str, invocation_metadata: Metadata) -> None:
        self.method = method
        self.invocation_metadata = invocation_metadata


class _CapturingServer:
    """Takes the place of a grpc.aio server in a generated `add_*Servicer_to_server`."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Iterable[object]) -> None:
        pass

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.handlers.update({f"/{service}/{name}": h for name, h in handlers.items()})


class _AioContext:
    """The part of `grpc.aio.ServicerContext` the services use, over grpc_testing's context.
    `abort` raises `aio.AbortError` like grpc.aio's; the bridge then ends the call with the
    code, details and trailers it recorded."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context
        self._code: grpc.StatusCode | None = None
        self._details = ""
        self._trailers: Metadata = ()

    def invocation_metadata(self) -> Metadata:
        return tuple(self._context.invocation_metadata())

    async def send_initial_metadata(self, metadata: Metadata) -> None:
        self._context.send_initial_metadata(metadata)

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        self._trailers = tuple(metadata)
        self._context.set_trailing_metadata(metadata)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> None:
        self._code, self._details = code, details
        if trailing_metadata:
            self._trailers = tuple(trailing_metadata)
        raise aio.AbortError()

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def cancelled(self) -> bool:
        return not self._context.is_active()

    def done(self) -> bool:
        return not self._context.is_active()

    def end_aborted(self) -> None:
        """What grpc.aio does with an AbortError: the call ends with the abort's status."""
        assert self._code is not None
        self._context.set_trailing_metadata(self._trailers)
        self._context.set_code(self._code)
        self._context.set_details(self._details)


class AioService:
    """One grpc.aio servicer behind `interceptors`, served by grpc_testing. Close it (or use
    it as a context manager): it runs an event loop in a thread of its own."""

    def __init__(
        self,
        service: ServiceDescriptor,
        add_to_server: Callable[[Any, Any], None],
        servicer: object,
        interceptors: Sequence[aio.ServerInterceptor],
    ) -> None:
        self._service = service
        captured = _CapturingServer()
        add_to_server(servicer, captured)
        self._handlers = captured.handlers
        self._interceptors = list(interceptors)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        bridge = type("Bridge", (), {})()
        for method in service.methods:
            setattr(bridge, method.name, self._bridge(method))
        self._server = grpc_testing.server_from_dictionary(
            {service: bridge}, grpc_testing.strict_real_time()
        )

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> AioService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what a test calls ------------------------------------------------------------------
    def method(self, name: str) -> MethodDescriptor:
        return self._service.methods_by_name[name]

    def handler(self, name: str, metadata: Metadata = ()) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The handler the interceptors make of a method's, as grpc.aio would run it."""
        return self._run(self._intercepted(f"/{self._service.full_name}/{name}", metadata))

    def unary_unary(self, name: str, request: Message, metadata: Metadata = ()) -> Outcome:
        rpc = self._server.invoke_unary_unary(self.method(name), metadata, request, None)
        initial = _initial_metadata(rpc)
        response, trailers, code, details = rpc.termination()
        return Outcome(code, details, tuple(initial), tuple(trailers), response=response)

    def unary_stream(self, name: str, request: Message, metadata: Metadata = ()) -> Outcome:
        rpc = self._server.invoke_unary_stream(self.method(name), metadata, request, None)
        return self._drain(rpc)

    def stream_unary(
        self, name: str, requests: Iterable[Message], metadata: Metadata = ()
    ) -> Outcome:
        rpc = self._server.invoke_stream_unary(self.method(name), metadata, None)
        for request in requests:
            rpc.send_request(request)
        rpc.requests_closed()
        initial = _initial_metadata(rpc)
        response, trailers, code, details = rpc.termination()
        return Outcome(code, details, tuple(initial), tuple(trailers), response=response)

    def stream_stream(
        self, name: str, requests: Iterable[Message], metadata: Metadata = ()
    ) -> Outcome:
        rpc = self.open_stream_stream(name, metadata)
        for request in requests:
            rpc.send_request(request)
        rpc.requests_closed()
        return self._drain(rpc)

    def open_stream_stream(self, name: str, metadata: Metadata = ()) -> Any:
        """grpc_testing's StreamStreamServerRpc, to interleave: send_request, take_response,
        requests_closed, termination."""
        return self._server.invoke_stream_stream(self.method(name), metadata, None)

    # --- the bridge -------------------------------------------------------------------------
    def _run(self, coroutine: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()  # type: ignore[arg-type]

    async def _intercepted(
        self, method: str, metadata: Metadata
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        details = _HandlerCallDetails(method, metadata)

        async def innermost(_: grpc.HandlerCallDetails) -> Any:
            return self._handlers.get(method)

        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]] = innermost
        for interceptor in reversed(self._interceptors):

            def outer(
                call: grpc.HandlerCallDetails,
                interceptor: aio.ServerInterceptor = interceptor,
                inner: Callable[[grpc.HandlerCallDetails], Awaitable[Any]] = continuation,
            ) -> Awaitable[Any]:
                return interceptor.intercept_service(inner, call)

            continuation = outer
        return await continuation(details)

    def _bridge(self, method: MethodDescriptor) -> Callable[[Any, grpc.ServicerContext], Any]:
        path = f"/{self._service.full_name}/{method.name}"
        kind = (method.client_streaming, method.server_streaming)

        def behaviour(request: Any, context: grpc.ServicerContext) -> Any:
            handler = self.handler(method.name, tuple(context.invocation_metadata()))
            assert handler is not None, f"no handler for {path}"
            made = (handler.request_streaming, handler.response_streaming)
            assert made == kind, f"{path} became {made}, its descriptor says {kind}"
            aio_context = _AioContext(context)
            argument = self._requests(request) if method.client_streaming else request
            if method.server_streaming:
                behavior = handler.unary_stream or handler.stream_stream
                return self._stream(behavior(argument, aio_context), aio_context)
            behavior = handler.unary_unary or handler.stream_unary
            return self._run(self._unary(behavior(argument, aio_context), aio_context))

        return behaviour

    @staticmethod
    async def _unary(call: Awaitable[Any], context: _AioContext) -> Any:
        try:
            return await call
        except aio.AbortError:
            context.end_aborted()
            return None

    async def _requests(self, requests: Iterator[Any]) -> AsyncIterator[Any]:
        """grpc_testing's blocking request iterator, read off the loop."""
        while (request := await asyncio.to_thread(next, requests, _END)) is not _END:
            yield request

    def _stream(self, responses: AsyncIterator[Any], context: _AioContext) -> Iterator[Any]:
        """The responses of one task that runs the whole stream (its context variables
        live as long as the call, as under grpc.aio), handed over as they come."""
        handed: queue.Queue[tuple[str, Any]] = queue.Queue()

        async def pump() -> None:
            try:
                async for response in responses:
                    handed.put(("response", response))
            except aio.AbortError:
                context.end_aborted()
            except BaseException as error:
                handed.put(("error", error))
            handed.put(("end", None))

        asyncio.run_coroutine_threadsafe(pump(), self._loop)
        while True:
            kind, value = handed.get()
            if kind == "response":
                yield value
            elif kind == "error":
                raise value
            else:
                return

    @staticmethod
    def _drain(rpc: Any) -> Outcome:
        initial = _initial_metadata(rpc)
        responses = []
        while True:
            try:
                responses.append(rpc.take_response())
            except ValueError:  # grpc_testing: no more responses, the call terminated
                break
        trailers, code, details = rpc.termination()
        return Outcome(code, details, tuple(initial), tuple(trailers), responses=responses)


def _initial_metadata(rpc: Any) -> Metadata:
    try:
        return tuple(rpc.initial_metadata())
    except ValueError:  # grpc_testing: the call ended (an exception) before sending any
        return ()
