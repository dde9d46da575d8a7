"""Reading a running stack's PostgreSQL as its owner (the admin DSN): where the stack tests
take their expected values from, never from the code under test."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.stack_runner import RunningStack


async def admin_fetch(stack: RunningStack, sql: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of one query, on a connection of its own."""
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def admin_rows(stack: RunningStack, sql: str, *args: Any) -> list[asyncpg.Record]:
    """`admin_fetch` for a test outside an event loop."""
    return asyncio.run(admin_fetch(stack, sql, *args))
