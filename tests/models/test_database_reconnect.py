"""The registry's statement layer (services/models/repositories/database.py) after PostgreSQL
drops every connection, as a restart or a failover does: the request that meets the first
dead connection gets UNAVAILABLE, and the pool replaces the others before they fail a
request each."""

from __future__ import annotations

import asyncio

import asyncpg

from services.common.db import create_engine
from services.common.errors import ServiceError
from services.models.repositories.database import Database, sql
from tests.models.conftest import RegistryDatabase

POOL = 4


async def test_one_request_fails_when_the_database_drops_every_connection(
    database: RegistryDatabase,
) -> None:
    settings = database.settings.model_copy(update={"db_pool_size": POOL})
    engine = create_engine(settings.registry_database_url or "", settings)
    db = Database(engine)
    try:
        # Every pooled connection opened and used a moment ago (so none is pinged first).
        gate = asyncio.Event()

        async def hold() -> int:
            async with db.connection() as conn:
                await gate.wait()
                return int(await conn.value(sql("SELECT pg_backend_pid()")))

        holders = [asyncio.create_task(hold()) for _ in range(POOL)]
        await asyncio.sleep(0.2)
        gate.set()
        pids = set(await asyncio.gather(*holders))
        assert len(pids) == POOL

        admin = await asyncpg.connect(database.admin_dsn)
        try:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
        finally:
            await admin.close()

        outcomes: list[str] = []
        for _ in range(POOL):
            try:
                await db.value(sql("SELECT 1"))
            except ServiceError as exc:
                outcomes.append(f"{exc.code.name} {exc.reason}")
            else:
                outcomes.append("ok")
        assert outcomes == ["UNAVAILABLE DATABASE_UNAVAILABLE"] + ["ok"] * (POOL - 1)
    finally:
        await engine.dispose()
