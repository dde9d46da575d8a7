"""The ModelRegistry servicer's unary methods, unit-tested with grpc_testing
(tests/grpc_aio_testing.py): the real servicer behind the server's own interceptor chain, over
fake domain objects. No PostgreSQL, no object store, no port.

What is checked is the servicer's part: the request's fields reach the domain call with the
caller from the token, the domain's records come back as the contract's messages, and a
domain refusal comes back with its status code and its ErrorInfo (reason and metadata) in the
trailing metadata. The fakes implement only what the servicer calls (duck typing), with
records as plain namespaces, so they do not depend on the domain's internals.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from services.common.errors import ServiceError, not_found, permission_denied
from services.common.pagination import Page
from services.common.settings import ROLE_DATA_SCIENTIST as DS
from services.common.settings import ROLE_MODEL_APPROVER as APPROVER
from services.common.settings import Settings
from services.models.servicer import ModelRegistryServicer
from tests.grpc_aio_testing import AioService, Metadata, Outcome, server_interceptors
from tests.tokens import Tokens

MODEL_ID = "0d4f7f3e-5a51-4c43-9d59-2f1c8a0b6e11"
APPROVAL_ID = "6b0e2c1a-8f3d-4e5b-a7c9-1d2e3f4a5b6c"
T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
T1 = T0 + timedelta(hours=2)
REQUEST_ID = "req-unit-1"


def _seconds(when: datetime) -> int:
    return int(when.timestamp())


# ------------------------------------------------------------------ records, as the domain gives


def model_record(**changes: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "model_id": MODEL_ID,
        "name": "pump-bearing",
        "description": "bearing wear from vibration",
        "latest_version": 3,
        "created_by": "alice",
        "create_time": T0,
        "update_time": T1,
        "latest_status": "IN_REVIEW",
    }
    return SimpleNamespace(**(fields | changes))


def version_record(**changes: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "model_id": MODEL_ID,
        "name": "pump-bearing",
        "version": 3,
        "status": "IN_REVIEW",
        "description": "retrained on March",
        "labels": {"site": "north"},
        "metrics": {"auc": 0.91},
        "training_export_ids": ["exp-1", "exp-2"],
        "storage_key": "demo/m/3.onnx",
        "sha256": "ab" * 32,
        "size_bytes": 4096,
        "signature": {
            "inputs": [{"name": "x", "element_type": "float", "shape": ["batch", 16]}],
            "outputs": [{"name": "y", "element_type": "float", "shape": ["batch", 1]}],
            "opset_imports": [["", 17], ["ai.onnx.ml", 3]],
            "ir_version": 9,
            "producer_name": "skl2onnx",
            "producer_version": "1.20.0",
        },
        "created_by": "alice",
        "create_time": T0,
        "update_time": T1,
        "history": [
            SimpleNamespace(
                from_status=None,
                to_status="PENDING_APPROVAL",
                actor="alice",
                comment="",
                change_time=T0,
            ),
            SimpleNamespace(
                from_status="PENDING_APPROVAL",
                to_status="IN_REVIEW",
                actor="alice",
                comment="please review",
                change_time=T1,
            ),
        ],
        "validation_state": "PASSED",
        "has_evaluation_set": True,
    }
    return SimpleNamespace(**(fields | changes))


def approval_record(**changes: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "approval_id": APPROVAL_ID,
        "model_id": MODEL_ID,
        "model_name": "pump-bearing",
        "version": 3,
        "state": "OPEN",
        "submitted_by": "alice",
        "submit_comment": "please review",
        "submit_time": T0,
        "decided_by": "",
        "decision_comment": "",
        "decide_time": None,
        "sha256": "ab" * 32,
        "model_version": version_record(),
    }
    return SimpleNamespace(**(fields | changes))


def validation_record(**changes: Any) -> SimpleNamespace:
    fields: dict[str, Any] = {
        "model_id": MODEL_ID,
        "version": 3,
        "state": "PASSED",
        "reason": "",
        "message": "every claimed metric reproduced",
        "attempts": 1,
        "create_time": T0,
        "start_time": T0 + timedelta(seconds=5),
        "complete_time": None,
        "report": {"runtime": {"status": "PASSED", "batch_size": 8, "latency_p95_ms": 1.5}},
    }
    return SimpleNamespace(**(fields | changes))


def audit_record(action: str, outcome: str = "ok") -> SimpleNamespace:
    return SimpleNamespace(
        audit_pk=7,
        time=T1,
        actor="bob",
        action=action,
        resource=f"models/{MODEL_ID}/versions/3",
        outcome=outcome,
        request_id=REQUEST_ID,
        detail='{"comment": "ok"}',
    )


def page(items: list[Any], *, more: bool = False) -> Page[Any]:
    return Page(items, more, lambda record: f"after:{items.index(record)}")


# ------------------------------------------------------------------ the fakes


class Fake:
    """Records each call (name, the caller's subject and tenant, the arguments) and answers
    with what the test set in `answers[name]`: a value, or a ServiceError/exception to raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.answers: dict[str, Any] = {}

    def _answer(self, name: str, principal: Any, *args: Any, **kwargs: Any) -> Any:
        who = (principal.subject, principal.tenant, *sorted(principal.roles))
        self.calls.append((name, who, *args, *sorted(kwargs.items())))
        answer = self.answers[name]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def called(self, name: str) -> list[tuple[Any, ...]]:
        return [call[1:] for call in self.calls if call[0] == name]


class FakeCatalog(Fake):
    async def list_models(self, principal: Any, size: int, token: str, filter: str) -> Any:
        return self._answer("list_models", principal, size, token, filter)

    async def get_model(self, principal: Any, model_id: str) -> Any:
        return self._answer("get_model", principal, model_id)

    async def list_versions(self, principal: Any, model_id: str, size: int, token: str) -> Any:
        return self._answer("list_versions", principal, model_id, size, token)

    async def get_version(self, principal: Any, model_id: str, version: int) -> Any:
        return self._answer("get_version", principal, model_id, version)

    async def get_validation(self, principal: Any, model_id: str, version: int) -> Any:
        return self._answer("get_validation", principal, model_id, version)

    async def audit_entries(
        self, principal: Any, model_id: str, version: int, size: int, token: str
    ) -> Any:
        return self._answer("audit_entries", principal, model_id, version, size, token)


class FakeApprovals(Fake):
    async def submit(
        self, principal: Any, model_id: str, version: int, comment: str, request_id: str | None
    ) -> Any:
        return self._answer("submit", principal, model_id, version, comment, request_id)

    async def list_requests(self, principal: Any, state: str | None, size: int, token: str) -> Any:
        return self._answer("list_requests", principal, state, size, token)

    async def get(self, principal: Any, approval_id: str) -> Any:
        return self._answer("get", principal, approval_id)

    async def decide(
        self, principal: Any, approval_id: str, *, approve: bool, comment: str, request_id: Any
    ) -> Any:
        return self._answer(
            "decide",
            principal,
            approval_id,
            approve=approve,
            comment=comment,
            request_id=request_id,
        )

    async def archive(
        self, principal: Any, model_id: str, version: int, comment: str, request_id: str | None
    ) -> Any:
        return self._answer("archive", principal, model_id, version, comment, request_id)


class FakeLinks(Fake):
    def issue(self, principal: Any, model_id: str, version: int, now: datetime) -> Any:
        assert now.tzinfo is not None
        return self._answer("issue", principal, model_id, version)


class NoUploads:
    """The unary methods never upload."""


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def approvals() -> FakeApprovals:
    return FakeApprovals()


@pytest.fixture
def links() -> FakeLinks:
    return FakeLinks()


@pytest.fixture
def registry(
    dev_settings: Settings, catalog: FakeCatalog, approvals: FakeApprovals, links: FakeLinks
) -> Iterator[AioService]:
    servicer = ModelRegistryServicer(NoUploads(), catalog, approvals, links)  # type: ignore[arg-type]
    with AioService(
        pb.DESCRIPTOR.services_by_name["ModelRegistry"],
        pb_grpc.add_ModelRegistryServicer_to_server,
        servicer,
        server_interceptors(dev_settings),
    ) as served:
        yield served


def _as(dev_tokens: Tokens, role: str, subject: str) -> Metadata:
    return (
        *dev_tokens.metadata(role, subject=subject, tenant="plant-7"),
        ("x-request-id", REQUEST_ID),
    )


def scientist(dev_tokens: Tokens) -> Metadata:
    return _as(dev_tokens, DS, "alice")


def approver(dev_tokens: Tokens) -> Metadata:
    return _as(dev_tokens, APPROVER, "bob")


ALICE = ("alice", "plant-7", DS)
BOB = ("bob", "plant-7", APPROVER)


def ok(outcome: Outcome) -> Any:
    assert outcome.code == grpc.StatusCode.OK, (outcome.code, outcome.details)
    return outcome.response


def refused(outcome: Outcome, code: grpc.StatusCode, reason: str) -> dict[str, str]:
    """The call failed with `code` and an ErrorInfo of `reason`: its metadata."""
    assert outcome.code == code, (outcome.code, outcome.details)
    assert outcome.response is None
    info = outcome.error_info()
    assert (info.reason, info.domain) == (reason, "mlplane")
    assert outcome.header("x-request-id") == REQUEST_ID
    return dict(info.metadata)


def expected_version(**changes: Any) -> pb.ModelVersion:
    """The message version_record(**changes) must become, written out field by field."""
    message = pb.ModelVersion(
        model_id=MODEL_ID,
        name="pump-bearing",
        version=3,
        status=pb.ModelVersion.IN_REVIEW,
        description="retrained on March",
        labels={"site": "north"},
        metrics={"auc": 0.91},
        training_export_ids=["exp-1", "exp-2"],
        sha256="ab" * 32,
        size_bytes=4096,
        signature=pb.OnnxSignature(
            inputs=[
                pb.TensorSpec(
                    name="x",
                    element_type="float",
                    shape=[pb.Dimension(param="batch"), pb.Dimension(size=16)],
                )
            ],
            outputs=[
                pb.TensorSpec(
                    name="y",
                    element_type="float",
                    shape=[pb.Dimension(param="batch"), pb.Dimension(size=1)],
                )
            ],
            opset_imports=[
                pb.OperatorSetId(domain="", version=17),
                pb.OperatorSetId(domain="ai.onnx.ml", version=3),
            ],
            ir_version=9,
            producer_name="skl2onnx",
            producer_version="1.20.0",
        ),
        created_by="alice",
        status_history=[
            pb.StatusChange(
                from_status=pb.ModelVersion.STATUS_UNSPECIFIED,
                to_status=pb.ModelVersion.PENDING_APPROVAL,
                actor="alice",
            ),
            pb.StatusChange(
                from_status=pb.ModelVersion.PENDING_APPROVAL,
                to_status=pb.ModelVersion.IN_REVIEW,
                actor="alice",
                comment="please review",
            ),
        ],
        validation_state=pb.ValidationReport.PASSED,
        has_evaluation_set=True,
    )
    message.create_time.FromDatetime(T0)
    message.update_time.FromDatetime(T1)
    message.status_history[0].change_time.FromDatetime(T0)
    message.status_history[1].change_time.FromDatetime(T1)
    for name, value in changes.items():
        setattr(message, name, value)
    return message


# ------------------------------------------------------------------ models and versions


def test_get_model(registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens) -> None:
    catalog.answers["get_model"] = model_record()
    model = ok(
        registry.unary_unary(
            "GetModel", pb.GetModelRequest(model_id=MODEL_ID), approver(dev_tokens)
        )
    )
    assert catalog.called("get_model") == [(BOB, MODEL_ID)]
    assert (model.model_id, model.name, model.description) == (
        MODEL_ID,
        "pump-bearing",
        "bearing wear from vibration",
    )
    assert (model.latest_version, model.latest_status) == (3, pb.ModelVersion.IN_REVIEW)
    assert model.created_by == "alice"
    assert (model.create_time.seconds, model.update_time.seconds) == (_seconds(T0), _seconds(T1))


def test_get_model_unknown_is_not_found_with_its_reason(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["get_model"] = not_found("MODEL_NOT_FOUND", "no such model", modelId=MODEL_ID)
    outcome = registry.unary_unary(
        "GetModel", pb.GetModelRequest(model_id=MODEL_ID), scientist(dev_tokens)
    )
    assert refused(outcome, grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND") == {"modelId": MODEL_ID}
    assert outcome.details == "no such model"


def test_a_malformed_id_is_refused_before_the_domain_is_asked(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    outcome = registry.unary_unary(
        "GetModel", pb.GetModelRequest(model_id="pump-1"), scientist(dev_tokens)
    )
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert catalog.calls == []


def test_list_models_passes_the_page_and_filter_and_returns_the_next_token(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["list_models"] = page(
        [model_record(), model_record(name="fan", latest_status="APPROVED")], more=True
    )
    request = pb.ListModelsRequest(page_size=2, page_token="tok", filter='name:"p*"')
    listed = ok(registry.unary_unary("ListModels", request, scientist(dev_tokens)))
    assert catalog.called("list_models") == [(ALICE, 2, "tok", 'name:"p*"')]
    assert [(m.name, m.latest_status) for m in listed.models] == [
        ("pump-bearing", pb.ModelVersion.IN_REVIEW),
        ("fan", pb.ModelVersion.APPROVED),
    ]
    assert listed.next_page_token == "after:1"


def test_get_model_version_translates_every_field(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["get_version"] = version_record()
    request = pb.GetModelVersionRequest(model_id=MODEL_ID, version=3)
    version = ok(registry.unary_unary("GetModelVersion", request, scientist(dev_tokens)))
    assert catalog.called("get_version") == [(ALICE, MODEL_ID, 3)]
    assert version == expected_version()


def test_list_model_versions_last_page_has_no_token(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["list_versions"] = page(
        [version_record(), version_record(version=2, status="REJECTED", history=[])]
    )
    request = pb.ListModelVersionsRequest(model_id=MODEL_ID, page_size=5)
    listed = ok(registry.unary_unary("ListModelVersions", request, approver(dev_tokens)))
    assert catalog.called("list_versions") == [(BOB, MODEL_ID, 5, "")]
    assert [(v.version, v.status) for v in listed.model_versions] == [
        (3, pb.ModelVersion.IN_REVIEW),
        (2, pb.ModelVersion.REJECTED),
    ]
    assert listed.model_versions[0] == expected_version()
    assert listed.next_page_token == ""


def test_get_validation_report(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["get_validation"] = validation_record()
    request = pb.GetValidationReportRequest(model_id=MODEL_ID, version=3)
    report = ok(registry.unary_unary("GetValidationReport", request, approver(dev_tokens)))
    assert catalog.called("get_validation") == [(BOB, MODEL_ID, 3)]
    assert (report.model_id, report.version, report.state) == (
        MODEL_ID,
        3,
        pb.ValidationReport.PASSED,
    )
    assert (report.message, report.attempts) == ("every claimed metric reproduced", 1)
    assert report.start_time.seconds == _seconds(T0) + 5
    assert not report.HasField("complete_time")
    assert report.runtime.passed
    assert (report.runtime.batch_size, report.runtime.latency_p95_ms) == (8, 1.5)
    assert not report.HasField("metrics")


def test_get_validation_report_of_an_unknown_version(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["get_validation"] = not_found("VALIDATION_NOT_FOUND", "no report")
    request = pb.GetValidationReportRequest(model_id=MODEL_ID, version=9)
    outcome = registry.unary_unary("GetValidationReport", request, scientist(dev_tokens))
    refused(outcome, grpc.StatusCode.NOT_FOUND, "VALIDATION_NOT_FOUND")


def test_list_audit_entries(registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens) -> None:
    catalog.answers["audit_entries"] = page(
        [audit_record("submit"), audit_record("approve", "denied")], more=True
    )
    request = pb.ListAuditEntriesRequest(model_id=MODEL_ID, version=3, page_size=2, page_token="t")
    listed = ok(registry.unary_unary("ListAuditEntries", request, approver(dev_tokens)))
    assert catalog.called("audit_entries") == [(BOB, MODEL_ID, 3, 2, "t")]
    first = listed.audit_entries[0]
    assert (first.actor, first.action, first.outcome, first.request_id) == (
        "bob",
        "submit",
        "ok",
        REQUEST_ID,
    )
    assert first.resource == f"models/{MODEL_ID}/versions/3"
    assert first.detail == '{"comment": "ok"}'
    assert first.time.seconds == _seconds(T1)
    assert [e.outcome for e in listed.audit_entries] == ["ok", "denied"]
    assert listed.next_page_token == "after:1"


def test_create_model_download_link_checks_the_version_then_signs_the_canonical_id(
    registry: AioService, catalog: FakeCatalog, links: FakeLinks, dev_tokens: Tokens
) -> None:
    catalog.answers["get_version"] = version_record()
    links.answers["issue"] = SimpleNamespace(
        url="/api/v1/models/x/versions/3/download?link=s", expires=T1
    )
    request = pb.CreateModelDownloadLinkRequest(model_id=MODEL_ID.upper(), version=3)
    link = ok(registry.unary_unary("CreateModelDownloadLink", request, scientist(dev_tokens)))
    assert catalog.called("get_version") == [(ALICE, MODEL_ID.upper(), 3)]
    assert links.called("issue") == [(ALICE, str(uuid.UUID(MODEL_ID)), 3)]
    assert link.url == "/api/v1/models/x/versions/3/download?link=s"
    assert link.expire_time.seconds == _seconds(T1)


def test_no_link_is_made_for_a_version_the_caller_cannot_see(
    registry: AioService, catalog: FakeCatalog, links: FakeLinks, dev_tokens: Tokens
) -> None:
    catalog.answers["get_version"] = not_found("VERSION_NOT_FOUND", "no such version")
    request = pb.CreateModelDownloadLinkRequest(model_id=MODEL_ID, version=3)
    outcome = registry.unary_unary("CreateModelDownloadLink", request, scientist(dev_tokens))
    refused(outcome, grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND")
    assert links.calls == []


# ------------------------------------------------------------------ approvals


def test_submit_for_approval_is_202_with_the_request_id(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    approvals.answers["submit"] = approval_record()
    request = pb.SubmitForApprovalRequest(model_id=MODEL_ID, version=3, comment="please review")
    outcome = registry.unary_unary("SubmitForApproval", request, scientist(dev_tokens))
    approval = ok(outcome)
    assert approvals.called("submit") == [(ALICE, MODEL_ID, 3, "please review", REQUEST_ID)]
    # The gateway's Lua filter turns this initial metadata into the REST status.
    assert dict(outcome.initial_metadata)["x-http-status"] == "202"
    assert dict(outcome.initial_metadata)["x-request-id"] == REQUEST_ID
    assert (approval.approval_id, approval.state) == (APPROVAL_ID, pb.Approval.OPEN)
    assert (approval.model_name, approval.version, approval.submitted_by) == (
        "pump-bearing",
        3,
        "alice",
    )
    assert approval.submit_time.seconds == _seconds(T0)
    assert not approval.HasField("decide_time")
    assert approval.model_version == expected_version()


def test_submit_twice_is_already_exists_with_the_status(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    approvals.answers["submit"] = ServiceError(
        grpc.StatusCode.ALREADY_EXISTS,
        "VERSION_NOT_PENDING",
        "version 3 is IN_REVIEW; only PENDING_APPROVAL versions can be submitted",
        metadata={"status": "IN_REVIEW"},
    )
    request = pb.SubmitForApprovalRequest(model_id=MODEL_ID, version=3)
    outcome = registry.unary_unary("SubmitForApproval", request, scientist(dev_tokens))
    metadata = refused(outcome, grpc.StatusCode.ALREADY_EXISTS, "VERSION_NOT_PENDING")
    assert metadata == {"status": "IN_REVIEW"}
    assert outcome.header("x-http-status") is None  # no 202 for a refusal


def test_get_approval_of_a_decided_request(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    approvals.answers["get"] = approval_record(
        state="APPROVED",
        decided_by="bob",
        decision_comment="ship it",
        decide_time=T1,
        model_version=None,
    )
    approval = ok(
        registry.unary_unary(
            "GetApproval", pb.GetApprovalRequest(approval_id=APPROVAL_ID), scientist(dev_tokens)
        )
    )
    assert approvals.called("get") == [(ALICE, APPROVAL_ID)]
    assert approval.state == pb.Approval.APPROVED
    assert (approval.decided_by, approval.decision_comment) == ("bob", "ship it")
    assert approval.decide_time.seconds == _seconds(T1)
    assert not approval.HasField("model_version")


def test_get_approval_unknown(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    approvals.answers["get"] = not_found("APPROVAL_NOT_FOUND", "no such approval")
    request = pb.GetApprovalRequest(approval_id=APPROVAL_ID)
    refused(
        registry.unary_unary("GetApproval", request, approver(dev_tokens)),
        grpc.StatusCode.NOT_FOUND,
        "APPROVAL_NOT_FOUND",
    )


@pytest.mark.parametrize(
    ("state", "asked"),
    [
        (pb.Approval.STATE_UNSPECIFIED, None),
        (pb.Approval.OPEN, "OPEN"),
        (pb.Approval.REJECTED, "REJECTED"),
    ],
)
def test_list_approvals_passes_the_state_by_name(
    registry: AioService,
    approvals: FakeApprovals,
    dev_tokens: Tokens,
    state: int,
    asked: str | None,
) -> None:
    approvals.answers["list_requests"] = page([approval_record()], more=True)
    request = pb.ListApprovalsRequest(state=state, page_size=1, page_token="p")  # type: ignore[arg-type]
    listed = ok(registry.unary_unary("ListApprovals", request, approver(dev_tokens)))
    assert approvals.called("list_requests") == [(BOB, asked, 1, "p")]
    assert [a.approval_id for a in listed.approvals] == [APPROVAL_ID]
    assert listed.next_page_token == "after:0"


@pytest.mark.parametrize(
    ("method", "approve"), [("ApproveModelVersion", True), ("RejectModelVersion", False)]
)
def test_decisions(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens, method: str, approve: bool
) -> None:
    state = "APPROVED" if approve else "REJECTED"
    approvals.answers["decide"] = approval_record(
        state=state, decided_by="bob", decision_comment="looked at it", decide_time=T1
    )
    request_type = pb.ApproveModelVersionRequest if approve else pb.RejectModelVersionRequest
    request = request_type(approval_id=APPROVAL_ID, comment="looked at it")
    approval = ok(registry.unary_unary(method, request, approver(dev_tokens)))
    assert approvals.called("decide") == [
        (
            BOB,
            APPROVAL_ID,
            ("approve", approve),
            ("comment", "looked at it"),
            ("request_id", REQUEST_ID),
        )
    ]
    assert approval.state == pb.Approval.State.Value(state)
    assert approval.decide_time.seconds == _seconds(T1)


def test_a_decision_refused_for_separation_of_duties(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    approvals.answers["decide"] = permission_denied(
        "SEPARATION_OF_DUTIES", "the uploader or submitter of a version cannot decide on it"
    )
    request = pb.ApproveModelVersionRequest(approval_id=APPROVAL_ID)
    outcome = registry.unary_unary("ApproveModelVersion", request, approver(dev_tokens))
    refused(outcome, grpc.StatusCode.PERMISSION_DENIED, "SEPARATION_OF_DUTIES")
    assert outcome.details == "the uploader or submitter of a version cannot decide on it"


def test_an_approval_before_validation_passed_is_a_failed_precondition(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    approvals.answers["decide"] = ServiceError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "VALIDATION_NOT_PASSED",
        "this version cannot be approved: its validation is still running",
        metadata={"validationState": "RUNNING"},
    )
    request = pb.ApproveModelVersionRequest(approval_id=APPROVAL_ID)
    outcome = registry.unary_unary("ApproveModelVersion", request, approver(dev_tokens))
    metadata = refused(outcome, grpc.StatusCode.FAILED_PRECONDITION, "VALIDATION_NOT_PASSED")
    assert metadata == {"validationState": "RUNNING"}


def test_a_rejection_without_a_comment_never_reaches_the_domain(
    registry: AioService, approvals: FakeApprovals, dev_tokens: Tokens
) -> None:
    request = pb.RejectModelVersionRequest(approval_id=APPROVAL_ID, comment="")
    outcome = registry.unary_unary("RejectModelVersion", request, approver(dev_tokens))
    assert outcome.code == grpc.StatusCode.INVALID_ARGUMENT
    assert approvals.calls == []


def test_archive_archives_then_returns_the_version_as_it_now_is(
    registry: AioService, approvals: FakeApprovals, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    approvals.answers["archive"] = None
    catalog.answers["get_version"] = version_record(status="ARCHIVED")
    request = pb.ArchiveModelVersionRequest(model_id=MODEL_ID, version=3, comment="superseded")
    version = ok(registry.unary_unary("ArchiveModelVersion", request, approver(dev_tokens)))
    assert approvals.called("archive") == [(BOB, MODEL_ID, 3, "superseded", REQUEST_ID)]
    assert catalog.called("get_version") == [(BOB, MODEL_ID, 3)]
    assert version == expected_version(status=pb.ModelVersion.ARCHIVED)


def test_archive_refused_reads_nothing_back(
    registry: AioService, approvals: FakeApprovals, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    approvals.answers["archive"] = ServiceError(
        grpc.StatusCode.ABORTED,
        "ALREADY_ARCHIVED",
        "version 3 is already ARCHIVED",
        metadata={"status": "ARCHIVED"},
    )
    request = pb.ArchiveModelVersionRequest(model_id=MODEL_ID, version=3)
    outcome = registry.unary_unary("ArchiveModelVersion", request, approver(dev_tokens))
    assert refused(outcome, grpc.StatusCode.ABORTED, "ALREADY_ARCHIVED") == {"status": "ARCHIVED"}
    assert catalog.calls == []


# ------------------------------------------------------------------ the chain around the servicer


@pytest.mark.parametrize(
    ("method", "request_message", "role"),
    [
        ("ApproveModelVersion", pb.ApproveModelVersionRequest(approval_id=APPROVAL_ID), DS),
        ("ArchiveModelVersion", pb.ArchiveModelVersionRequest(model_id=MODEL_ID, version=3), DS),
        ("ListApprovals", pb.ListApprovalsRequest(), DS),
        ("SubmitForApproval", pb.SubmitForApprovalRequest(model_id=MODEL_ID), APPROVER),
    ],
)
def test_the_role_table_guards_the_servicer(
    registry: AioService,
    approvals: FakeApprovals,
    catalog: FakeCatalog,
    dev_tokens: Tokens,
    method: str,
    request_message: Any,
    role: str,
) -> None:
    outcome = registry.unary_unary(method, request_message, _as(dev_tokens, role, "mallory"))
    metadata = refused(outcome, grpc.StatusCode.PERMISSION_DENIED, "ROLE_REQUIRED")
    assert metadata["method"] == method
    assert approvals.calls == catalog.calls == []


def test_a_surprise_in_the_domain_is_internal_and_says_nothing_of_it(
    registry: AioService, catalog: FakeCatalog, dev_tokens: Tokens
) -> None:
    catalog.answers["get_model"] = RuntimeError("password=hunter2 at /var/lib/db")
    outcome = registry.unary_unary(
        "GetModel", pb.GetModelRequest(model_id=MODEL_ID), scientist(dev_tokens)
    )
    assert refused(outcome, grpc.StatusCode.INTERNAL, "INTERNAL") == {"requestId": REQUEST_ID}
    assert "hunter2" not in outcome.details
    assert "/var/lib" not in outcome.details
