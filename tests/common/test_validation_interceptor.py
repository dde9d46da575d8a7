"""The validation interceptor: every request message is checked against the contract before
the servicer sees it, on all four streaming kinds, after authentication."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc import aio
from grpc_status import rpc_status
from mlplane.v1 import model_registry_pb2 as pb

from services.common import access
from services.common.auth import TokenVerifier
from services.common.devkeys import ensure_dev_keys
from services.common.interceptors import (
    AuthInterceptor,
    ObservabilityInterceptor,
    ValidationInterceptor,
)
from services.common.metrics import ServerMetrics
from services.common.settings import Settings
from services.common.validation import RequestValidator
from tests.tokens import Tokens

SERVICE = "mlplane.test.Checked"
ID = str(uuid.uuid4())
handled: list[Any] = []


async def unary(request: pb.GetModelRequest, context: Any) -> pb.Model:
    handled.append(request)
    return pb.Model(model_id=request.model_id)


async def server_stream(request: pb.GetModelRequest, context: Any) -> AsyncIterator[pb.Model]:
    handled.append(request)
    yield pb.Model(model_id=request.model_id)


async def client_stream(
    requests: AsyncIterator[pb.UploadModelRequest], context: Any
) -> pb.ModelVersion:
    count = 0
    async for message in requests:
        handled.append(message)
        count += 1
    return pb.ModelVersion(version=count)


async def bidi(
    requests: AsyncIterator[pb.UploadModelRequest], context: Any
) -> AsyncIterator[pb.ModelVersion]:
    async for message in requests:
        handled.append(message)
        yield pb.ModelVersion(name=message.metadata.name)


def _handler(kind: str, behaviour: Any, request: Any, response: Any) -> grpc.RpcMethodHandler:
    factory = {
        "Unary": grpc.unary_unary_rpc_method_handler,
        "ServerStream": grpc.unary_stream_rpc_method_handler,
        "ClientStream": grpc.stream_unary_rpc_method_handler,
        "Bidi": grpc.stream_stream_rpc_method_handler,
    }[kind]
    return factory(
        behaviour,
        request_deserializer=request.FromString,
        response_serializer=response.SerializeToString,
    )


HANDLERS = {
    "Unary": _handler("Unary", unary, pb.GetModelRequest, pb.Model),
    "ServerStream": _handler("ServerStream", server_stream, pb.GetModelRequest, pb.Model),
    "ClientStream": _handler("ClientStream", client_stream, pb.UploadModelRequest, pb.ModelVersion),
    "Bidi": _handler("Bidi", bidi, pb.UploadModelRequest, pb.ModelVersion),
}


@pytest.fixture
async def checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, str]]:
    settings = Settings(state_dir=tmp_path)
    ensure_dev_keys(settings)
    roles = dict(access.METHOD_ROLES)
    roles.update({f"/{SERVICE}/{name}": frozenset({"data_scientist"}) for name in HANDLERS})
    monkeypatch.setattr(access, "METHOD_ROLES", roles)
    server = aio.server(
        interceptors=[
            ObservabilityInterceptor(ServerMetrics()),
            AuthInterceptor(TokenVerifier(settings)),
            ValidationInterceptor(RequestValidator()),
        ]
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, HANDLERS),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    handled.clear()
    try:
        yield f"127.0.0.1:{port}", Tokens(settings).valid("data_scientist")
    finally:
        await server.stop(None)


def _stub(channel: grpc.Channel, kind: str) -> Any:
    request, response = {
        "Unary": (pb.GetModelRequest, pb.Model),
        "ServerStream": (pb.GetModelRequest, pb.Model),
        "ClientStream": (pb.UploadModelRequest, pb.ModelVersion),
        "Bidi": (pb.UploadModelRequest, pb.ModelVersion),
    }[kind]
    make = {
        "Unary": channel.unary_unary,
        "ServerStream": channel.unary_stream,
        "ClientStream": channel.stream_unary,
        "Bidi": channel.stream_stream,
    }[kind]
    return make(
        f"/{SERVICE}/{kind}",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


def _call(target: str, token: str | None, kind: str, payload: Any) -> Any:
    # The sync client: grpc.aio's client can report INTERNAL for a request stream the
    # server ends early (see test_interceptors).
    md = (("authorization", f"Bearer {token}"),) if token else ()
    with grpc.insecure_channel(target) as channel:
        stub = _stub(channel, kind)
        try:
            if kind in ("ClientStream", "Bidi"):
                result = stub(iter(payload), metadata=md, timeout=10)
            else:
                result = stub(payload, metadata=md, timeout=10)
            return list(result) if kind in ("ServerStream", "Bidi") else result
        except grpc.RpcError as error:
            return error


def _violations(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad)
    return [v.field for v in bad.field_violations]


GOOD_STREAM = [
    pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name="m")),
    pb.UploadModelRequest(chunk=b"abc"),
]


async def test_valid_requests_reach_the_handler(checked: tuple[str, str]) -> None:
    target, token = checked
    good = pb.GetModelRequest(model_id=ID)
    results = await asyncio.gather(
        asyncio.to_thread(_call, target, token, "Unary", good),
        asyncio.to_thread(_call, target, token, "ServerStream", good),
        asyncio.to_thread(_call, target, token, "ClientStream", GOOD_STREAM),
        asyncio.to_thread(_call, target, token, "Bidi", GOOD_STREAM),
    )
    assert results[0].model_id == ID
    assert [m.model_id for m in results[1]] == [ID]
    assert results[2].version == 2
    assert [v.name for v in results[3]] == ["m", ""]


@pytest.mark.parametrize("kind", ["Unary", "ServerStream"])
async def test_an_invalid_request_never_reaches_the_handler(
    checked: tuple[str, str], kind: str
) -> None:
    target, token = checked
    error = await asyncio.to_thread(_call, target, token, kind, pb.GetModelRequest(model_id="x"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "modelId must be a valid UUID"
    assert _violations(error) == ["modelId"]
    assert handled == []


@pytest.mark.parametrize("kind", ["ClientStream", "Bidi"])
async def test_each_streamed_message_is_checked_as_it_arrives(
    checked: tuple[str, str], kind: str
) -> None:
    target, token = checked
    stream = [GOOD_STREAM[0], pb.UploadModelRequest()]  # the second one sets no part
    error = await asyncio.to_thread(_call, target, token, kind, stream)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(error) == ["part"]
    assert handled == [GOOD_STREAM[0]]  # the handler saw the valid first message only


async def test_authentication_comes_before_the_rules(checked: tuple[str, str]) -> None:
    target, _ = checked
    error = await asyncio.to_thread(_call, target, None, "Unary", pb.GetModelRequest(model_id="x"))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
