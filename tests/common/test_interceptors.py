"""The interceptors keep each RPC's streaming kind and enforce auth on all four."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from services.common import access
from services.common.auth import TokenVerifier, current_principal
from services.common.devkeys import ensure_dev_keys
from services.common.errors import error_info_from_trailers, invalid_argument
from services.common.interceptors import (
    AuthInterceptor,
    ObservabilityInterceptor,
    set_http_status,
)
from services.common.metrics import ServerMetrics
from services.common.settings import Settings
from tests.tokens import Tokens

SERVICE = "mlplane.test.Echo"


async def unary(request: bytes, context: Any) -> bytes:
    if request == b"fail":
        raise invalid_argument("BAD_INPUT", "request said fail")
    if request == b"boom":
        raise RuntimeError("secret database password in this message")
    if request == b"created":
        set_http_status(201)
    return current_principal().subject.encode() + b":" + request


async def server_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(3):
        if request == b"fail" and i == 1:
            raise invalid_argument("BAD_INPUT", "failed mid-stream")
        yield f"{current_principal().subject}:{i}".encode()


async def client_stream(requests: AsyncIterator[bytes], context: Any) -> bytes:
    total = 0
    async for chunk in requests:
        total += len(chunk)
    return f"{current_principal().subject}:{total}".encode()


async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for chunk in requests:
        yield current_principal().tenant.encode() + b":" + chunk


HANDLERS = {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
    "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
    "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
}


@pytest.fixture
async def echo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, Tokens, ServerMetrics]]:
    settings = Settings(state_dir=tmp_path)
    ensure_dev_keys(settings)
    roles = dict(access.METHOD_ROLES)
    roles.update({f"/{SERVICE}/{name}": frozenset({"data_scientist"}) for name in HANDLERS})
    monkeypatch.setattr(access, "METHOD_ROLES", roles)
    metrics = ServerMetrics()
    server = aio.server(
        interceptors=[ObservabilityInterceptor(metrics), AuthInterceptor(TokenVerifier(settings))]
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, HANDLERS),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", Tokens(settings), metrics
    finally:
        await server.stop(None)


def _md(token: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def _call_all_sync(target: str, token: str | None) -> dict[str, Any]:
    # The sync client on purpose: grpc.aio's client reports INTERNAL instead of
    # the server's status when the server ends a request stream early
    # (grpc/grpc#36066, fix pending in grpc/grpc#43486). The server is right.
    results: dict[str, Any] = {}
    md = _md(token)
    with grpc.insecure_channel(target) as channel:
        calls = {
            "Unary": lambda: channel.unary_unary(f"/{SERVICE}/Unary")(b"hi", metadata=md),
            "ServerStream": lambda: list(
                channel.unary_stream(f"/{SERVICE}/ServerStream")(b"", metadata=md)
            ),
            "ClientStream": lambda: channel.stream_unary(f"/{SERVICE}/ClientStream")(
                iter([b"ab", b"cde"]), metadata=md
            ),
            "Bidi": lambda: list(
                channel.stream_stream(f"/{SERVICE}/Bidi")(iter([b"ab", b"cde"]), metadata=md)
            ),
        }
        for name, call in calls.items():
            try:
                results[name] = call()
            except grpc.RpcError as error:
                results[name] = error.code()
    return results


async def _call_all(target: str, token: str | None) -> dict[str, Any]:
    return await asyncio.to_thread(_call_all_sync, target, token)


async def test_all_four_kinds_work_with_a_valid_token(
    echo: tuple[str, Tokens, ServerMetrics],
) -> None:
    target, tokens, _ = echo
    results = await _call_all(target, tokens.valid("data_scientist", subject="ann", tenant="t1"))
    assert results == {
        "Unary": b"ann:hi",
        "ServerStream": [b"ann:0", b"ann:1", b"ann:2"],
        "ClientStream": b"ann:5",
        "Bidi": [b"t1:ab", b"t1:cde"],
    }


@pytest.mark.parametrize(
    ("token_kind", "code"),
    [
        ("none", grpc.StatusCode.UNAUTHENTICATED),
        ("expired", grpc.StatusCode.UNAUTHENTICATED),
        ("alg_none", grpc.StatusCode.UNAUTHENTICATED),
        ("wrong_role", grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_all_four_kinds_refuse_bad_callers(
    echo: tuple[str, Tokens, ServerMetrics], token_kind: str, code: grpc.StatusCode
) -> None:
    target, tokens, _ = echo
    token = None if token_kind == "none" else getattr(tokens, token_kind)()
    results = await _call_all(target, token)
    assert results == dict.fromkeys(HANDLERS, code)


async def test_service_errors_carry_error_info(echo: tuple[str, Tokens, ServerMetrics]) -> None:
    target, tokens, metrics = echo
    async with aio.insecure_channel(target) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Unary")(b"fail", metadata=_md(tokens.valid()))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_from_trailers(caught.value.trailing_metadata())
    assert info is not None
    assert (info.reason, info.domain) == ("BAD_INPUT", "mlplane")
    sample = metrics.registry.get_sample_value(
        "grpc_server_handled_total",
        {
            "grpc_type": "unary",
            "grpc_service": SERVICE,
            "grpc_method": "Unary",
            "grpc_code": "InvalidArgument",
        },
    )
    assert sample == 1.0


def _sample(metrics: ServerMetrics, name: str, kind: str, method: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(
        name, {"grpc_type": kind, "grpc_service": SERVICE, "grpc_method": method, **labels}
    )
    return 0.0 if value is None else value


async def test_metrics_keep_each_kind_and_count_messages(
    echo: tuple[str, Tokens, ServerMetrics],
) -> None:
    """go-grpc-prometheus's series: the streaming kind in grpc_type, messages counted as
    they go (a unary call: one in, one out when it succeeds)."""
    target, tokens, metrics = echo
    await _call_all(target, tokens.valid("data_scientist"))
    # (grpc_type, messages received, messages sent) of each call in _call_all_sync
    expected = {
        "Unary": ("unary", 1, 1),
        "ServerStream": ("server_stream", 1, 3),
        "ClientStream": ("client_stream", 2, 1),
        "Bidi": ("bidi_stream", 2, 2),
    }
    for method, (kind, received, sent) in expected.items():
        assert _sample(metrics, "grpc_server_started_total", kind, method) == 1, method
        assert _sample(metrics, "grpc_server_handled_total", kind, method, grpc_code="OK") == 1, (
            method
        )
        assert _sample(metrics, "grpc_server_msg_received_total", kind, method) == received
        assert _sample(metrics, "grpc_server_msg_sent_total", kind, method) == sent, method
        assert _sample(metrics, "grpc_server_handling_seconds_count", kind, method) == 1


async def test_metrics_name_codes_as_go_does(echo: tuple[str, Tokens, ServerMetrics]) -> None:
    target, tokens, metrics = echo
    await _call_all(target, None)
    await _call_all(target, tokens.wrong_role())
    for method, kind in (("Unary", "unary"), ("Bidi", "bidi_stream")):
        for code in ("Unauthenticated", "PermissionDenied"):
            got = _sample(metrics, "grpc_server_handled_total", kind, method, grpc_code=code)
            assert got == 1, (method, code)
        # a refused call sends nothing
        assert _sample(metrics, "grpc_server_msg_sent_total", kind, method) == 0


async def test_error_mid_stream_keeps_sent_messages(
    echo: tuple[str, Tokens, ServerMetrics],
) -> None:
    target, tokens, _ = echo
    received: list[bytes] = []
    async with aio.insecure_channel(target) as channel:
        call = channel.unary_stream(f"/{SERVICE}/ServerStream")(
            b"fail", metadata=_md(tokens.valid())
        )
        with pytest.raises(aio.AioRpcError) as caught:
            async for item in call:
                received.append(item)
    assert received == [b"alice:0"]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_unexpected_errors_do_not_leak(echo: tuple[str, Tokens, ServerMetrics]) -> None:
    target, tokens, _ = echo
    async with aio.insecure_channel(target) as channel:
        with pytest.raises(aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Unary")(b"boom", metadata=_md(tokens.valid()))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "password" not in (caught.value.details() or "")
    assert "request id" in (caught.value.details() or "")


async def test_response_headers_and_request_id(echo: tuple[str, Tokens, ServerMetrics]) -> None:
    target, tokens, _ = echo
    async with aio.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Unary")(
            b"created", metadata=(*_md(tokens.valid()), ("x-request-id", "req-123"))
        )
        await call
        headers = dict(await call.initial_metadata())
    assert headers["x-http-status"] == "201"
    assert headers["x-request-id"] == "req-123"
