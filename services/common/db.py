"""Database engines (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.common.settings import Settings


def async_url(dsn: str) -> str:
    """Accept plain libpq URLs (`postgresql://…`) and use the asyncpg driver."""
    url = make_url(dsn)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    return url.render_as_string(hide_password=False)


def create_engine(dsn: str, settings: Settings) -> AsyncEngine:
    server_settings = {"application_name": "mlplane"}
    return create_async_engine(
        async_url(dsn),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": server_settings,
        },
    )
