"""Approval requests: a version's submission for review and its decision (one open request
per version, enforced by a partial unique index)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.models.repositories.database import Database, Db, Sql, record, sql
from services.models.repositories.versions import VersionRecord, Versions


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


@dataclass(frozen=True)
class LockedRequest:
    """An approval request and what a decision on it needs to know, locked (with its
    version's row) by the transaction that decides it."""

    approval_id: str
    model_id: str
    version: int
    state: str
    submitted_by: str
    uploader: str
    version_sha256: str
    validation_state: str
    validation_reason: str


_SELECT = """
SELECT a.approval_id, a.model_id, m.name AS model_name, a.version, a.state, a.submitted_by,
       a.submit_comment, a.submit_time, coalesce(a.decided_by, '') AS decided_by,
       a.decision_comment, a.decide_time, a.sha256
  FROM approval_requests a JOIN models m USING (model_id)
"""


def opened(
    approval_id: uuid.UUID,
    tenant: str,
    model_id: uuid.UUID,
    version: int,
    *,
    actor: str,
    comment: str,
    sha256: str,
) -> Sql:
    return sql(
        """
        INSERT INTO approval_requests (approval_id, tenant_id, model_id, version, state,
            submitted_by, submit_comment, sha256)
        VALUES (:approval_id, :tenant, :model_id, :version, 'OPEN', :actor, :comment, :sha256)
        """,
        approval_id=approval_id,
        tenant=tenant,
        model_id=model_id,
        version=version,
        actor=actor,
        comment=comment,
        sha256=sha256,
    )


def decided(approval_id: uuid.UUID, state: str, *, actor: str, comment: str, sha256: str) -> Sql:
    return sql(
        """
        UPDATE approval_requests SET state = :state, decided_by = :actor,
            decision_comment = :comment, decide_time = now(), sha256 = :sha256
         WHERE approval_id = :approval_id
        """,
        approval_id=approval_id,
        state=state,
        actor=actor,
        comment=comment,
        sha256=sha256,
    )


def cancelled(model_id: uuid.UUID, version: int, *, actor: str, comment: str) -> Sql:
    """The version's open request, if any, cancelled (the version was archived)."""
    return sql(
        "UPDATE approval_requests SET state = 'CANCELLED', decided_by = :actor,"
        " decision_comment = :comment, decide_time = now()"
        " WHERE model_id = :model_id AND version = :version AND state = 'OPEN'",
        model_id=model_id,
        version=version,
        actor=actor,
        comment=comment,
    )


class ApprovalRequests:
    def __init__(self, database: Database) -> None:
        self._database = database

    @staticmethod
    async def lock(db: Db, tenant: str, approval_id: uuid.UUID) -> LockedRequest | None:
        row = await db.row(
            sql(
                """
                SELECT a.approval_id, a.model_id, a.version, a.state, a.submitted_by,
                       v.created_by AS uploader, v.sha256 AS version_sha256,
                       coalesce(j.state, 'PENDING') AS validation_state,
                       coalesce(j.reason, '') AS validation_reason
                  FROM approval_requests a
                  JOIN model_versions v USING (model_id, version)
                  LEFT JOIN validation_jobs j USING (model_id, version)
                 WHERE a.tenant_id = :tenant AND a.approval_id = :approval_id
                 FOR UPDATE OF a, v
                """,
                tenant=tenant,
                approval_id=approval_id,
            )
        )
        return None if row is None else record(LockedRequest, row)

    @staticmethod
    async def open_submitters(db: Db, model_id: uuid.UUID, version: int) -> tuple[str, ...]:
        """Who submitted the version's open request (read after the version's row lock,
        which a submission takes too)."""
        rows = await db.rows(
            sql(
                "SELECT submitted_by FROM approval_requests"
                " WHERE model_id = :model_id AND version = :version AND state = 'OPEN'",
                model_id=model_id,
                version=version,
            )
        )
        return tuple(row["submitted_by"] for row in rows)

    async def get(self, tenant: str, approval_id: uuid.UUID) -> ApprovalRecord | None:
        found = await self._select(
            "a.tenant_id = :tenant AND a.approval_id = :approval_id",
            {"tenant": tenant, "approval_id": approval_id},
            limit=1,
        )
        return found[0] if found else None

    async def page(
        self,
        tenant: str,
        state: str | None,
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[ApprovalRecord]:
        """Requests in the order they were submitted, from after `after` (submit time,
        approval id)."""
        where = "a.tenant_id = :tenant AND (CAST(:state AS text) IS NULL OR a.state = :state)"
        params: dict[str, Any] = {"tenant": tenant, "state": state}
        if after is not None:
            where += " AND (a.submit_time, a.approval_id) > (CAST(:after_time AS timestamptz),"
            where += " :after_id)"
            params |= {"after_time": after[0], "after_id": after[1]}
        return await self._select(where, params, limit=limit)

    async def _select(
        self, where: str, params: dict[str, Any], *, limit: int
    ) -> list[ApprovalRecord]:
        """Two queries whatever the page's size: the requests, then their versions."""
        async with self._database.connection() as db:
            rows = await db.rows(
                Sql(
                    f"{_SELECT} WHERE {where} ORDER BY a.submit_time, a.approval_id LIMIT :limit",
                    {**params, "limit": limit},
                )
            )
            keys = [(str(row["model_id"]), int(row["version"])) for row in rows]
            versions = await Versions.of(db, params["tenant"], keys)
        return [
            record(ApprovalRecord, row, model_version=versions.get(key))
            for row, key in zip(rows, keys, strict=True)
        ]
