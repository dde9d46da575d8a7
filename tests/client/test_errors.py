"""Errors that say what to do next: the hint for each usual way to get stuck, keyed
on the `ErrorInfo` reason and, where the gateway sends none (Envoy's own gRPC
refusals today), on the status and message; every detail of the status read.

Constructed errors stand for what the real stack cannot produce on demand (the
gateway's ErrorInfo-carrying refusals of tomorrow, Envoy with a service down);
the stack tests below hold the SDK to account against today's gateway and
services, through Envoy and straight to the service."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from mlplane_client import (
    Client,
    FieldViolation,
    InvalidArgument,
    MlplaneError,
    NotFound,
    PermissionDenied,
    RetryPolicy,
    Unauthenticated,
    Unavailable,
)
from mlplane_client._hints import CLI, SDK, Cause, diagnose
from mlplane_client.errors import from_rpc_error
from tests.client.conftest import alice_token
from tests.stack_runner import RunningStack

URL = "http://localhost:8080"
MISSING_SDK = (
    "pass token= or set MLPLANE_TOKEN "
    "(a dev stack mints one with `mlplane token --role data_scientist`)"
)
MISSING_CLI = (
    "pass --token or set MLPLANE_TOKEN "
    "(a dev stack mints one with `mlplane token --role data_scientist`)"
)
EXPIRED_SDK = (
    "mint a new one (a dev stack: `mlplane token --role data_scientist`) "
    "and pass it as token= or MLPLANE_TOKEN"
)
MALFORMED_SDK = (
    "token= / MLPLANE_TOKEN must be the JWT alone (header.payload.signature), "
    "as `mlplane token` prints it"
)


class FakeCall(grpc.RpcError, grpc.Call):
    """A failed call as grpc raises it: status, message and trailers."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        trailers: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        self._code, self._message, self._trailers = code, message, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    # grpc's stubs disagree between RpcError and Call; Call's is what grpc returns.
    def trailing_metadata(self) -> tuple[tuple[str, str | bytes], ...]:  # type: ignore[override]
        return self._trailers

    def initial_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return 0.0

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def _packed(*details: Any) -> list[any_pb2.Any]:
    out = []
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        out.append(packed)
    return out


def _status_trailer(code: grpc.StatusCode, message: str, *details: Any) -> tuple[str, bytes]:
    status = status_pb2.Status(code=code.value[0], message=message, details=_packed(*details))
    return ("grpc-status-details-bin", status.SerializeToString())


def _refusal(
    code: grpc.StatusCode,
    message: str,
    reason: str = "",
    metadata: Mapping[str, str] | None = None,
    *,
    domain: str = "gateway.mlplane",
    token_sent: bool | None = True,
) -> MlplaneError:
    """The error the SDK raises for a refusal, with an ErrorInfo when `reason` is set."""
    trailers: tuple[tuple[str, str | bytes], ...] = ()
    if reason:
        info = error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata)
        trailers = (_status_trailer(code, message, info),)
    return from_rpc_error(FakeCall(code, message, trailers), url=URL, token_sent=token_sent)


UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("code", "message", "reason", "cause"),
    [
        # Envoy's jwt_authn over gRPC today: no ErrorInfo, its text only.
        (UNAUTHENTICATED, "Jwt is missing", "", Cause.TOKEN_MISSING),
        (  # the services' words, should a proxy drop the details
            UNAUTHENTICATED,
            "no token: send the header `Authorization: Bearer <token>`; mint one with …",
            "",
            Cause.TOKEN_MISSING,
        ),
        (UNAUTHENTICATED, "Jwt is expired", "", Cause.TOKEN_EXPIRED),
        (UNAUTHENTICATED, "Jwt header is an invalid JSON", "", Cause.TOKEN_MALFORMED),
        (
            UNAUTHENTICATED,
            "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
            "",
            Cause.TOKEN_MALFORMED,
        ),
        (UNAUTHENTICATED, "Jwt verification fails", "", Cause.TOKEN_UNTRUSTED),
        (UNAUTHENTICATED, "Jwt issuer is not configured", "", Cause.TOKEN_UNTRUSTED),
        (UNAUTHENTICATED, "Audiences in Jwt are not allowed", "", Cause.TOKEN_UNTRUSTED),
        (UNAUTHENTICATED, "Jwt not yet valid", "", Cause.TOKEN_NOT_YET_VALID),
        (PERMISSION_DENIED, "RBAC: access denied", "", Cause.ROLE_REQUIRED),
        # The gateway with an ErrorInfo (domain gateway.mlplane), and the services' reasons.
        (UNAUTHENTICATED, "Jwt is missing", "TOKEN_MISSING", Cause.TOKEN_MISSING),
        (UNAUTHENTICATED, "Jwt is expired", "TOKEN_EXPIRED", Cause.TOKEN_EXPIRED),
        (UNAUTHENTICATED, "whatever it says", "TOKEN_MALFORMED", Cause.TOKEN_MALFORMED),
        (UNAUTHENTICATED, "Jwt verification fails", "TOKEN_INVALID", Cause.TOKEN_UNTRUSTED),
        (UNAUTHENTICATED, "token signature is invalid", "TOKEN_SIGNATURE", Cause.TOKEN_UNTRUSTED),
        (UNAUTHENTICATED, "token lacks the sub claim", "TOKEN_CLAIM_MISSING", Cause.TOKEN_REFUSED),
        (PERMISSION_DENIED, "RBAC: access denied", "ROLE_REQUIRED", Cause.ROLE_REQUIRED),
        # Connection failures, as gRPC core and Envoy word them.
        (
            UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:8080: "
            "Failed to connect to remote host: Connection refused",
            "",
            Cause.UNREACHABLE,
        ),
        (
            UNAVAILABLE,
            "errors resolving no-such-host.invalid:8080: [field:hostname lookup error: "
            "Domain name not found]",
            "",
            Cause.UNREACHABLE,
        ),
        (
            UNAVAILABLE,
            "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:8080: "
            "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: WRONG_VERSION_NUMBER",
            "",
            Cause.TLS_FAILED,
        ),
        (
            UNAVAILABLE,
            "upstream connect error or disconnect/reset before headers. reset reason: "
            "remote connection failure, transport failure reason: delayed connect error: 111",
            "",
            Cause.SERVICE_DOWN,
        ),
        (UNAVAILABLE, "no healthy upstream", "", Cause.SERVICE_DOWN),
        (
            UNAVAILABLE,
            "the service behind the gateway is not available (stopped, starting or overloaded)",
            "SERVICE_UNAVAILABLE",
            Cause.SERVICE_DOWN,
        ),
        (
            grpc.StatusCode.UNIMPLEMENTED,
            "Received http2 header with status: 404",
            "",
            Cause.WRONG_TARGET,
        ),
        (grpc.StatusCode.UNIMPLEMENTED, "Method not found!", "", Cause.WRONG_TARGET),
    ],
)
def test_the_cause_is_named_with_or_without_an_error_info(
    code: grpc.StatusCode, message: str, reason: str, cause: Cause
) -> None:
    diagnosis = diagnose(code, reason, message, {}, url=URL, token_sent=True)
    assert diagnosis is not None
    assert diagnosis.cause is cause
    assert _refusal(code, message, reason).hint


@pytest.mark.parametrize(
    ("code", "message", "reason"),
    [
        (grpc.StatusCode.NOT_FOUND, "model m does not exist", "MODEL_NOT_FOUND"),
        (PERMISSION_DENIED, "asset turbine-001 is not granted", "ASSET_NOT_GRANTED"),
        (PERMISSION_DENIED, "you uploaded this version", "SEPARATION_OF_DUTIES"),
        (UNAVAILABLE, "the database is unavailable", "DATABASE_UNAVAILABLE"),
        (grpc.StatusCode.INVALID_ARGUMENT, "modelId must be a valid UUID", "INVALID_FIELD"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", ""),
    ],
)
def test_no_hint_where_the_message_says_enough(
    code: grpc.StatusCode, message: str, reason: str
) -> None:
    error = _refusal(code, message, reason, domain="mlplane")
    assert error.hint == ""
    assert str(error) == error.headline
    assert "\n" not in str(error)


def test_no_token_says_how_to_pass_one_in_the_sdk_and_the_cli() -> None:
    for error in (
        _refusal(UNAUTHENTICATED, "Jwt is missing"),  # Envoy today
        _refusal(UNAUTHENTICATED, "Jwt is missing", "TOKEN_MISSING"),  # with an ErrorInfo
        _refusal(UNAUTHENTICATED, "anything at all", token_sent=False),  # no token was sent
    ):
        assert isinstance(error, Unauthenticated)
        assert error.hint == error.hint_for(SDK) == MISSING_SDK
        assert error.hint_for(CLI) == MISSING_CLI
        assert str(error) == f"{error.headline}\nhint: {MISSING_SDK}"


def test_token_hints_say_what_to_do() -> None:
    assert _refusal(UNAUTHENTICATED, "Jwt is expired").hint == EXPIRED_SDK
    assert _refusal(UNAUTHENTICATED, "token has expired", "TOKEN_EXPIRED").hint == EXPIRED_SDK
    assert _refusal(UNAUTHENTICATED, "Jwt header is an invalid JSON").hint == MALFORMED_SDK
    assert _refusal(UNAUTHENTICATED, "Jwt verification fails").hint == (
        f"{URL} does not trust this token (another stack's key or issuer, or another audience): "
        "mint one for it (a dev stack: `mlplane token --role data_scientist` where it runs)"
    )


def test_a_role_refusal_keeps_the_message_and_names_the_role() -> None:
    tomorrow = _refusal(
        PERMISSION_DENIED,
        "UploadModel requires role data_scientist",
        "ROLE_REQUIRED",
        {"required": "data_scientist", "method": "UploadModel"},
    )
    assert isinstance(tomorrow, PermissionDenied)
    assert tomorrow.domain == "gateway.mlplane"
    assert str(tomorrow) == (
        "PERMISSION_DENIED ROLE_REQUIRED: UploadModel requires role data_scientist\n"
        "hint: this needs a token with role data_scientist "
        "(a dev stack mints one with `mlplane token --role data_scientist`)"
    )
    either = _refusal(
        PERMISSION_DENIED,
        "SubmitForApproval requires role data_scientist or model_approver",
        "ROLE_REQUIRED",
        {"required": "data_scientist,model_approver"},
    )
    assert "role data_scientist or model_approver (" in either.hint
    # A reason without metadata: the roles come from the message.
    worded = _refusal(PERMISSION_DENIED, "ListApprovals requires role model_approver")
    assert "`mlplane token --role model_approver`" in worded.hint
    # Envoy's RBAC today says nothing about the role: the hint says which does what.
    today = _refusal(PERMISSION_DENIED, "RBAC: access denied")
    assert today.headline == "PERMISSION_DENIED: RBAC: access denied"
    assert today.hint == (
        "your token lacks the role this call needs (data_scientist: history, upload, submit; "
        "model_approver: review queue, decisions); "
        "a dev stack mints one with `mlplane token --role ROLE`"
    )


def test_connection_failures_name_the_url_and_make_up() -> None:
    refused = _refusal(
        UNAVAILABLE, "failed to connect to all addresses; last error: Connection refused"
    )
    assert isinstance(refused, Unavailable)
    assert refused.hint == (
        f"nothing answers at {URL}: start the stack (`make up`) "
        "or point url= / MLPLANE_URL at the gateway"
    )
    assert refused.hint_for(CLI) == (
        f"nothing answers at {URL}: start the stack (`make up`) "
        "or point --url / MLPLANE_URL at the gateway"
    )
    down = _refusal(UNAVAILABLE, "no healthy upstream")
    assert down.hint == (
        f"the gateway at {URL} answers but the service behind it does not: "
        "is the whole stack running (`make up`)?"
    )


def test_a_stream_reset_mid_answer_is_unavailable_but_a_services_internal_is_not() -> None:
    # What grpc raised in test_replicas when Envoy reset the stream of an upload whose
    # replica was SIGKILLed after its answer had begun.
    cut = _refusal(
        grpc.StatusCode.INTERNAL,
        "Stream removed (RST_STREAM (Received RST_STREAM with error code 2))",
    )
    assert isinstance(cut, Unavailable)
    assert (cut.code, cut.reason) == (grpc.StatusCode.INTERNAL, "STREAM_RESET")
    assert cut.hint is not None
    assert "may have taken effect" in cut.hint
    assert str(cut).startswith("INTERNAL STREAM_RESET: Stream removed")
    # A service's own INTERNAL carries its status: a server error, not a transport's.
    server = _refusal(
        grpc.StatusCode.INTERNAL,
        "internal error; quote request id r-1 when reporting it (RST_STREAM in a message)",
        "INTERNAL",
        domain="mlplane",
    )
    assert type(server) is MlplaneError
    assert server.reason == "INTERNAL"
    # Other codes keep their class whatever the words.
    assert type(_refusal(grpc.StatusCode.CANCELLED, "Received RST_STREAM")) is MlplaneError


def test_every_detail_of_the_status_is_read() -> None:
    code = grpc.StatusCode.INVALID_ARGUMENT
    message = "metadata.name must be lower-case letters …; trainingExportIds[0] must be a UUID"
    info = error_details_pb2.ErrorInfo(
        reason="INVALID_FIELD", domain="mlplane", metadata={"field": "metadata.name"}
    )
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field="metadata.name", description="must be lower-case letters …"
            ),
            error_details_pb2.BadRequest.FieldViolation(
                field="trainingExportIds[0]", description="must be a valid UUID"
            ),
        ]
    )
    help_link = error_details_pb2.Help(
        links=[error_details_pb2.Help.Link(description="naming", url="https://example/naming")]
    )
    unknown = Duration(seconds=1)  # a detail type this SDK does not unpack
    # The Help before the ErrorInfo: order does not matter, nothing is skipped.
    trailer = _status_trailer(code, message, help_link, info, bad, unknown)
    error = from_rpc_error(
        FakeCall(code, message, (trailer, ("x-request-id", "r-1"))), request_id="mine"
    )
    assert isinstance(error, InvalidArgument)
    assert (error.reason, error.domain, error.metadata) == (
        "INVALID_FIELD",
        "mlplane",
        {"field": "metadata.name"},
    )
    assert error.field_violations == [
        ("metadata.name", "must be lower-case letters …"),
        ("trainingExportIds[0]", "must be a valid UUID"),
    ]
    assert error.field_violations[1].field == "trainingExportIds[0]"
    assert isinstance(error.field_violations[0], FieldViolation)
    assert [type(d).__name__ for d in error.details] == ["Help", "ErrorInfo", "BadRequest", "Any"]
    assert error.details[0] == help_link
    assert error.request_id == "r-1"  # the server's echo wins


def test_a_status_for_another_code_is_not_trusted_and_a_mangled_one_is_ignored() -> None:
    info = error_details_pb2.ErrorInfo(reason="TOKEN_EXPIRED")
    rewritten = FakeCall(
        PERMISSION_DENIED, "denied", (_status_trailer(UNAUTHENTICATED, "denied", info),)
    )
    assert from_rpc_error(rewritten).reason == ""
    # The gateway's message may differ from its status's: the reason still counts.
    reworded = FakeCall(
        UNAUTHENTICATED, "Jwt is expired", (_status_trailer(UNAUTHENTICATED, "expired", info),)
    )
    assert from_rpc_error(reworded).reason == "TOKEN_EXPIRED"
    mangled = FakeCall(UNAUTHENTICATED, "x", (("grpc-status-details-bin", b"\xff\x00garbage"),))
    error = from_rpc_error(mangled)
    assert (error.reason, error.details, error.field_violations) == ("", (), [])


# --- against the real stack --------------------------------------------------------------------
@pytest.fixture(params=["gateway", "service"])
def query_target(request: pytest.FixtureRequest, stack: RunningStack) -> str:
    """The QueryService through Envoy, and straight to it."""
    return stack.gateway_target if request.param == "gateway" else stack.service_target("query")


def _refused(target: str, token: str | None) -> MlplaneError:
    with Client(target, token=token) as client, pytest.raises(MlplaneError) as caught:
        client.list_assets()
    return caught.value


def test_stack_no_token(query_target: str) -> None:
    error = _refused(query_target, None)
    assert isinstance(error, Unauthenticated)
    assert error.hint == MISSING_SDK
    assert str(error).endswith(f"\nhint: {MISSING_SDK}")


def test_stack_expired_token(stack: RunningStack, query_target: str) -> None:
    error = _refused(query_target, stack.tokens.expired())
    assert isinstance(error, Unauthenticated)
    assert "expired" in error.message
    assert error.hint == EXPIRED_SDK


def test_stack_a_token_that_is_no_jwt(query_target: str) -> None:
    assert _refused(query_target, "not-a-jwt").hint == MALFORMED_SDK


def test_stack_a_token_of_another_stack(stack: RunningStack, query_target: str) -> None:
    error = _refused(query_target, stack.tokens.other_key())
    assert error.hint.startswith(f"http://{query_target} does not trust this token")


def test_stack_the_scheme_pasted_into_the_token_is_dropped(
    stack: RunningStack, query_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = alice_token(stack)
    for pasted in (f"Bearer {token}", f"bearer {token}\n", f"  BEARER\t{token}  "):
        with Client(query_target, token=pasted) as client:
            assert client.list_assets()[0].asset_id == "pump-001"
    monkeypatch.setenv("MLPLANE_URL", query_target)
    monkeypatch.setenv("MLPLANE_TOKEN", f"Bearer {token}\n")
    with Client.from_env() as client:
        assert client.list_assets()[0].asset_id == "pump-001"


def test_stack_the_wrong_role_shows_the_servers_message(
    stack: RunningStack, alice: Client, models_direct: Client
) -> None:
    # Straight to the service: its own words, its ErrorInfo, and the role to get.
    with pytest.raises(PermissionDenied) as direct:
        models_direct.list_approvals()
    assert direct.value.reason == "ROLE_REQUIRED"
    assert direct.value.metadata["required"] == "model_approver"
    assert str(direct.value) == (
        "PERMISSION_DENIED ROLE_REQUIRED: ListApprovals requires role model_approver\n"
        "hint: this needs a token with role model_approver "
        "(a dev stack mints one with `mlplane token --role model_approver`)"
    )
    # Through the gateway: Envoy's RBAC text today, the same words with an ErrorInfo soon.
    with pytest.raises(PermissionDenied) as gateway:
        alice.list_approvals()
    if gateway.value.reason:
        assert gateway.value.reason == "ROLE_REQUIRED"
        assert "requires role model_approver" in gateway.value.message
        assert "`mlplane token --role model_approver`" in gateway.value.hint
    else:
        assert gateway.value.message == "RBAC: access denied"
        assert gateway.value.hint.startswith("your token lacks the role this call needs")


def test_stack_field_violations_name_the_fields(alice: Client, models_direct: Client) -> None:
    for client in (alice, models_direct):
        with pytest.raises(InvalidArgument) as caught:
            client.get_model("not-a-uuid")
        assert [f for f, _ in caught.value.field_violations] == ["modelId"]
        assert caught.value.hint == ""


def test_stack_one_services_port_is_not_the_gateway(stack: RunningStack) -> None:
    with Client(stack.service_target("query"), token=alice_token(stack)) as client:
        with pytest.raises(MlplaneError) as caught:
            client.list_models()  # a ModelRegistry call at the QueryService's port
    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.hint.startswith(
        f"http://{stack.service_target('query')} is not the mlplane gateway"
    )


@pytest.fixture
def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"  # released: nothing listens there


def test_nothing_listening_names_the_url_that_was_tried(
    dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_URL", dead_url)
    monkeypatch.setenv("MLPLANE_TOKEN", "x.y.z")
    with Client.from_env(retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(Unavailable) as caught:
            client.get_model("00000000-0000-4000-8000-000000000000")
    assert str(caught.value).splitlines() == [
        caught.value.headline,
        f"hint: nothing answers at http://{dead_url}: start the stack (`make up`) "
        "or point url= / MLPLANE_URL at the gateway",
    ]
    with Client("http://no-such-host.invalid:8080", retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(Unavailable) as unresolved:
            client.list_assets()
    assert unresolved.value.hint.startswith(
        "nothing answers at http://no-such-host.invalid:8080: start the stack"
    )


def test_a_hint_shows_in_the_traceback(dead_url: str) -> None:
    """What a notebook prints: the exception's last line is the hint."""
    import traceback

    with Client(dead_url, retry=RetryPolicy(max_attempts=1)) as client:
        try:
            client.list_assets()
        except NotFound:  # pragma: no cover
            pytest.fail("wrong class")
        except Unavailable as error:
            text = "".join(traceback.format_exception_only(error))
    assert text.startswith("mlplane_client.errors.Unavailable: UNAVAILABLE: failed to connect")
    assert text.splitlines()[-1].startswith("hint: nothing answers at")
