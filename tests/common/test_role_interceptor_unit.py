"""The role check of the interceptor chain (services/common/interceptors.py, auth.py,
access.py), unit-tested with grpc_testing (tests/grpc_aio_testing.py): no port, no server.

A test service with one method of each streaming kind stands behind the server's own chain
(observability, auth, validation). A method the role table does not name is refused whatever
the caller's roles; a caller without an allowed role is refused before the method runs; and
every method keeps its streaming kind through each interceptor and the whole chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from google.protobuf.descriptor import ServiceDescriptor

from services.common import access
from services.common.auth import current_principal
from services.common.settings import ROLE_DATA_SCIENTIST as DS
from services.common.settings import ROLE_MODEL_APPROVER as APPROVER
from services.common.settings import Settings
from tests.grpc_aio_testing import AioService, Metadata, Outcome, server_interceptors
from tests.tokens import Tokens

SERVICE = "mlplane.test.Echo"
Text = wrappers_pb2.StringValue

# name: (client streaming, server streaming)
KINDS = {
    "Unary": (False, False),
    "ServerStream": (False, True),
    "ClientStream": (True, False),
    "Bidi": (True, True),
}
UNMAPPED = "Unmapped"  # a unary method the role table leaves out


def _echo_service() -> ServiceDescriptor:
    """The test service's descriptor (grpc_testing serves descriptors), built here: no
    contract of the project has a bidirectional stream."""
    file = descriptor_pb2.FileDescriptorProto(
        name="mlplane_test/echo.proto",
        package="mlplane.test",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    service = file.service.add(name="Echo")
    for name, (client, server) in {**KINDS, UNMAPPED: (False, False)}.items():
        service.method.add(
            name=name,
            input_type=".google.protobuf.StringValue",
            output_type=".google.protobuf.StringValue",
            client_streaming=client,
            server_streaming=server,
        )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(file.SerializeToString())
    return pool.FindServiceByName(SERVICE)


class Echo:
    """Answers with the caller's subject; `ran` says which methods actually ran."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def Unary(self, request: Text, context: Any) -> Text:
        self.ran.append("Unary")
        return Text(value=f"{current_principal().subject}:{request.value}")

    async def ServerStream(self, request: Text, context: Any) -> AsyncIterator[Text]:
        self.ran.append("ServerStream")
        for i in range(3):
            yield Text(value=f"{current_principal().subject}:{request.value}:{i}")

    async def ClientStream(self, requests: AsyncIterator[Text], context: Any) -> Text:
        self.ran.append("ClientStream")
        values = [request.value async for request in requests]
        return Text(value=f"{current_principal().subject}:{'+'.join(values)}")

    async def Bidi(self, requests: AsyncIterator[Text], context: Any) -> AsyncIterator[Text]:
        self.ran.append("Bidi")
        async for request in requests:
            yield Text(value=f"{current_principal().subject}:{request.value}")

    async def Unmapped(self, request: Text, context: Any) -> Text:
        self.ran.append(UNMAPPED)
        return request


def add_echo_to_server(servicer: Echo, server: Any) -> None:
    """What protoc's `add_*Servicer_to_server` would be for the test service."""
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    handlers = {
        name: make[kind](getattr(servicer, name))
        for name, kind in {**KINDS, UNMAPPED: (False, False)}.items()
    }
    server.add_registered_method_handlers(SERVICE, handlers)


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def service(
    dev_settings: Settings, echo: Echo, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AioService]:
    # Every streaming kind is for data scientists only; UNMAPPED is in no row of the table.
    roles = dict(access.METHOD_ROLES)
    roles.update({f"/{SERVICE}/{name}": frozenset({DS}) for name in KINDS})
    monkeypatch.setattr(access, "METHOD_ROLES", roles)
    with AioService(
        _echo_service(), add_echo_to_server, echo, server_interceptors(dev_settings)
    ) as served:
        yield served


def _call(service: AioService, name: str, metadata: Metadata) -> Outcome:
    """Calls `name` the way its kind is called."""
    one, two = Text(value="a"), Text(value="b")
    match KINDS.get(name, (False, False)):
        case (False, False):
            return service.unary_unary(name, one, metadata)
        case (False, True):
            return service.unary_stream(name, one, metadata)
        case (True, False):
            return service.stream_unary(name, [one, two], metadata)
        case _:
            return service.stream_stream(name, [one, two], metadata)


# ------------------------------------------------------------------ the streaming kinds


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_interceptor_and_the_chain_keep_the_streaming_kind(
    dev_settings: Settings, echo: Echo, dev_tokens: Tokens, name: str
) -> None:
    alone = [[interceptor] for interceptor in server_interceptors(dev_settings)]
    for interceptors in (*alone, server_interceptors(dev_settings)):
        with AioService(_echo_service(), add_echo_to_server, echo, interceptors) as served:
            handler = served.handler(name, dev_tokens.metadata(DS))
            assert handler is not None
            assert (handler.request_streaming, handler.response_streaming) == KINDS[name]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_an_allowed_role_reaches_the_method_of_each_kind(
    service: AioService, echo: Echo, dev_tokens: Tokens, name: str
) -> None:
    outcome = _call(service, name, dev_tokens.metadata(DS, subject="carol"))
    assert outcome.code == grpc.StatusCode.OK, outcome.details
    assert echo.ran == [name]
    answers = {
        "Unary": ["carol:a"],
        "ServerStream": ["carol:a:0", "carol:a:1", "carol:a:2"],
        "ClientStream": ["carol:a+b"],
        "Bidi": ["carol:a", "carol:b"],
    }
    got = [outcome.response] if outcome.response is not None else list(outcome.responses)
    assert [message.value for message in got] == answers[name]


def test_a_bidirectional_stream_stays_a_stream_through_the_chain(
    service: AioService, dev_tokens: Tokens
) -> None:
    """Each answer comes before the next request is sent: nothing is gathered into one."""
    rpc = service.open_stream_stream("Bidi", dev_tokens.metadata(DS, subject="dora"))
    for value in ("x", "y", "z"):
        rpc.send_request(Text(value=value))
        assert rpc.take_response().value == f"dora:{value}"
    rpc.requests_closed()
    _, code, _ = rpc.termination()
    assert code == grpc.StatusCode.OK


# ------------------------------------------------------------------ refusals


def _refusal(service: AioService, name: str, metadata: Metadata) -> Outcome:
    outcome = _call(service, name, metadata)
    assert outcome.response is None
    assert list(outcome.responses) == []
    return outcome


def test_a_method_missing_from_the_role_table_is_refused_whatever_the_roles(
    service: AioService, echo: Echo, dev_tokens: Tokens
) -> None:
    refused = _refusal(service, UNMAPPED, dev_tokens.metadata(DS, APPROVER))
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.error_info().reason == "METHOD_NOT_MAPPED"
    assert refused.error_info().domain == "mlplane"
    assert refused.details == f"/{SERVICE}/{UNMAPPED} is not open to any role"
    assert echo.ran == []


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_wrong_role_is_refused_before_the_method_runs(
    service: AioService, echo: Echo, dev_tokens: Tokens, name: str
) -> None:
    refused = _refusal(service, name, dev_tokens.metadata(APPROVER))
    assert refused.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.error_info().reason == "ROLE_REQUIRED"
    assert dict(refused.error_info().metadata) == {"method": name, "required": DS}
    assert refused.details == f"{name} requires role {DS}"
    assert echo.ran == []


@pytest.mark.parametrize("name", sorted(KINDS))
def test_no_token_is_unauthenticated_before_the_role_is_looked_at(
    service: AioService, echo: Echo, name: str
) -> None:
    refused = _refusal(service, name, ())
    assert refused.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.error_info().reason == "TOKEN_MISSING"
    assert echo.ran == []


def test_the_real_table_maps_every_method_to_known_roles() -> None:
    """The table the chain reads: every row names at least one of the two roles, and
    nothing else (a typo would refuse everyone, silently)."""
    assert access.METHOD_ROLES
    for method, roles in access.METHOD_ROLES.items():
        assert roles, method
        assert roles <= {DS, APPROVER}, method
