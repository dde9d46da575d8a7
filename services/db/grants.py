"""Managing per-asset read grants (the `mlplane grant` command). Runs as the admin role."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.settings import Settings


@dataclass(frozen=True)
class GrantRow:
    grant_id: int
    tenant: str
    principal_kind: str
    principal: str
    asset_pattern: str
    created_by: str
    create_time: datetime


def admin_dsn(settings: Settings) -> str:
    """The admin DSN: the external one, or the embedded server of `mlplane up`."""
    if settings.database_url:
        return settings.database_url
    from services.stack.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(settings.state_dir)
    if not (settings.state_dir / "pg-superuser.password").exists():
        raise RuntimeError(
            f"no embedded database in {settings.state_dir}; run `mlplane up` first "
            "or set MLPLANE_DATABASE_URL"
        )
    return server.dsn()


async def add_grant(
    dsn: str, *, tenant: str, kind: str, principal: str, pattern: str, created_by: str
) -> GrantRow:
    if kind not in ("role", "subject"):
        raise ValueError("kind must be 'role' or 'subject'")
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """
            INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern,
                                      created_by)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, principal_kind, principal, asset_pattern)
              DO UPDATE SET created_by = asset_grants.created_by
            RETURNING *
            """,
            tenant,
            kind,
            principal,
            pattern,
            created_by,
        )
        assert row is not None  # INSERT … RETURNING always returns the row
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome, detail)"
            " VALUES ($1, $2, 'grant.add', $3, 'ok', $4::jsonb)",
            tenant,
            created_by,
            f"grant/{row['grant_pk']}",
            json.dumps({"kind": kind, "principal": principal, "pattern": pattern}),
        )
    finally:
        await conn.close()
    assert row is not None
    return _row(row)


async def list_grants(dsn: str, *, tenant: str | None) -> list[GrantRow]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT * FROM asset_grants WHERE $1::text IS NULL OR tenant_id = $1"
            " ORDER BY tenant_id, grant_pk",
            tenant,
        )
    finally:
        await conn.close()
    return [_row(r) for r in rows]


async def revoke_grant(dsn: str, grant_id: int, *, revoked_by: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "DELETE FROM asset_grants WHERE grant_pk = $1 RETURNING tenant_id", grant_id
            )
            if row is not None:
                await conn.execute(
                    "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome)"
                    " VALUES ($1, $2, 'grant.revoke', $3, 'ok')",
                    row["tenant_id"],
                    revoked_by,
                    f"grant/{grant_id}",
                )
    finally:
        await conn.close()
    return row is not None


def _row(row: asyncpg.Record) -> GrantRow:
    return GrantRow(
        grant_id=row["grant_pk"],
        tenant=row["tenant_id"],
        principal_kind=row["principal_kind"],
        principal=row["principal"],
        asset_pattern=row["asset_pattern"],
        created_by=row["created_by"],
        create_time=row["create_time"],
    )
