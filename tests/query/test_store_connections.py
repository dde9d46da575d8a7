"""How the history store gives a connection back when its work broke (no database needed)."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc
import pytest

from services.common.errors import ServiceError
from services.query.store import HistoryStore


class FakeConnection:
    def __init__(self) -> None:
        self.terminated = False

    def terminate(self) -> None:
        self.terminated = True


class FakePool:
    def __init__(self) -> None:
        self.conn = FakeConnection()
        self.released: list[FakeConnection] = []

    async def acquire(self, **_options: float) -> FakeConnection:
        return self.conn

    async def release(self, conn: FakeConnection) -> None:
        self.released.append(conn)


async def test_a_broken_protocol_state_is_unavailable_and_the_connection_terminated() -> None:
    """What the soak met when PostgreSQL was killed mid-COPY: asyncpg's InternalClientError
    was an unhandled error (logged with a traceback); it is a 503 that can be retried."""
    pool = FakePool()
    store = HistoryStore(pool, acquire_timeout=1)  # type: ignore[arg-type]

    async def broken(_conn: Any) -> None:
        raise asyncpg.InternalClientError("cannot switch to state 15; another operation (2)")

    with pytest.raises(ServiceError) as refused:
        await store._run(broken)  # the one place every query goes through
    assert refused.value.code == grpc.StatusCode.UNAVAILABLE
    assert refused.value.reason == "DATABASE_UNAVAILABLE"
    assert pool.conn.terminated
    assert pool.released == [pool.conn]
