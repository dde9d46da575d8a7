"""The approval workflow's operations: submit, approve, reject, archive.

Each is one transaction that locks the version row, asks the rules (services/models/
workflow.py) whether the move is allowed, and writes the new state, the status history,
the outbox event and the audit entry together, so an event exists exactly when its change
does. A refusal rolls all of it back and is audited on its own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import grpc

from services.common.auth import Principal
from services.common.errors import ServiceError, invalid_argument, not_found
from services.common.metrics import OK, ApprovalMetrics
from services.common.pagination import Page, PageTokens, invalid_page_token, page_of, page_size
from services.models import workflow
from services.models.repositories import approvals as requests
from services.models.repositories import audit, outbox, versions
from services.models.repositories.approvals import ApprovalRecord
from services.models.repository import RegistryRepository

__all__ = ["ApprovalRecord", "Approvals"]

# Refusals that are audited (a request that was not found or not valid says nothing new).
_REFUSALS = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.ALREADY_EXISTS,
)


def _is_refusal(error: BaseException) -> bool:
    return isinstance(error, ServiceError) and error.code in _REFUSALS


def _refusal_detail(error: BaseException) -> dict[str, Any]:
    return {"message": error.message if isinstance(error, ServiceError) else str(error)}


def _after_position(after: Any) -> tuple[datetime, uuid.UUID]:
    """The (submit time, approval id) a signed page token carries."""
    try:
        submitted, approval_id = after
        return datetime.fromisoformat(submitted), uuid.UUID(approval_id)
    except (TypeError, ValueError) as exc:
        raise invalid_page_token() from exc


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise invalid_argument(
            "INVALID_ID", f"{field} must be an id (a UUID)", field=field
        ) from exc


class Approvals:
    def __init__(
        self,
        repo: RegistryRepository,
        pages: PageTokens,
        *,
        on_event: Callable[[], None] = lambda: None,
        metrics: ApprovalMetrics | None = None,
    ) -> None:
        self._repo = repo
        self._pages = pages
        self._on_event = on_event  # wakes the outbox relay after a commit
        self._metrics = metrics or ApprovalMetrics()

    @contextlib.asynccontextmanager
    async def _outcome(
        self, kind: str, principal: Principal, action: str, resource: str, request_id: str | None
    ) -> AsyncIterator[None]:
        """Count the operation by its outcome, and audit a refusal."""
        try:
            async with self._repo.audit_log.failures(
                principal,
                action,
                resource,
                request_id=request_id,
                audited=_is_refusal,
                detail=_refusal_detail,
            ):
                yield
        except ServiceError as error:
            self._metrics.recorded(kind, error.reason)
            raise
        self._metrics.recorded(kind, OK)

    async def submit(
        self,
        principal: Principal,
        model_id: str,
        version: int,
        comment: str,
        request_id: str | None,
    ) -> ApprovalRecord:
        async with self._outcome(
            "submit", principal, "approval.submit", f"model/{model_id}", request_id
        ):
            mid = _uuid(model_id, "modelId")
            if version < 0:
                raise invalid_argument(
                    "INVALID_VERSION", "version must be positive", field="version"
                )
            async with self._repo.transaction() as db:
                found = await self._repo.versions.lock(db, principal.tenant, mid, version or None)
                if found is None:
                    raise not_found(
                        "VERSION_NOT_FOUND",
                        f"model {model_id} has no version {version or '(any)'}",
                        modelId=model_id,
                    )
                move = workflow.submit(found.version, found.status)
                approval_id = uuid.uuid4()
                await db.run(
                    requests.opened(
                        approval_id,
                        principal.tenant,
                        mid,
                        found.version,
                        actor=principal.subject,
                        comment=comment,
                        sha256=found.sha256,
                    ),
                    *versions.transition(mid, found.version, move, principal.subject, comment),
                    outbox.event(
                        principal.tenant,
                        mid,
                        "approval.requested",
                        {
                            "approvalId": str(approval_id),
                            "modelId": model_id,
                            "version": found.version,
                            "submittedBy": principal.subject,
                            "sha256": found.sha256,
                            "comment": comment,
                        },
                    ),
                    audit.entry(
                        principal,
                        "approval.submit",
                        f"approval/{approval_id}",
                        "ok",
                        request_id=request_id,
                        detail={"modelId": model_id, "version": found.version},
                    ),
                )
            self._on_event()
            return await self.get(principal, str(approval_id))

    async def decide(
        self,
        principal: Principal,
        approval_id: str,
        *,
        approve: bool,
        comment: str,
        request_id: str | None,
    ) -> ApprovalRecord:
        kind = "approve" if approve else "reject"
        action = f"approval.{kind}"
        resource = f"approval/{approval_id}"
        async with self._outcome(kind, principal, action, resource, request_id):
            aid = _uuid(approval_id, "approvalId")
            workflow.check_decision_comment(approve=approve, comment=comment)
            async with self._repo.transaction() as db:
                found = await self._repo.approvals.lock(db, principal.tenant, aid)
                if found is None:
                    raise not_found("APPROVAL_NOT_FOUND", f"approval {approval_id} does not exist")
                decision = workflow.decide(
                    principal.subject,
                    approve=approve,
                    approval_id=approval_id,
                    state=found.state,
                    submitter=found.submitted_by,
                    uploader=found.uploader,
                    validation_state=found.validation_state,
                    validation_reason=found.validation_reason,
                )
                mid = uuid.UUID(found.model_id)
                await db.run(
                    requests.decided(
                        aid,
                        decision.state,
                        actor=principal.subject,
                        comment=comment,
                        sha256=found.version_sha256,
                    ),
                    *versions.transition(
                        mid, found.version, decision.transition, principal.subject, comment
                    ),
                    outbox.event(
                        principal.tenant,
                        mid,
                        "approval.decided",
                        {
                            "approvalId": approval_id,
                            "modelId": found.model_id,
                            "version": found.version,
                            "decision": decision.state,
                            "decidedBy": principal.subject,
                            "sha256": found.version_sha256,
                            "comment": comment,
                        },
                    ),
                    audit.entry(
                        principal,
                        action,
                        resource,
                        decision.state.lower(),
                        request_id=request_id,
                        detail={"modelId": found.model_id, "version": found.version},
                    ),
                )
            self._on_event()
            return await self.get(principal, approval_id)

    async def archive(
        self,
        principal: Principal,
        model_id: str,
        version: int,
        comment: str,
        request_id: str | None,
    ) -> None:
        resource = f"model/{model_id}/version/{version}"
        async with self._outcome("archive", principal, "model.archive", resource, request_id):
            mid = _uuid(model_id, "modelId")
            async with self._repo.transaction() as db:
                found = await self._repo.versions.lock(db, principal.tenant, mid, version)
                if found is None:
                    raise not_found(
                        "VERSION_NOT_FOUND",
                        f"model {model_id} has no version {version}",
                        modelId=model_id,
                    )
                move = workflow.archive(
                    principal.subject,
                    version=version,
                    status=found.status,
                    uploader=found.created_by,
                    submitters=await self._repo.approvals.open_submitters(db, mid, version),
                )
                await db.run(
                    requests.cancelled(mid, version, actor=principal.subject, comment=comment),
                    *versions.transition(mid, version, move, principal.subject, comment),
                    audit.entry(
                        principal, "model.archive", resource, "ok", request_id=request_id, detail={}
                    ),
                )

    # --- reads --------------------------------------------------------------------------
    async def get(self, principal: Principal, approval_id: str) -> ApprovalRecord:
        found = await self._repo.approvals.get(principal.tenant, _uuid(approval_id, "approvalId"))
        if found is None:
            raise not_found("APPROVAL_NOT_FOUND", f"approval {approval_id} does not exist")
        return found

    async def list_requests(
        self, principal: Principal, state: str | None, requested_size: int, token: str
    ) -> Page[ApprovalRecord]:
        size = page_size(requested_size)
        scope = {"t": principal.tenant, "m": "ListApprovals", "state": state, "s": size}
        after = self._pages.decode(token, scope)
        rows = await self._repo.approvals.page(
            principal.tenant,
            state,
            after=None if after is None else _after_position(after),
            limit=size + 1,
        )
        return page_of(
            rows,
            size,
            lambda a: self._pages.encode([a.submit_time.isoformat(), a.approval_id], scope),
        )
