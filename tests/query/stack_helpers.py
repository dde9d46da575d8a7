"""What the QueryService's stack tests share: clients through the gateway, tokens, and
reading PostgreSQL as the admin (where expected values come from)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from tests.stack_runner import RunningStack


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def auth(stack: RunningStack, *roles: str, tenant: str = "demo") -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.tokens.valid(*roles, tenant=tenant)}"}


def md(stack: RunningStack, *roles: str, tenant: str = "demo") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {stack.tokens.valid(*roles, tenant=tenant)}"),)


async def admin_fetch(stack: RunningStack, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
