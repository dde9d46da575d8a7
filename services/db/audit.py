"""Reading the append-only audit log (the `mlplane audit` command). Runs as the admin role."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class AuditRow:
    time: datetime
    tenant: str
    subject: str
    action: str
    resource: str
    outcome: str
    request_id: str | None
    detail: dict[str, Any]


async def read_audit(
    dsn: str,
    *,
    tenant: str | None = None,
    subject: str | None = None,
    model_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """Newest first. `model_id` matches uploads, archives and approvals of that model."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT event_time, tenant_id, subject, action, resource, outcome, request_id, detail
              FROM audit_log
             WHERE ($1::text IS NULL OR tenant_id = $1)
               AND ($2::text IS NULL OR subject = $2)
               AND ($3::text IS NULL OR resource LIKE 'model/' || $3 || '%'
                    OR detail->>'modelId' = $3)
               AND ($4::text IS NULL OR action LIKE $4 || '%')
               AND ($5::timestamptz IS NULL OR event_time >= $5)
               AND ($6::timestamptz IS NULL OR event_time < $6)
             ORDER BY audit_pk DESC
             LIMIT $7
            """,
            tenant,
            subject,
            model_id,
            action,
            since,
            until,
            limit,
        )
    finally:
        await conn.close()
    return [
        AuditRow(
            time=r["event_time"],
            tenant=r["tenant_id"],
            subject=r["subject"],
            action=r["action"],
            resource=r["resource"],
            outcome=r["outcome"],
            request_id=r["request_id"],
            detail=json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"],
        )
        for r in rows
    ]
