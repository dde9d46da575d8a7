"""Database engines (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from services.common.metrics import PoolUsage
from services.common.settings import Settings


def async_url(dsn: str) -> str:
    """Accept plain libpq URLs (`postgresql://…`) and use the asyncpg driver."""
    url = make_url(dsn)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


# A pooled connection idle for longer than this is pinged before it is handed
# out. SQLAlchemy's pool_pre_ping would ping on every checkout, and for asyncpg
# that is BEGIN; ";"; ROLLBACK: three round trips that cost a hot read (GetModel)
# more than its own query. A connection busy a moment ago is alive; one that
# died since (a database restart) fails its statement, SQLAlchemy invalidates
# the pool, and that one request gets UNAVAILABLE.
IDLE_PING_SECONDS = 2.0


def create_engine(dsn: str, settings: Settings) -> AsyncEngine:
    server_settings = {"application_name": "mlplane"}
    engine = create_async_engine(
        async_url(dsn),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": server_settings,
        },
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        last = record.info.get("checked_in")
        if last is not None and time.monotonic() - last < IDLE_PING_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool drops this connection and checks out (or opens) another.
            raise exc.DisconnectionError(str(error)) from error


def pool_usage(engine: AsyncEngine, max_size: int) -> PoolUsage:
    """The engine's pool now (for the `mlplane_db_pool_*` gauges); read it on its loop."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool):
        return PoolUsage(in_use=0, idle=0, max=max_size)
    return PoolUsage(in_use=pool.checkedout(), idle=pool.checkedin(), max=max_size)
