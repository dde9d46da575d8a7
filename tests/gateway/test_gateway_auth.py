"""Through Envoy, REST and gRPC: who gets in, who is refused, and how."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import httpx
import pytest
from mlplane.v1 import (
    model_registry_pb2,
    model_registry_pb2_grpc,
    query_service_pb2,
    query_service_pb2_grpc,
)

from services.common.errors import error_info_from_trailers
from tests.stack_runner import RunningStack
from tests.tokens import UNAUTHENTICATED_CASES


@pytest.fixture(scope="module")
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def gateway_channel(stack: RunningStack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.gateway_target) as channel:
        yield channel


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _grpc_list_assets(channel: grpc.Channel, token: str | None) -> grpc.RpcError:
    stub = query_service_pb2_grpc.QueryServiceStub(channel)
    md = (("authorization", f"Bearer {token}"),) if token else ()
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListAssets(query_service_pb2.ListAssetsRequest(), metadata=md, timeout=10)
    return caught.value


def test_healthz_needs_no_token(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200


def test_no_token_is_401(http: httpx.Client, gateway_channel: grpc.Channel) -> None:
    assert http.get("/api/v1/query/assets").status_code == 401
    assert http.get("/api/v1/models").status_code == 401
    error = _grpc_list_assets(gateway_channel, None)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("case", sorted(UNAUTHENTICATED_CASES))
def test_bad_tokens_are_401(
    stack: RunningStack, http: httpx.Client, gateway_channel: grpc.Channel, case: str
) -> None:
    token = UNAUTHENTICATED_CASES[case](stack.tokens)
    response = http.get("/api/v1/query/assets", headers=_auth(token))
    assert response.status_code == 401, response.text
    assert _grpc_list_assets(gateway_channel, token).code() == grpc.StatusCode.UNAUTHENTICATED


def _gateway_error(response: httpx.Response) -> tuple[int, str, str]:
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = json.loads(response.text)
    (info,) = body["details"]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["domain"] == "gateway.mlplane"
    return body["code"], info["reason"], body["message"]


def test_gateway_refusals_are_status_json_for_rest(stack: RunningStack, http: httpx.Client) -> None:
    code, reason, message = _gateway_error(http.get("/api/v1/models"))
    assert (code, reason) == (16, "TOKEN_MISSING")
    assert message.startswith("no token: send the header `Authorization: Bearer <token>`")
    assert "mlplane token --role data_scientist" in message
    code, reason, message = _gateway_error(http.get("/api/v1/models", headers=_auth("a.b.c")))
    assert (code, reason) == (16, "TOKEN_MALFORMED")
    assert "send the token alone after `Bearer `" in message
    pasted_twice = {"Authorization": f"Bearer Bearer {stack.tokens.valid()}"}
    assert _gateway_error(http.get("/api/v1/models", headers=pasted_twice))[1] == "TOKEN_MALFORMED"
    code, reason, message = _gateway_error(
        http.get("/api/v1/models", headers=_auth(stack.tokens.expired()))
    )
    assert (code, reason) == (16, "TOKEN_EXPIRED")
    assert message.startswith("the token has expired: mint one with `mlplane token")
    other_audience = _auth(stack.tokens.wrong_audience())
    code, reason, message = _gateway_error(http.get("/api/v1/models", headers=other_audience))
    assert (code, reason, message) == (
        16,
        "TOKEN_AUDIENCE",
        "the token is for another audience: mlplane accepts aud 'mlplane'",
    )
    scientist = _auth(stack.tokens.valid("data_scientist"))
    response = http.get("/api/v1/approvals", headers=scientist)
    assert response.status_code == 403
    assert _gateway_error(response) == (
        7,
        "ROLE_REQUIRED",
        "ListApprovals requires role model_approver",
    )
    info = response.json()["details"][0]
    assert info["metadata"] == {"method": "ListApprovals", "required": "model_approver"}


def test_gateway_refusals_over_grpc_carry_the_same_status(
    stack: RunningStack, gateway_channel: grpc.Channel
) -> None:
    error = _grpc_list_assets(gateway_channel, None)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details().startswith("no token: send the header")
    info = error_info_from_trailers(error.trailing_metadata())
    assert info is not None
    assert (info.reason, info.domain) == ("TOKEN_MISSING", "gateway.mlplane")
    expired = _grpc_list_assets(gateway_channel, stack.tokens.expired())
    info = error_info_from_trailers(expired.trailing_metadata())
    assert info is not None
    assert info.reason == "TOKEN_EXPIRED"
    stub = model_registry_pb2_grpc.ModelRegistryStub(gateway_channel)
    with pytest.raises(grpc.RpcError) as denied:
        stub.ListApprovals(
            model_registry_pb2.ListApprovalsRequest(),
            metadata=[("authorization", f"Bearer {stack.tokens.valid('data_scientist')}")],
            timeout=10,
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The same words as the service's own refusal (see test_service_auth).
    assert denied.value.details() == "ListApprovals requires role model_approver"
    info = error_info_from_trailers(denied.value.trailing_metadata())
    assert info is not None
    assert info.reason == "ROLE_REQUIRED"
    assert dict(info.metadata) == {"method": "ListApprovals", "required": "model_approver"}


def test_wrong_audience_is_refused(
    stack: RunningStack, http: httpx.Client, gateway_channel: grpc.Channel
) -> None:
    token = stack.tokens.wrong_audience()
    # Envoy's jwt_authn says 403 for another audience; the gateway maps it to 401.
    assert http.get("/api/v1/query/assets", headers=_auth(token)).status_code == 401
    assert _grpc_list_assets(gateway_channel, token).code() == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_role_is_403(
    stack: RunningStack, http: httpx.Client, gateway_channel: grpc.Channel
) -> None:
    token = stack.tokens.wrong_role()
    assert http.get("/api/v1/query/assets", headers=_auth(token)).status_code == 403
    assert _grpc_list_assets(gateway_channel, token).code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("role", "method", "path", "expected"),
    [
        # data scientists may upload, not decide
        ("data_scientist", "POST", "/api/v1/approvals/a1:approve", 403),
        ("data_scientist", "GET", "/api/v1/approvals", 403),
        # approvers may decide, not upload or submit
        ("model_approver", "POST", "/api/v1/models", 403),
        ("model_approver", "POST", "/api/v1/models/m1/approvals", 403),
    ],
)
def test_role_routes(
    stack: RunningStack, http: httpx.Client, role: str, method: str, path: str, expected: int
) -> None:
    response = http.request(method, path, headers=_auth(stack.tokens.valid(role)), json={})
    assert response.status_code == expected, response.text


def _assert_reached_service(response: httpx.Response) -> None:
    # The service itself answered (these ids are not UUIDs), with the
    # google.rpc.Status JSON that Envoy renders from the gRPC trailers.
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    reasons = [d.get("reason") for d in body.get("details", [])]
    assert reasons[0] == "INVALID_FIELD"


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("model_approver", "POST", "/api/v1/approvals/a1:approve"),
        ("data_scientist", "POST", "/api/v1/models/m1/approvals"),
        ("model_approver", "GET", "/api/v1/approvals/a1"),
    ],
)
def test_right_role_reaches_the_service_over_rest(
    stack: RunningStack, http: httpx.Client, role: str, method: str, path: str
) -> None:
    response = http.request(
        method,
        path,
        headers={**_auth(stack.tokens.valid(role)), "x-request-id": "rest-req-1"},
        content=b"{}" if method == "POST" else None,
    )
    _assert_reached_service(response)


@pytest.mark.parametrize("role", ["data_scientist", "model_approver"])
@pytest.mark.parametrize("path", ["/api/v1/query/assets", "/api/v1/models"])
def test_both_roles_may_list(stack: RunningStack, http: httpx.Client, role: str, path: str) -> None:
    response = http.get(path, headers=_auth(stack.tokens.valid(role)))
    assert response.status_code == 200, response.text


def test_right_role_reaches_the_service_over_grpc(
    stack: RunningStack, gateway_channel: grpc.Channel
) -> None:
    token = stack.tokens.valid("data_scientist")
    response = query_service_pb2_grpc.QueryServiceStub(gateway_channel).ListAssets(
        query_service_pb2.ListAssetsRequest(), metadata=(("authorization", f"Bearer {token}"),)
    )
    assert [a.asset_id for a in response.assets][:1] == ["pump-001"]

    models = model_registry_pb2_grpc.ModelRegistryStub(gateway_channel)
    md = (("authorization", f"Bearer {stack.tokens.valid('model_approver')}"),)
    models.ListApprovals(model_registry_pb2.ListApprovalsRequest(), metadata=md, timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        models.GetApproval(
            model_registry_pb2.GetApprovalRequest(approval_id="nope"), metadata=md, timeout=10
        )
    info = error_info_from_trailers(caught.value.trailing_metadata())
    assert info is not None
    assert info.reason == "INVALID_FIELD"


def test_scientist_cannot_call_approver_rpc_over_grpc(
    stack: RunningStack, gateway_channel: grpc.Channel
) -> None:
    models = model_registry_pb2_grpc.ModelRegistryStub(gateway_channel)
    md = (("authorization", f"Bearer {stack.tokens.valid('data_scientist')}"),)
    with pytest.raises(grpc.RpcError) as caught:
        models.ApproveModelVersion(
            model_registry_pb2.ApproveModelVersionRequest(approval_id="a1"), metadata=md, timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_unknown_query_parameter_is_400(stack: RunningStack, http: httpx.Client) -> None:
    response = http.get(
        "/api/v1/query/assets",
        params={"bogus": '"1'},
        headers=_auth(stack.tokens.valid("data_scientist")),
    )
    assert response.status_code == 400, response.text
    code, reason, message = _gateway_error(response)
    assert (code, reason) == (3, "INVALID_REQUEST")
    assert 'Could not find field "bogus"' in message


def test_enum_query_parameters_are_words_in_any_case(
    stack: RunningStack, http: httpx.Client
) -> None:
    bob = _auth(stack.tokens.valid("model_approver"))
    for state in ("OPEN", "open", "Rejected"):
        response = http.get("/api/v1/approvals", params={"state": state}, headers=bob)
        assert response.status_code == 200, response.text
    bad = http.get("/api/v1/approvals", params={"state": "SHIPPED"}, headers=bob)
    code, reason, message = _gateway_error(bad)
    assert (code, reason) == (3, "INVALID_REQUEST")
    assert message.startswith('state: invalid value "SHIPPED"')


def test_unknown_rest_path_is_404(stack: RunningStack, http: httpx.Client) -> None:
    response = http.get("/api/v1/nothing-here", headers=_auth(stack.tokens.valid()))
    assert response.status_code == 404
    assert _gateway_error(response)[:2] == (5, "UNKNOWN_PATH")


def test_rest_answers_carry_no_grpc_headers(stack: RunningStack, http: httpx.Client) -> None:
    alice = _auth(stack.tokens.valid("data_scientist"))
    answers = [
        http.get("/api/v1/query/assets", headers=alice),  # 200
        http.get("/api/v1/models/not-a-uuid", headers=alice),  # a service's 400
        http.get("/api/v1/models/00000000-0000-4000-8000-000000000000", headers=alice),  # 404
        http.get("/api/v1/approvals", headers=alice),  # the gateway's 403
    ]
    assert [a.status_code for a in answers] == [200, 400, 404, 403]
    for answer in answers:
        assert not [h for h in answer.headers if h.lower().startswith("grpc-")], answer.headers


def test_cors_preflight_is_answered_without_token(http: httpx.Client) -> None:
    response = http.options(
        "/api/v1/models",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_error_body_is_status_json(stack: RunningStack, http: httpx.Client) -> None:
    response = http.get("/api/v1/models/not-a-uuid", headers=_auth(stack.tokens.valid()))
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    body = json.loads(response.text)
    assert body["message"] == "modelId must be a valid UUID"
    info, bad_request = body["details"]
    assert (info["reason"], info["metadata"]) == (
        "INVALID_FIELD",
        {"field": "modelId", "rule": "string.uuid"},
    )
    assert bad_request["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert bad_request["fieldViolations"] == [
        {"field": "modelId", "description": "modelId must be a valid UUID", "reason": "string.uuid"}
    ]


def test_request_id_reaches_the_service_log(stack: RunningStack, http: httpx.Client) -> None:
    request_id = "trace-4f1c2a9e-request-id-test"
    http.get(
        "/api/v1/query/assets",
        headers={**_auth(stack.tokens.valid()), "x-request-id": request_id},
    )
    log_lines = (stack.state_dir / "logs" / "query.log").read_text().splitlines()
    entries = [json.loads(line) for line in log_lines if request_id in line]
    assert entries, "the service did not log the request id Envoy forwarded"
    assert entries[-1]["method"] == "/mlplane.v1.QueryService/ListAssets"
    assert entries[-1]["grpc_code"] == "OK"
    assert entries[-1]["subject"] == "alice"
