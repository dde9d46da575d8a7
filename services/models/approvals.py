"""The approval workflow: submit, approve, reject, archive.

Each transition is one transaction that locks the version row, checks the
current state, writes the new state, the status history, the audit entry and
the outbox event together, so an event exists exactly when its change does.
Separation of duties: whoever uploaded or submitted a version cannot decide it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.common.auth import Principal
from services.common.errors import ServiceError, invalid_argument, not_found, permission_denied
from services.common.metrics import OK, ApprovalMetrics
from services.common.pagination import Page, PageTokens, invalid_page_token, page_of, page_size
from services.models.repository import RegistryRepository, VersionRecord


def _after_position(after: Any) -> dict[str, Any]:
    """The (submit time, approval id) a signed page token carries, typed for asyncpg."""
    try:
        submitted, approval_id = after
        return {"t": datetime.fromisoformat(submitted), "aid": uuid.UUID(approval_id)}
    except (TypeError, ValueError) as exc:
        raise invalid_page_token() from exc


@dataclass(frozen=True)
class ApprovalRecord:
    approval_id: str
    model_id: str
    model_name: str
    version: int
    state: str
    submitted_by: str
    submit_comment: str
    submit_time: datetime
    decided_by: str
    decision_comment: str
    decide_time: datetime | None
    sha256: str
    model_version: VersionRecord | None


def _conflict(code: grpc.StatusCode, reason: str, message: str, **metadata: str) -> ServiceError:
    return ServiceError(code, reason, message, metadata=metadata)


def _validation_not_passed(state: str, reason: str) -> ServiceError:
    """Approval needs a passed validation report: evidence, not the uploader's claims."""
    if state == "FAILED":
        detail = f"its validation failed ({reason}); see the version's validation report"
    else:
        detail = f"its validation is still {state.lower()}; approve once it has passed"
    return _conflict(
        grpc.StatusCode.FAILED_PRECONDITION,
        "VALIDATION_NOT_PASSED",
        f"this version cannot be approved: {detail}",
        validationState=state,
        **({"validationReason": reason} if reason else {}),
    )


def _uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise invalid_argument(
            "INVALID_ID", f"{field} must be an id (a UUID)", field=field
        ) from exc


_BIND = re.compile(r"(?<![:\w]):(\w+)")


class _Writes:
    """The statements of one transition, sent as one: each becomes a data-modifying
    CTE of a single `WITH … SELECT 1`, which PostgreSQL runs exactly once and to
    completion. One round trip instead of five, inside the caller's transaction
    (so still all or nothing). They see one snapshot, so no statement may depend
    on another's effect; each touches its own table."""

    def __init__(self) -> None:
        self._statements: list[str] = []
        self.params: dict[str, Any] = {}

    def add(self, sql: str, params: dict[str, Any]) -> None:
        n = len(self._statements)
        self._statements.append(_BIND.sub(lambda m: f":{m.group(1)}_{n}", sql.strip()))
        used = set(_BIND.findall(sql))
        self.params.update({f"{k}_{n}": v for k, v in params.items() if k in used})

    async def run(self, conn: AsyncConnection) -> None:
        ctes = ",\n".join(f"w{n} AS ({sql})" for n, sql in enumerate(self._statements))
        await conn.execute(text(f"WITH {ctes}\nSELECT 1"), self.params)


_REFUSALS = (
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.ALREADY_EXISTS,
)


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

    async def _refused(
        self,
        principal: Principal,
        action: str,
        resource: str,
        error: ServiceError,
        request_id: str | None,
    ) -> None:
        # The transaction rolled back with the refusal; record it on its own.
        if error.code in _REFUSALS:
            await self._repo.audit(
                tenant=principal.tenant,
                subject=principal.subject,
                action=action,
                resource=resource,
                outcome=error.reason,
                request_id=request_id,
                detail={"message": error.message},
            )

    async def submit(
        self,
        principal: Principal,
        model_id: str,
        version: int,
        comment: str,
        request_id: str | None,
    ) -> ApprovalRecord:
        try:
            record = await self._submit(principal, model_id, version, comment, request_id)
        except ServiceError as error:
            self._metrics.recorded("submit", error.reason)
            await self._refused(
                principal, "approval.submit", f"model/{model_id}", error, request_id
            )
            raise
        self._metrics.recorded("submit", OK)
        return record

    async def _submit(
        self,
        principal: Principal,
        model_id: str,
        version: int,
        comment: str,
        request_id: str | None,
    ) -> ApprovalRecord:
        mid = _uuid(model_id, "modelId")
        if version < 0:
            raise invalid_argument("INVALID_VERSION", "version must be positive", field="version")
        async with self._repo.transaction() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT v.version, v.status, v.sha256 FROM model_versions v
                         WHERE v.tenant_id = :tenant AND v.model_id = :id
                           AND v.version = CASE WHEN :version = 0 THEN
                                 (SELECT max(version) FROM model_versions
                                   WHERE tenant_id = :tenant AND model_id = :id)
                               ELSE :version END
                         FOR UPDATE
                        """
                    ),
                    {"tenant": principal.tenant, "id": mid, "version": version},
                )
            ).one_or_none()
            if row is None:
                raise not_found(
                    "VERSION_NOT_FOUND",
                    f"model {model_id} has no version {version or '(any)'}",
                    modelId=model_id,
                )
            if row.status != "PENDING_APPROVAL":
                raise _conflict(
                    grpc.StatusCode.ALREADY_EXISTS,
                    "VERSION_NOT_PENDING",
                    f"version {row.version} is {row.status}; only PENDING_APPROVAL versions "
                    "can be submitted",
                    status=row.status,
                )
            approval_id = uuid.uuid4()
            params = {
                "approval_id": approval_id,
                "tenant": principal.tenant,
                "id": mid,
                "version": row.version,
                "actor": principal.subject,
                "comment": comment,
                "sha256": row.sha256,
            }
            writes = _Writes()
            writes.add(
                """
                INSERT INTO approval_requests (approval_id, tenant_id, model_id, version, state,
                    submitted_by, submit_comment, sha256)
                VALUES (:approval_id, :tenant, :id, :version, 'OPEN', :actor, :comment, :sha256)
                """,
                params,
            )
            self._transition(writes, params, "PENDING_APPROVAL", "IN_REVIEW")
            self._event(
                writes,
                principal.tenant,
                mid,
                "approval.requested",
                {
                    "approvalId": str(approval_id),
                    "modelId": model_id,
                    "version": row.version,
                    "submittedBy": principal.subject,
                    "sha256": row.sha256,
                    "comment": comment,
                },
            )
            self._audit(
                writes,
                principal,
                "approval.submit",
                f"approval/{approval_id}",
                "ok",
                request_id,
                {"modelId": model_id, "version": row.version},
            )
            await writes.run(conn)
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
        try:
            record = await self._decide(principal, approval_id, approve, comment, request_id)
        except ServiceError as error:
            self._metrics.recorded(kind, error.reason)
            await self._refused(principal, action, f"approval/{approval_id}", error, request_id)
            raise
        self._metrics.recorded(kind, OK)
        return record

    async def _decide(
        self,
        principal: Principal,
        approval_id: str,
        approve: bool,
        comment: str,
        request_id: str | None,
    ) -> ApprovalRecord:
        aid = _uuid(approval_id, "approvalId")
        if not approve and not comment.strip():
            raise invalid_argument(
                "COMMENT_REQUIRED", "a rejection needs a comment saying why", field="comment"
            )
        action = "approval.approve" if approve else "approval.reject"
        async with self._repo.transaction() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        SELECT a.*, v.created_by AS uploader, v.sha256 AS version_sha256,
                               coalesce(j.state, 'PENDING') AS validation_state,
                               coalesce(j.reason, '') AS validation_reason
                          FROM approval_requests a
                          JOIN model_versions v USING (model_id, version)
                          LEFT JOIN validation_jobs j USING (model_id, version)
                         WHERE a.tenant_id = :tenant AND a.approval_id = :aid
                         FOR UPDATE OF a, v
                        """
                    ),
                    {"tenant": principal.tenant, "aid": aid},
                )
            ).one_or_none()
            if row is None:
                raise not_found("APPROVAL_NOT_FOUND", f"approval {approval_id} does not exist")
            if row.state != "OPEN":
                raise _conflict(
                    grpc.StatusCode.ABORTED,
                    "ALREADY_DECIDED",
                    f"approval {approval_id} is already {row.state}",
                    state=row.state,
                )
            if principal.subject in (row.submitted_by, row.uploader):
                raise permission_denied(
                    "SEPARATION_OF_DUTIES",
                    "the uploader or submitter of a version cannot decide on it",
                )
            if approve and row.validation_state != "PASSED":
                raise _validation_not_passed(row.validation_state, row.validation_reason)
            state, status = ("APPROVED", "APPROVED") if approve else ("REJECTED", "REJECTED")
            params = {
                "aid": aid,
                "tenant": principal.tenant,
                "id": row.model_id,
                "version": row.version,
                "actor": principal.subject,
                "comment": comment,
                "state": state,
                "sha256": row.version_sha256,
            }
            writes = _Writes()
            writes.add(
                """
                UPDATE approval_requests SET state = :state, decided_by = :actor,
                    decision_comment = :comment, decide_time = now(), sha256 = :sha256
                 WHERE approval_id = :aid
                """,
                params,
            )
            self._transition(writes, params, "IN_REVIEW", status)
            self._event(
                writes,
                principal.tenant,
                row.model_id,
                "approval.decided",
                {
                    "approvalId": approval_id,
                    "modelId": str(row.model_id),
                    "version": row.version,
                    "decision": state,
                    "decidedBy": principal.subject,
                    "sha256": row.version_sha256,
                    "comment": comment,
                },
            )
            self._audit(
                writes,
                principal,
                action,
                f"approval/{approval_id}",
                state.lower(),
                request_id,
                {"modelId": str(row.model_id), "version": row.version},
            )
            await writes.run(conn)
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
        try:
            await self._archive(principal, model_id, version, comment, request_id)
        except ServiceError as error:
            self._metrics.recorded("archive", error.reason)
            await self._refused(
                principal,
                "model.archive",
                f"model/{model_id}/version/{version}",
                error,
                request_id,
            )
            raise
        self._metrics.recorded("archive", OK)

    async def _archive(
        self,
        principal: Principal,
        model_id: str,
        version: int,
        comment: str,
        request_id: str | None,
    ) -> None:
        mid = _uuid(model_id, "modelId")
        async with self._repo.transaction() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT status, created_by FROM model_versions WHERE tenant_id = :tenant"
                        " AND model_id = :id AND version = :version FOR UPDATE"
                    ),
                    {"tenant": principal.tenant, "id": mid, "version": version},
                )
            ).one_or_none()
            if row is None:
                raise not_found(
                    "VERSION_NOT_FOUND",
                    f"model {model_id} has no version {version}",
                    modelId=model_id,
                )
            if row.status == "ARCHIVED":
                raise _conflict(
                    grpc.StatusCode.ABORTED,
                    "ALREADY_ARCHIVED",
                    f"version {version} is already ARCHIVED",
                    status=row.status,
                )
            # Archiving cancels an open review: while one is open, the same separation of
            # duties as a decision applies (read after the row lock, which submit takes too).
            if row.status == "IN_REVIEW" and principal.subject in (
                row.created_by,
                *await self._open_submitters(conn, mid, version),
            ):
                raise permission_denied(
                    "SEPARATION_OF_DUTIES",
                    "the uploader or submitter of a version cannot archive it while it is in "
                    "review (archiving cancels the review); another approver can",
                )
            params = {
                "tenant": principal.tenant,
                "id": mid,
                "version": version,
                "actor": principal.subject,
                "comment": comment,
            }
            writes = _Writes()
            writes.add(
                "UPDATE approval_requests SET state = 'CANCELLED', decided_by = :actor,"
                " decision_comment = :comment, decide_time = now()"
                " WHERE model_id = :id AND version = :version AND state = 'OPEN'",
                params,
            )
            self._transition(writes, params, row.status, "ARCHIVED")
            self._audit(
                writes,
                principal,
                "model.archive",
                f"model/{model_id}/version/{version}",
                "ok",
                request_id,
                {},
            )
            await writes.run(conn)

    async def _open_submitters(
        self, conn: AsyncConnection, model_id: uuid.UUID, version: int
    ) -> list[str]:
        rows = await conn.execute(
            text(
                "SELECT submitted_by FROM approval_requests"
                " WHERE model_id = :id AND version = :version AND state = 'OPEN'"
            ),
            {"id": model_id, "version": version},
        )
        return [r.submitted_by for r in rows]

    # --- reads --------------------------------------------------------------------------
    async def get(self, principal: Principal, approval_id: str) -> ApprovalRecord:
        aid = _uuid(approval_id, "approvalId")
        async with self._repo.transaction(read_only=True) as conn:
            rows = await self._select(
                conn,
                "a.tenant_id = :tenant AND a.approval_id = :aid",
                {"tenant": principal.tenant, "aid": aid},
                limit=1,
            )
        if not rows:
            raise not_found("APPROVAL_NOT_FOUND", f"approval {approval_id} does not exist")
        return await self._with_version(principal, rows[0])

    async def list_requests(
        self, principal: Principal, state: str | None, requested_size: int, token: str
    ) -> Page[ApprovalRecord]:
        size = page_size(requested_size)
        scope = {"t": principal.tenant, "m": "ListApprovals", "state": state, "s": size}
        after = self._pages.decode(token, scope)
        where = "a.tenant_id = :tenant AND (CAST(:state AS text) IS NULL OR a.state = :state)"
        params: dict[str, Any] = {"tenant": principal.tenant, "state": state}
        if after is not None:
            where += " AND (a.submit_time, a.approval_id) > (CAST(:t AS timestamptz), :aid)"
            params |= _after_position(after)
        async with self._repo.transaction(read_only=True) as conn:
            rows = await self._select(conn, where, params, limit=size + 1)
        records = [await self._with_version(principal, r) for r in rows[:size]]
        return page_of(
            [*records, *rows[size:]],
            size,
            lambda a: self._pages.encode([a.submit_time.isoformat(), a.approval_id], scope),
        )

    async def _with_version(self, principal: Principal, row: ApprovalRecord) -> ApprovalRecord:
        version = await self._repo.get_version(principal.tenant, row.model_id, row.version)
        return ApprovalRecord(**{**row.__dict__, "model_version": version})

    @staticmethod
    async def _select(
        conn: AsyncConnection, where: str, params: dict[str, Any], *, limit: int
    ) -> list[ApprovalRecord]:
        rows = await conn.execute(
            text(
                f"""
                SELECT a.*, m.name AS model_name FROM approval_requests a
                  JOIN models m USING (model_id)
                 WHERE {where}
                 ORDER BY a.submit_time, a.approval_id
                 LIMIT {int(limit)}
                """  # noqa: S608 (fixed clauses; values are bound)
            ),
            params,
        )
        return [
            ApprovalRecord(
                approval_id=str(r.approval_id),
                model_id=str(r.model_id),
                model_name=r.model_name,
                version=int(r.version),
                state=r.state,
                submitted_by=r.submitted_by,
                submit_comment=r.submit_comment,
                submit_time=r.submit_time,
                decided_by=r.decided_by or "",
                decision_comment=r.decision_comment,
                decide_time=r.decide_time,
                sha256=r.sha256,
                model_version=None,
            )
            for r in rows
        ]

    # --- shared writes ------------------------------------------------------------------
    @staticmethod
    def _transition(
        writes: _Writes, params: dict[str, Any], from_status: str, to_status: str
    ) -> None:
        values = {**params, "from": from_status, "to": to_status}
        writes.add(
            "UPDATE model_versions SET status = :to, update_time = now()"
            " WHERE model_id = :id AND version = :version",
            values,
        )
        writes.add(
            "INSERT INTO model_version_status_history (model_id, version, from_status,"
            " to_status, actor, comment) VALUES (:id, :version, :from, :to, :actor, :comment)",
            values,
        )

    @staticmethod
    def _event(
        writes: _Writes, tenant: str, model_id: uuid.UUID, kind: str, payload: dict[str, Any]
    ) -> None:
        event_id = uuid.uuid4()
        body = {"id": str(event_id), "type": kind, "tenant": tenant, **payload}
        writes.add(
            "INSERT INTO outbox_events (event_id, tenant_id, model_id, event_type, payload)"
            " VALUES (:eid, :tenant, :mid, :kind, CAST(:payload AS jsonb))",
            {
                "eid": event_id,
                "tenant": tenant,
                "mid": model_id,
                "kind": kind,
                "payload": json.dumps(body),
            },
        )

    @staticmethod
    def _audit(
        writes: _Writes,
        principal: Principal,
        action: str,
        resource: str,
        outcome: str,
        request_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        writes.add(
            "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome, request_id,"
            " detail) VALUES (:tenant, :subject, :action, :resource, :outcome, :rid,"
            " CAST(:detail AS jsonb))",
            {
                "tenant": principal.tenant,
                "subject": principal.subject,
                "action": action,
                "resource": resource,
                "outcome": outcome,
                "rid": request_id,
                "detail": json.dumps(detail),
            },
        )
