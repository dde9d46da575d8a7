"""Hostile requests at the gateway (issue #14): oversized tokens and headers, bodies declared
over the limit, out-of-range integers and a multi-megabyte approval comment.

Each is refused with a 4xx and the project's `google.rpc.Status` JSON (gRPC: the status and
the same reason in `grpc-status-details-bin`), never with a 429 (which tells the client to
retry) or a 500, and leaves nothing behind: no row, no object, no service call for what the
gateway refused. The session stack of tests/conftest.py (model limit 8 MiB).
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import jwt
import pytest
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import model_registry_pb2_grpc as mr_grpc

from gateway.limits import (
    MAX_JSON_BODY_BYTES,
    MAX_REQUEST_HEADERS_KB,
    MAX_TOKEN_BYTES,
    UPLOAD_FORM_ALLOWANCE,
)
from services.common.errors import error_info_from_trailers
from services.common.server import MAX_METADATA_BYTES
from tests.admin_sql import admin_rows
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack

MODEL_LIMIT = 8 * 1024 * 1024  # MLPLANE_MAX_MODEL_BYTES of the session stack
# An answer the gateway gives on the headers alone comes at once; this only bounds a hang.
ANSWER_DEADLINE = 10.0


@pytest.fixture(scope="module")
def http(stack: RunningStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def channel(stack: RunningStack) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(stack.gateway_target, options=options) as ch:
        yield ch


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _big_token(stack: RunningStack, size: int) -> str:
    """A validly signed token (the stack's dev key) of about `size` bytes."""
    tokens = stack.tokens
    claims = tokens._claims(roles=["data_scientist", "model_approver"], pad="x" * size)
    key = stack.settings.dev_private_key_file.read_bytes()
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": tokens.kid()})
    assert len(token) >= size
    return token


def _gateway_error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body: dict[str, Any] = json.loads(response.text)
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert info["reason"] == reason, body
    return body


def _store_files(stack: RunningStack) -> set[str]:
    root = stack.state_dir / "objects"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _service_log_mentions(stack: RunningStack, request_id: str) -> bool:
    logs = stack.state_dir / "logs"
    return any(request_id in (logs / f"{name}.log").read_text() for name in ("models", "query"))


# --------------------------------------------------------------------------- tokens, headers


def test_limits_leave_the_gateway_to_refuse_first() -> None:
    # Whatever the gateway forwards (its header limit, plus the few headers it adds) fits in
    # what the services' gRPC transport accepts; a token is far below both.
    assert MAX_METADATA_BYTES >= MAX_REQUEST_HEADERS_KB * 1024 + 16 * 1024
    assert MAX_TOKEN_BYTES < MAX_REQUEST_HEADERS_KB * 1024 // 2


@pytest.mark.parametrize("size", [MAX_TOKEN_BYTES + 1, 16 * 1024, 40 * 1024])
def test_oversized_valid_token_is_401_over_rest(
    stack: RunningStack, http: httpx.Client, size: int
) -> None:
    request_id = f"big-token-{uuid.uuid4()}"
    response = http.get(
        "/api/v1/models",
        headers={**_auth(_big_token(stack, size)), "x-request-id": request_id},
    )
    body = _gateway_error(response, 401, "TOKEN_TOO_LARGE")
    assert body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    assert body["details"][0]["domain"] == "gateway.mlplane"
    assert f"{MAX_TOKEN_BYTES:,} bytes" in body["message"]
    assert not _service_log_mentions(stack, request_id), "the token reached a service"


def test_oversized_valid_token_is_unauthenticated_over_grpc(
    stack: RunningStack, channel: grpc.Channel
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        mr_grpc.ModelRegistryStub(channel).ListModels(
            mr.ListModelsRequest(),
            metadata=[("authorization", f"Bearer {_big_token(stack, 16 * 1024)}")],
            timeout=ANSWER_DEADLINE,
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, caught.value
    info = error_info_from_trailers(caught.value.trailing_metadata())
    assert info is not None
    assert (info.reason, info.domain) == ("TOKEN_TOO_LARGE", "gateway.mlplane")


def test_oversized_token_upload_stores_nothing(stack: RunningStack, http: httpx.Client) -> None:
    name = f"big-token-{uuid.uuid4().hex[:8]}"
    files_before = _store_files(stack)
    response = http.post(
        "/api/v1/models",
        data={"name": name},
        files={"file": ("m.onnx", linear_model(4))},
        headers=_auth(_big_token(stack, 16 * 1024)),
    )
    _gateway_error(response, 401, "TOKEN_TOO_LARGE")
    assert admin_rows(stack, "SELECT 1 FROM models WHERE name = $1", name) == []
    assert _store_files(stack) == files_before


def test_headers_under_the_gateway_limit_reach_the_service(
    stack: RunningStack, http: httpx.Client, channel: grpc.Channel
) -> None:
    """40 KiB of headers: under the gateway's limit, so the service must take them too (it
    answered RESOURCE_EXHAUSTED, a 429, above gRPC's default 16 KiB)."""
    padding = "p" * (40 * 1024)
    token = stack.tokens.valid("data_scientist")
    response = http.get("/api/v1/models", headers={**_auth(token), "x-padding": padding})
    assert response.status_code == 200, response.text
    models = mr_grpc.ModelRegistryStub(channel).ListModels(
        mr.ListModelsRequest(),
        metadata=[("authorization", f"Bearer {token}"), ("x-padding", padding)],
        timeout=ANSWER_DEADLINE,
    )
    assert models is not None


def test_headers_over_the_gateway_limit_are_431(stack: RunningStack, http: httpx.Client) -> None:
    padding = "p" * (MAX_REQUEST_HEADERS_KB * 1024 + 1024)
    response = http.get(
        "/api/v1/models", headers={**_auth(stack.tokens.valid()), "x-padding": padding}
    )
    _gateway_error(response, 431, "HEADERS_TOO_LARGE")


# --------------------------------------------------------------------------- declared bodies


def _raw_request(stack: RunningStack, head: str) -> bytes:
    """Send request headers only (no body) and read what the gateway answers to them."""
    port = int(stack.info["gateway_port"])
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_DEADLINE) as sock:
        sock.sendall(head.encode())
        answer = b""
        deadline = time.monotonic() + ANSWER_DEADLINE
        while b"\r\n\r\n" not in answer or not _complete(answer):
            if time.monotonic() > deadline:
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            answer += data
        return answer


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return head.startswith(b"HTTP/1.1 1")  # an interim answer alone: wait for more


def _parse(answer: bytes) -> tuple[int, dict[str, Any], bytes]:
    assert answer, "no answer before the body was sent"
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else {}, head


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_declared_upload_over_the_limit_is_413_at_once(stack: RunningStack, expect: bool) -> None:
    files_before = _store_files(stack)
    models_before = admin_rows(stack, "SELECT count(*) FROM models")[0][0]
    declared = MODEL_LIMIT + UPLOAD_FORM_ALLOWANCE + 1
    head = (
        "POST /api/v1/models HTTP/1.1\r\n"
        "Host: gateway\r\n"
        f"Authorization: Bearer {stack.tokens.valid('data_scientist')}\r\n"
        "Content-Type: multipart/form-data; boundary=b0und4ry\r\n"
        f"Content-Length: {declared}\r\n" + ("Expect: 100-continue\r\n" if expect else "") + "\r\n"
    )
    answer = _raw_request(stack, head)
    assert not answer.startswith(b"HTTP/1.1 100"), answer[:200]
    status, body, _ = _parse(answer)
    assert status == 413, answer[:400]
    info = body["details"][0]
    assert (info["reason"], info["domain"]) == ("MODEL_TOO_LARGE", "gateway.mlplane")
    assert info["metadata"]["limitBytes"] == str(MODEL_LIMIT)
    assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert admin_rows(stack, "SELECT count(*) FROM models")[0][0] == models_before
    assert _store_files(stack) == files_before


def test_upload_without_token_is_refused_before_100_continue(stack: RunningStack) -> None:
    head = (
        "POST /api/v1/models HTTP/1.1\r\n"
        "Host: gateway\r\n"
        "Content-Type: multipart/form-data; boundary=b0und4ry\r\n"
        "Content-Length: 1000\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    answer = _raw_request(stack, head)
    assert not answer.startswith(b"HTTP/1.1 100"), answer[:200]
    status, body, _ = _parse(answer)
    assert status == 401, answer[:400]
    assert body["details"][0]["reason"] == "TOKEN_MISSING"


def test_upload_announcing_expect_100_continue_is_still_stored(
    stack: RunningStack, http: httpx.Client
) -> None:
    """The gateway forwards `Expect: 100-continue` now (proxy_100_continue); an accepted
    upload whose client sends the body without waiting for the 100 is stored as usual."""
    name = f"expect-{uuid.uuid4().hex[:8]}"
    boundary = "b0und4ry"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + linear_model(4)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = http.post(
        "/api/v1/models",
        content=body,
        headers={
            **_auth(stack.tokens.valid("data_scientist")),
            "content-type": f"multipart/form-data; boundary={boundary}",
            "expect": "100-continue",
        },
    )
    assert response.status_code == 201, response.text
    assert admin_rows(stack, "SELECT 1 FROM models WHERE name = $1", name) != []


def test_declared_json_body_over_the_limit_is_413_at_once(stack: RunningStack) -> None:
    head = (
        f"POST /api/v1/models/{uuid.uuid4()}/approvals HTTP/1.1\r\n"
        "Host: gateway\r\n"
        f"Authorization: Bearer {stack.tokens.valid('data_scientist')}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {MAX_JSON_BODY_BYTES + 1}\r\n"
        "Expect: 100-continue\r\n\r\n"
    )
    answer = _raw_request(stack, head)
    assert not answer.startswith(b"HTTP/1.1 100"), answer[:200]
    status, body, _ = _parse(answer)
    assert status == 413, answer[:400]
    assert body["details"][0]["reason"] == "REQUEST_TOO_LARGE"


def test_chunked_upload_over_the_limit_is_413_when_crossed(
    stack: RunningStack, http: httpx.Client
) -> None:
    """No Content-Length: refused when the file crosses the limit, nothing kept."""
    name = f"chunked-{uuid.uuid4().hex[:8]}"
    files_before = _store_files(stack)
    boundary = "b0und4ry"
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        chunk = b"\0" * (256 * 1024)
        # Up to twice the limit; the refusal normally ends the request long before.
        while sent < 2 * MODEL_LIMIT:
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    try:
        response = http.post(
            "/api/v1/models",
            content=body(),
            headers={
                **_auth(stack.tokens.valid("data_scientist")),
                "content-type": f"multipart/form-data; boundary={boundary}",
            },
        )
    except (httpx.WriteError, httpx.RemoteProtocolError):
        pytest.fail("the gateway closed the upload without an answer")
    # The registry (file over the limit) or the gateway (body over the limit and the form's
    # allowance), whichever sees it first: the same status and reason.
    assert response.status_code == 413, response.text
    info = response.json()["details"][0]
    assert info["reason"] == "MODEL_TOO_LARGE", response.text
    assert info["metadata"]["limitBytes"] == str(MODEL_LIMIT)
    assert admin_rows(stack, "SELECT 1 FROM models WHERE name = $1", name) == []
    assert _store_files(stack) == files_before


# --------------------------------------------------------------------------- integers


def _upload(stack: RunningStack, http: httpx.Client) -> dict[str, Any]:
    response = http.post(
        "/api/v1/models",
        data={"name": f"hostile-{uuid.uuid4().hex[:8]}"},
        files={"file": ("m.onnx", linear_model(4))},
        headers=_auth(stack.tokens.valid("data_scientist")),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _nothing_submitted(stack: RunningStack, model_id: str) -> None:
    model = uuid.UUID(model_id)
    assert admin_rows(stack, "SELECT 1 FROM approval_requests WHERE model_id = $1", model) == []
    statuses = admin_rows(stack, "SELECT status FROM model_versions WHERE model_id = $1", model)
    assert [row[0] for row in statuses] == ["PENDING_APPROVAL"]


@pytest.fixture(scope="module")
def version(stack: RunningStack, http: httpx.Client) -> dict[str, Any]:
    return _upload(stack, http)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2147483648", "INVALID_FIELD"),  # beyond int32: the contract's bound
        ("9223372036854775807", "INVALID_FIELD"),
        ("9223372036854775808", "INVALID_REQUEST"),  # beyond int64: the transcoder
        ("1e30", "INVALID_REQUEST"),
        ("-1", "INVALID_FIELD"),
        ('"seven"', "INVALID_REQUEST"),
    ],
)
def test_submit_version_out_of_range_is_400_over_rest(
    stack: RunningStack, http: httpx.Client, version: dict[str, Any], raw: str, reason: str
) -> None:
    response = http.post(
        f"/api/v1/models/{version['modelId']}/approvals",
        content=f'{{"version": {raw}}}'.encode(),
        headers={**_auth(stack.tokens.valid("data_scientist")), "content-type": "application/json"},
    )
    body = _gateway_error(response, 400, reason)
    assert body["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "version" in body["message"]
    _nothing_submitted(stack, version["modelId"])


def test_submit_version_out_of_range_is_invalid_argument_over_grpc(
    stack: RunningStack, channel: grpc.Channel, version: dict[str, Any]
) -> None:
    stub = mr_grpc.ModelRegistryStub(channel)
    md = stack.tokens.metadata("data_scientist")
    for value in (2**31, 2**63 - 1, -1):
        with pytest.raises(grpc.RpcError) as caught:
            stub.SubmitForApproval(
                mr.SubmitForApprovalRequest(model_id=version["modelId"], version=value),
                metadata=md,
                timeout=ANSWER_DEADLINE,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, value
        info = error_info_from_trailers(caught.value.trailing_metadata())
        assert info is not None
        assert info.reason == "INVALID_FIELD"
        assert info.metadata["field"] == "version"
    _nothing_submitted(stack, version["modelId"])


@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/approvals"])
@pytest.mark.parametrize(
    ("page_size", "status", "reason"),
    [
        ("-1", 400, "INVALID_FIELD"),
        ("2147483648", 400, "INVALID_REQUEST"),
        ("99999999999999999999", 400, "INVALID_REQUEST"),
        ("ten", 400, "INVALID_REQUEST"),
        ("2147483647", 200, None),  # larger than the page limit: treated as the limit
    ],
)
def test_page_size_out_of_range_over_rest(
    stack: RunningStack, http: httpx.Client, path: str, page_size: str, status: int, reason: str
) -> None:
    approver = _auth(stack.tokens.valid("model_approver", subject="bob"))
    response = http.get(path, params={"pageSize": page_size}, headers=approver)
    if reason is None:
        assert response.status_code == status, response.text
    else:
        _gateway_error(response, status, reason)


def test_negative_page_size_is_invalid_argument_over_grpc(
    stack: RunningStack, channel: grpc.Channel
) -> None:
    stub = mr_grpc.ModelRegistryStub(channel)
    md = stack.tokens.metadata("model_approver", subject="bob")
    for call, request in (
        (stub.ListModels, mr.ListModelsRequest(page_size=-1)),
        (stub.ListApprovals, mr.ListApprovalsRequest(page_size=-(2**31))),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=md, timeout=ANSWER_DEADLINE)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info_from_trailers(caught.value.trailing_metadata())
        assert info is not None
        assert info.reason == "INVALID_FIELD"
    assert stub.ListModels(mr.ListModelsRequest(page_size=2**31 - 1), metadata=md, timeout=10)


# --------------------------------------------------------------------------- huge comment


@pytest.mark.parametrize(
    ("size", "status", "reason"),
    [
        (4097, 400, "INVALID_FIELD"),  # one over the contract's bound
        (512 * 1024, 400, "INVALID_FIELD"),
        (3 * 1024 * 1024, 413, "REQUEST_TOO_LARGE"),  # the multi-megabyte comment
        (9 * 1024 * 1024, 413, "REQUEST_TOO_LARGE"),  # over the services' message limit
    ],
)
def test_huge_comment_is_refused_and_the_queue_still_answers(
    stack: RunningStack,
    http: httpx.Client,
    version: dict[str, Any],
    size: int,
    status: int,
    reason: str,
) -> None:
    scientist = _auth(stack.tokens.valid("data_scientist"))
    response = http.post(
        f"/api/v1/models/{version['modelId']}/approvals",
        json={"comment": "c" * size},
        headers=scientist,
    )
    _gateway_error(response, status, reason)
    _nothing_submitted(stack, version["modelId"])
    approver = _auth(stack.tokens.valid("model_approver", subject="bob"))
    queue = http.get("/api/v1/approvals", params={"state": "OPEN"}, headers=approver)
    assert queue.status_code == 200, queue.text
    model = http.get(f"/api/v1/models/{version['modelId']}", headers=approver)
    assert model.status_code == 200, model.text


def test_huge_comment_over_grpc_is_refused(
    stack: RunningStack, channel: grpc.Channel, version: dict[str, Any]
) -> None:
    stub = mr_grpc.ModelRegistryStub(channel)
    md = stack.tokens.metadata("data_scientist")
    with pytest.raises(grpc.RpcError) as caught:
        stub.SubmitForApproval(
            mr.SubmitForApprovalRequest(model_id=version["modelId"], comment="c" * 600_000),
            metadata=md,
            timeout=ANSWER_DEADLINE,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_from_trailers(caught.value.trailing_metadata())
    assert info is not None
    assert info.reason == "INVALID_FIELD"
    _nothing_submitted(stack, version["modelId"])
