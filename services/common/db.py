"""Database engines (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

from services.common.metrics import PoolUsage
from services.common.settings import Settings

# libpq's TLS parameters, as DSNs carry them (`?sslmode=require`, as RDS documents it).
# asyncpg reads every one of them from a DSN (`asyncpg.connect(dsn)`: the QueryService's
# pool, the grant and audit commands), but SQLAlchemy's asyncpg dialect turns a URL's query
# into keyword arguments of `asyncpg.connect()`, which takes none of them but `ssl`
# ("connect() got an unexpected keyword argument 'sslmode'": sqlalchemy#6275, asyncpg#737).
# So for the engines (ModelRegistry, `mlplane db setup`): `sslmode` becomes `ssl`, which
# takes libpq's mode names, and the certificate parameters reach asyncpg in a DSN of their
# own (the `dsn` argument; the URL's host, user and database still come as keywords).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_DSN_ONLY_TLS = (
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslpassword",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
)


def _last(value: str | tuple[str, ...]) -> str:
    # A repeated parameter: the last one counts, as with libpq and asyncpg.
    return value[-1] if isinstance(value, tuple) else value


def _asyncpg_url(dsn: str) -> tuple[URL, dict[str, str]]:
    """The engine's URL, and the TLS parameters it cannot carry (see above)."""
    url = make_url(dsn)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    if url.drivername != "postgresql+asyncpg":
        return url, {}
    query = {key: _last(value) for key, value in url.query.items()}
    sslmode = query.pop("sslmode", None)
    if sslmode is not None:
        if sslmode not in SSL_MODES:
            raise ValueError(
                f"the database URL's sslmode must be one of {', '.join(SSL_MODES)}, not {sslmode!r}"
            )
        if query.get("ssl", sslmode) != sslmode:
            raise ValueError("the database URL's sslmode and ssl disagree")
        query["ssl"] = sslmode
    tls = {key: query.pop(key) for key in _DSN_ONLY_TLS if key in query}
    return url.set(query=query), tls


def async_url(dsn: str) -> str:
    """Accept plain libpq URLs (`postgresql://…`, `?sslmode=…`) and use the asyncpg driver.

    Pass `tls_connect_args(dsn)` to the engine too: certificate files (`sslrootcert`, …)
    are not part of this URL.
    """
    url, _tls = _asyncpg_url(dsn)
    return url.render_as_string(hide_password=False)


def tls_connect_args(dsn: str) -> dict[str, Any]:
    """`connect_args` for an engine on `async_url(dsn)`: the DSN's certificate parameters."""
    _url, tls = _asyncpg_url(dsn)
    return {"dsn": f"postgresql://?{urlencode(tls)}"} if tls else {}


# A pooled connection idle for longer than this is pinged before it is handed
# out. SQLAlchemy's pool_pre_ping would ping on every checkout, and for asyncpg
# that is BEGIN; ";"; ROLLBACK: three round trips that cost a hot read (GetModel)
# more than its own query. A connection busy a moment ago is alive; one that
# died since (a database restart) fails its statement, the whole pool is
# invalidated (services/models/repositories/database.py does what SQLAlchemy
# would), and that one request gets UNAVAILABLE.
IDLE_PING_SECONDS = 2.0


def create_engine(dsn: str, settings: Settings) -> AsyncEngine:
    server_settings = {"application_name": "mlplane"}
    engine = create_async_engine(
        async_url(dsn),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={
            **tls_connect_args(dsn),
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
