"""The audit log: who did what to which resource, when, and how it ended. Append-only (the
registry role may only INSERT and SELECT it).

`entry` is the one audit insert: a change runs it with its other writes (so the entry exists
exactly when the change does); `AuditLog.write` runs it alone; `AuditLog.failures` audits a
refused or broken operation after its transaction rolled back.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from services.common.errors import ServiceError
from services.common.tasks import to_the_end
from services.models.repositories.database import Database, Sql, record, sql

log = logging.getLogger("mlplane.models.audit")


@dataclass(frozen=True)
class AuditRecord:
    audit_pk: int
    time: datetime
    actor: str
    action: str
    resource: str
    outcome: str
    request_id: str
    detail: str  # the JSON object as stored


class Actor(Protocol):
    """Who an entry is about: a request's principal, or `Who` (an upload's uploader, the
    validation worker)."""

    @property
    def tenant(self) -> str: ...

    @property
    def subject(self) -> str: ...


@dataclass(frozen=True)
class Who:
    tenant: str
    subject: str


def entry(
    who: Actor,
    action: str,
    resource: str,
    outcome: str,
    *,
    request_id: str | None,
    detail: dict[str, Any],
) -> Sql:
    return sql(
        """
        INSERT INTO audit_log (tenant_id, subject, action, resource, outcome, request_id, detail)
        VALUES (:tenant, :subject, :action, :resource, :outcome, :request_id,
                CAST(:detail AS jsonb))
        """,
        tenant=who.tenant,
        subject=who.subject,
        action=action,
        resource=resource,
        outcome=outcome,
        request_id=request_id,
        detail=json.dumps(detail, default=str),
    )


def failure_outcome(error: BaseException) -> str:
    """What an audit entry says of a failed operation: the refusal's reason, or `cancelled`."""
    return error.reason if isinstance(error, ServiceError) else "cancelled"


class AuditLog:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def write(self, audit_entry: Sql) -> None:
        await self._database.run(audit_entry)

    @contextlib.asynccontextmanager
    async def failures(
        self,
        who: Actor,
        action: str,
        resource: str,
        *,
        request_id: str | None,
        audited: Callable[[BaseException], bool],
        detail: Callable[[BaseException], dict[str, Any]],
    ) -> AsyncIterator[None]:
        """Audit the block's failure, if `audited` says so, in an entry of its own (the
        block's transaction rolled back with it); the failure is then raised as it was. The
        entry is written even if the caller is cancelled meanwhile; a database that cannot
        take it is logged."""
        try:
            yield
        except BaseException as error:
            if audited(error):
                outcome = failure_outcome(error)
                failure = entry(
                    who, action, resource, outcome, request_id=request_id, detail=detail(error)
                )
                try:
                    await to_the_end(self.write(failure))
                except ServiceError:
                    log.warning(
                        "could not audit a failed %s of %s (database down)", action, resource
                    )
            raise

    async def for_version(
        self, tenant: str, model_id: str, version: int, *, before: int, limit: int
    ) -> list[AuditRecord]:
        """A version's audit entries, newest first, from below `before` (an audit_pk)."""
        rows = await self._database.rows(
            sql(
                """
                SELECT audit_pk, event_time AS time, subject AS actor, action, resource,
                       outcome, coalesce(request_id, '') AS request_id,
                       detail::text AS detail
                  FROM audit_log
                 WHERE tenant_id = :tenant AND audit_pk < :before
                   AND (resource = :resource
                        OR (detail->>'modelId' = :model_id
                            AND detail->>'version' = :version_text)
                        -- refusals of a decision name only the approval request
                        OR resource IN (SELECT 'approval/' || approval_id
                                          FROM approval_requests
                                         WHERE tenant_id = :tenant
                                           AND model_id = CAST(:model_id AS uuid)
                                           AND version = CAST(:version_text AS int)))
                 ORDER BY audit_pk DESC
                 LIMIT :limit
                """,
                tenant=tenant,
                before=before,
                resource=f"model/{model_id}/version/{version}",
                model_id=model_id,
                version_text=str(version),
                limit=limit,
            )
        )
        return [record(AuditRecord, row) for row in rows]
