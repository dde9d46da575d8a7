"""The security matrix: every RPC of both services, through Envoy REST, through Envoy
gRPC and straight to the service, against every kind of bad caller and bad input.

The RPC list comes from the committed descriptor set, so a new RPC is a new row that
fails until it has a sample request (tests/security/samples.py). Every case also checks
that the registry tables and the object store did not change: denied calls add nothing
(not even audit rows: the gates refuse before the servicers, and another tenant's
resource is a NOT_FOUND, which the approval workflow does not audit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import json_format
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import query_service_pb2 as qs

from services.common.access import METHOD_ROLES
from services.common.settings import ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER
from tests.security.harness import (
    DIRECT_GRPC,
    GATEWAY_GRPC,
    PATHS,
    REST,
    Answer,
    Caller,
    Sample,
    StateWatch,
    all_rpcs,
    grpc_path,
)
from tests.security.samples import (
    CREATING,
    LINKED,
    LISTING,
    ONNX,
    SAMPLES,
    STRING_FIELDS,
    WRITING,
    Targets,
    fresh_name,
)
from tests.stack_runner import RunningStack
from tests.tokens import Tokens

RPCS = all_rpcs()
DEMO, OTHER = "demo", "other"
# The caller of the matrix: never the uploader or submitter of the targets, so an
# approval it could reach it could also decide.
MALLORY = "mallory"


def allowed_role(rpc: str) -> str:
    roles = METHOD_ROLES.get(grpc_path(rpc), frozenset())
    return ROLE_DATA_SCIENTIST if ROLE_DATA_SCIENTIST in roles or not roles else ROLE_MODEL_APPROVER


def wrong_role(rpc: str) -> str:
    roles = METHOD_ROLES.get(grpc_path(rpc), frozenset())
    for role in (ROLE_MODEL_APPROVER, ROLE_DATA_SCIENTIST):
        if role not in roles:
            return role
    return "plant_operator"


TokenFactory = Callable[[Tokens, str], str | None]


@dataclass(frozen=True)
class TokenCase:
    make: TokenFactory
    status: int  # what every path answers
    # The ErrorInfo reason every path gives (the gateway's and the services' words agree);
    # a mapping when the gateway's check differs from the service's.
    reason: str | dict[str, str]


TOKEN_CASES: dict[str, TokenCase] = {
    "no-token": TokenCase(lambda t, r: None, 401, "TOKEN_MISSING"),
    "expired": TokenCase(
        lambda t, r: t.valid(r, subject=MALLORY, ttl_seconds=-3600), 401, "TOKEN_EXPIRED"
    ),
    "not-yet-valid": TokenCase(lambda t, r: t.not_yet_valid(r), 401, "TOKEN_NOT_YET_VALID"),
    "wrong-issuer": TokenCase(
        lambda t, r: t.valid(r, subject=MALLORY, issuer="https://evil.invalid/"),
        401,
        "TOKEN_ISSUER",
    ),
    # Envoy's jwt_authn says 403 for this; the gateway maps it to 401 like the services.
    "wrong-audience": TokenCase(
        lambda t, r: t.valid(r, subject=MALLORY, audience="someone-else"), 401, "TOKEN_AUDIENCE"
    ),
    "bad-signature": TokenCase(lambda t, r: t.other_key(), 401, "TOKEN_SIGNATURE"),
    "edited-claims": TokenCase(lambda t, r: t.edited_claims(), 401, "TOKEN_SIGNATURE"),
    # Envoy finds no key for these algorithms; a service names the algorithm it refuses.
    "alg-none": TokenCase(
        lambda t, r: t.alg_none(),
        401,
        {
            REST: "TOKEN_MALFORMED",
            GATEWAY_GRPC: "TOKEN_MALFORMED",
            DIRECT_GRPC: "TOKEN_ALGORITHM_REJECTED",
        },
    ),
    "hs256-public-key": TokenCase(
        lambda t, r: t.hs256_with_public_key(),
        401,
        {
            REST: "TOKEN_KEY_UNKNOWN",
            GATEWAY_GRPC: "TOKEN_KEY_UNKNOWN",
            DIRECT_GRPC: "TOKEN_ALGORITHM_REJECTED",
        },
    ),
    # The gateway has no tenant rule; the service refuses the token.
    "missing-tenant": TokenCase(
        lambda t, r: t.missing_claim("tenant", r), 401, "TOKEN_CLAIM_MISSING"
    ),
    # RBAC refuses a verified token without roles; the gateway maps that to 401 too.
    "missing-roles": TokenCase(
        lambda t, r: t.missing_claim("roles", r), 401, "TOKEN_CLAIM_MISSING"
    ),
    "wrong-role": TokenCase(lambda t, r: t.valid(r, subject=MALLORY), 403, "ROLE_REQUIRED"),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def caller(stack: RunningStack) -> Iterator[Caller]:
    client = Caller(stack)
    yield client
    client.close()


@pytest.fixture(scope="module")
def watch(stack: RunningStack) -> Iterator[StateWatch]:
    state = StateWatch(stack)
    yield state
    state.close()


def _ok(answer: Answer, what: str) -> str:
    assert answer.status == 200, f"{what}: {answer}"
    return answer.text


def _direct(caller: Caller, rpc: str, token: str, sample: Sample) -> Answer:
    return caller.call(DIRECT_GRPC, rpc, sample, token)


def _upload(caller: Caller, token: str, name: str) -> mr.ModelVersion:
    answer = caller.grpc(
        DIRECT_GRPC,
        "ModelRegistry/UploadModel",
        [
            mr.UploadModelRequest(metadata=mr.UploadModelMetadata(name=name)),
            mr.UploadModelRequest(chunk=ONNX),
        ],
        [("authorization", f"Bearer {token}")],
    )
    return json_format.Parse(_ok(answer, "upload"), mr.ModelVersion())


def _submit(caller: Caller, token: str, model_id: str) -> mr.Approval:
    answer = caller.grpc(
        DIRECT_GRPC,
        "ModelRegistry/SubmitForApproval",
        [mr.SubmitForApprovalRequest(model_id=model_id, comment="matrix target")],
        [("authorization", f"Bearer {token}")],
    )
    return json_format.Parse(_ok(answer, "submit"), mr.Approval())


@pytest.fixture(scope="module")
def targets(stack: RunningStack, caller: Caller) -> Targets:
    """Two submitted models (two OPEN approvals, so the queue pages), one pending model,
    one export, and a real page token of tenant demo for every listing."""
    tokens = stack.tokens
    alice = tokens.valid(ROLE_DATA_SCIENTIST, subject="alice-matrix")
    approver = tokens.valid(ROLE_MODEL_APPROVER, subject="bob-matrix")
    submitted = _upload(caller, alice, fresh_name())
    approval = _submit(caller, alice, submitted.model_id)
    _submit(caller, alice, _upload(caller, alice, fresh_name()).model_id)
    pending = _upload(caller, alice, fresh_name())
    export = caller.grpc(
        DIRECT_GRPC,
        "QueryService/ExportHistory",
        SAMPLES["QueryService/ExportHistory"](
            Targets("", "", "", "", "", ""), {"asset_id": "pump-001"}
        ).messages,
        [("authorization", f"Bearer {alice}")],
    )
    export_id = _ok(export, "export").split('"exportId": "')[1].split('"')[0]

    def page_token(rpc: str, request: object, token: str) -> str:
        answer = caller.grpc(DIRECT_GRPC, rpc, [request], [("authorization", f"Bearer {token}")])  # type: ignore[list-item]
        value = _ok(answer, rpc).split('"nextPageToken": "')[1].split('"')[0]
        assert value, f"{rpc} gave no next page"
        return value

    return Targets(
        model_id=submitted.model_id,
        model_name=submitted.name,
        approval_id=approval.approval_id,
        pending_model_id=pending.model_id,
        pending_model_name=pending.name,
        export_id=export_id,
        page_tokens={
            "ListModels": page_token(
                "ModelRegistry/ListModels", mr.ListModelsRequest(page_size=1), alice
            ),
            "ListApprovals": page_token(
                "ModelRegistry/ListApprovals",
                mr.ListApprovalsRequest(page_size=1, state="OPEN"),
                approver,
            ),
            "ListAssets": page_token(
                "QueryService/ListAssets", qs.ListAssetsRequest(page_size=1), alice
            ),
        },
    )


def _assert_no_leak(answer: Answer, targets: Targets, sample: Sample, what: str) -> None:
    """None of demo's identifiers in the answer, except those the caller sent (an error
    may name the id it did not find)."""
    sent = f"{sample.messages} {sample.rest}"
    for identifier in targets.identifiers():
        if identifier not in sent:
            assert identifier not in answer.text, f"{what} leaked {identifier}: {answer}"


_TOKENS: dict[tuple[str, str], str | None] = {}


def _call(
    watch: StateWatch, caller: Caller, path: str, rpc: str, sample: Sample, token: str | None
) -> tuple[Answer, list[str]]:
    """The call, and for an RPC that writes when it succeeds, what it changed."""
    if rpc in WRITING:
        return watch.call_unchanged(lambda: caller.call(path, rpc, sample, token))
    return caller.call(path, rpc, sample, token), []


# --------------------------------------------------------------------------- coverage


def test_every_rpc_has_a_sample_and_string_fields() -> None:
    assert RPCS, "no RPCs found in the descriptor set"
    missing = [rpc for rpc in RPCS if rpc not in SAMPLES or rpc not in STRING_FIELDS]
    assert not missing, f"add a sample request and its string fields to samples.py: {missing}"
    assert set(SAMPLES) == set(RPCS), (
        f"samples for RPCs that no longer exist: {set(SAMPLES) - set(RPCS)}"
    )


# --------------------------------------------------------------------------- identity


@pytest.mark.parametrize("case", list(TOKEN_CASES))
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rpc", [rpc for rpc in RPCS if rpc not in LINKED])
def test_bad_callers_are_refused(
    stack: RunningStack,
    caller: Caller,
    watch: StateWatch,
    targets: Targets,
    rpc: str,
    path: str,
    case: str,
) -> None:
    expected = TOKEN_CASES[case]
    role = wrong_role(rpc) if case == "wrong-role" else allowed_role(rpc)
    if (case, role) not in _TOKENS:  # minted once per module: signing (and, for
        _TOKENS[case, role] = expected.make(stack.tokens, role)  # bad-signature, keygen) costs
    token = _TOKENS[case, role]
    sample = SAMPLES[rpc](targets, {})
    answer, changes = _call(watch, caller, path, rpc, sample, token)
    assert answer.status == expected.status, f"{rpc} via {path} with {case}: {answer}"
    reason = expected.reason if isinstance(expected.reason, str) else expected.reason[path]
    assert answer.reason == reason, f"{rpc} via {path} with {case}: {answer}"
    if case == "wrong-role":
        # The gateway refuses with the service's own words.
        allowed = " or ".join(sorted(METHOD_ROLES[grpc_path(rpc)]))
        method = rpc.split("/")[1]
        assert f"{method} requires role {allowed}" in answer.text, answer
    assert not changes, f"{rpc} via {path} with {case} changed state: {changes}"
    _assert_no_leak(answer, targets, sample, f"{rpc} via {path} with {case}")


@pytest.mark.parametrize("case", list(TOKEN_CASES))
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rpc", sorted(LINKED))
def test_a_forged_link_is_refused_whatever_the_token(
    stack: RunningStack,
    caller: Caller,
    watch: StateWatch,
    targets: Targets,
    rpc: str,
    path: str,
    case: str,
) -> None:
    """A link method looks at no bearer token, good or bad: an unsigned link is a 401."""
    role = allowed_role("QueryService/ExportHistoryCsv")
    if (case, role) not in _TOKENS:
        _TOKENS[case, role] = TOKEN_CASES[case].make(stack.tokens, role)
    sample = SAMPLES[rpc](targets, {})
    answer, changes = _call(watch, caller, path, rpc, sample, _TOKENS[case, role])
    assert (answer.status, answer.reason) == (401, "LINK_INVALID"), f"{rpc} via {path}: {answer}"
    assert not changes, f"{rpc} via {path} with {case} changed state: {changes}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("rpc", [rpc for rpc in RPCS if rpc not in CREATING | LINKED])
def test_another_tenants_resource_is_not_found(
    stack: RunningStack,
    caller: Caller,
    watch: StateWatch,
    targets: Targets,
    rpc: str,
    path: str,
) -> None:
    """A token of tenant `other` aimed at tenant `demo`'s resources: 404 (a 403 would
    confirm they exist), or for a listing a correct answer with none of demo's data."""
    token = stack.tokens.valid(allowed_role(rpc), subject=MALLORY, tenant=OTHER)
    sample = SAMPLES[rpc](targets, {})
    answer, changes = _call(watch, caller, path, rpc, sample, token)
    expected = 200 if rpc in LISTING else 404
    assert answer.status == expected, f"{rpc} via {path}: {answer}"
    assert not changes, f"{rpc} via {path} changed state: {changes}"
    _assert_no_leak(answer, targets, sample, f"{rpc} via {path}")


# --------------------------------------------------------------------------- hostile input

INJECTIONS = (
    "' OR 1=1 --",
    '"; DROP TABLE models; --',
    "%27",
    "pump-001' OR tenant_id <> 'other",
    # Full-width "pump-001", an emoji and a right-to-left override.
    "\uff50\uff55\uff4d\uff50\u2010\uff10\uff10\uff11 \U0001f4a5 \u202e",
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "a\x00b",
    "%00",
)


@pytest.mark.parametrize(
    ("rpc", "field"), [(rpc, field) for rpc in RPCS for field in STRING_FIELDS.get(rpc, ())]
)
def test_injection_and_traversal_strings_are_harmless(
    stack: RunningStack,
    caller: Caller,
    watch: StateWatch,
    targets: Targets,
    rpc: str,
    field: str,
) -> None:
    """Every hostile string in every string field, on every path: 400, 404 or a correct
    (empty) answer; never a 5xx, never data of tenant demo (the caller is tenant other),
    never a change."""
    token = stack.tokens.valid(allowed_role(rpc), subject=MALLORY, tenant=OTHER)

    answers: list[tuple[str, Sample, Answer]] = []

    def run_all() -> None:
        for payload in INJECTIONS:
            sample = SAMPLES[rpc](targets, {field: payload})
            for path in PATHS:
                answers.append((path, sample, caller.call(path, rpc, sample, token)))

    changes = watch.unchanged(run_all)
    for path, sample, answer in answers:
        what = f"{rpc}.{field} via {path}: {sample.rest}"
        # A link method refuses what it cannot verify as unauthenticated.
        allowed = (200, 400, 404, 401) if rpc in LINKED else (200, 400, 404)
        assert answer.status in allowed, f"{what}: {answer}"
        _assert_no_leak(answer, targets, sample, what)
    assert not changes, f"{rpc}.{field} changed state: {changes}"


PAGED = [
    ("ModelRegistry/ListModels", "ListModels"),
    ("ModelRegistry/ListApprovals", "ListApprovals"),
    ("QueryService/ListAssets", "ListAssets"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("rpc", "method"), PAGED)
def test_forged_and_foreign_page_tokens_are_400(
    stack: RunningStack,
    caller: Caller,
    targets: Targets,
    rpc: str,
    method: str,
    path: str,
) -> None:
    own = targets.page_tokens[method]
    body, mac = own.split(".")
    foreign_method = next(m for t, m in targets.page_tokens.items() if t != method for m in [t])
    cases = {
        "garbage": "not-a-token",
        "forged-mac": f"{body}.AAAAAAAAAAAAAAAAAAAAAA",
        "tampered-body": f"{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{mac}",
        "another-method": targets.page_tokens[foreign_method],
    }
    role = allowed_role(rpc)
    demo = stack.tokens.valid(role, subject=MALLORY)
    for name, page_token in cases.items():
        answer = caller.call(path, rpc, SAMPLES[rpc](targets, {"page_token": page_token}), demo)
        assert answer.status == 400, f"{name} page token for {rpc} via {path}: {answer}"
    # Tenant demo's own token in tenant other's hands.
    other = stack.tokens.valid(role, subject=MALLORY, tenant=OTHER)
    answer = caller.call(
        path, rpc, SAMPLES[rpc](targets, {"page_token": own, "page_size": "1"}), other
    )
    assert answer.status == 400, f"another tenant's page token for {rpc} via {path}: {answer}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("rpc", "method"),
    PAGED,
)
def test_own_page_token_gives_the_next_page(
    stack: RunningStack, caller: Caller, targets: Targets, rpc: str, method: str, path: str
) -> None:
    """The refusals above are for the right reason: the owner's token does work."""
    demo = stack.tokens.valid(allowed_role(rpc), subject=MALLORY)
    page_two = SAMPLES[rpc](targets, {"page_token": targets.page_tokens[method], "page_size": "1"})
    answer = caller.call(path, rpc, page_two, demo)
    assert answer.status == 200, f"{rpc} page 2 via {path}: {answer}"


# --------------------------------------------------------------------------- oversized headers

BIG = "x" * (100 * 1024)


def test_oversized_rest_header_is_431(stack: RunningStack, caller: Caller) -> None:
    """Envoy's max_request_headers_kb defaults to 60 KiB: a 100 KiB header never
    reaches a service (HTTP/1.1: 431 Request Header Fields Too Large)."""
    token = stack.tokens.valid(ROLE_DATA_SCIENTIST)
    response = caller.http.get(
        "/api/v1/models", headers={"authorization": f"Bearer {token}", "x-padding": BIG}
    )
    assert response.status_code == 431, response.text
    oversized_token = caller.http.get("/api/v1/models", headers={"authorization": f"Bearer {BIG}"})
    assert oversized_token.status_code == 431


@pytest.mark.parametrize("path", [GATEWAY_GRPC, DIRECT_GRPC])
def test_oversized_grpc_metadata_is_refused(
    stack: RunningStack, caller: Caller, targets: Targets, path: str
) -> None:
    token = stack.tokens.valid(ROLE_DATA_SCIENTIST)
    sample = SAMPLES["ModelRegistry/ListModels"](targets, {})
    answer = caller.grpc(
        path,
        "ModelRegistry/ListModels",
        sample.messages,
        [("authorization", f"Bearer {token}"), ("x-padding", BIG)],
    )
    assert answer.grpc_code in OVERSIZED_METADATA_CODES[path], f"{path}: {answer}"
    # The channel (and the gateway or service) is fine afterwards.
    assert caller.call(path, "ModelRegistry/ListModels", sample, token).status == 200


# What a gRPC client sees for 100 KiB of metadata. Envoy (h2 header list over its
# max_request_headers_kb, 60 KiB) ends the connection with GOAWAY, which the client
# reports as UNAVAILABLE; the grpc server refuses metadata over its 8 KiB default.
OVERSIZED_METADATA_CODES: dict[str, set[grpc.StatusCode]] = {
    GATEWAY_GRPC: {grpc.StatusCode.UNAVAILABLE},
    DIRECT_GRPC: {grpc.StatusCode.RESOURCE_EXHAUSTED},
}
