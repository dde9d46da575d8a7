"""The one way the registry talks to PostgreSQL: a pooled SQLAlchemy connection's asyncpg
connection, statements written with `:name` parameters (`Sql`) and sent through `Db`.

Why asyncpg under SQLAlchemy's pool: the pool brings what the services rely on (sizing,
idle pings, invalidation, the pool gauges), and asyncpg's own statement cache prepares each
statement once per connection, without SQLAlchemy's per-execution compile and result
machinery, which cost the hottest read (GetModel) about a third of its CPU.

Every connection is in autocommit: a single-statement read needs no BEGIN/COMMIT round
trips; `Database.transaction` opens asyncpg's own transaction for writes. Connection
failures become UNAVAILABLE (DATABASE_UNAVAILABLE) and take the connection out of the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import socket
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, TypeVar, cast

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.errors import unavailable

Record = asyncpg.Record
T = TypeVar("T")


def database_unavailable() -> Exception:
    return unavailable(
        "DATABASE_UNAVAILABLE", "the registry database is unavailable; try again shortly"
    )


# Getting a connection from the pool: SQLAlchemy's errors, or asyncpg's wrapped in them.
_POOL_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)
# A statement on a connection that is gone (or a database that is restarting: "the
# database system is starting up" while PostgreSQL recovers after a crash).
_CONNECTION_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    OSError,
)


def _is_connection_error(exc: sqlalchemy.exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, _CONNECTION_DOWN):
            return True
        name = type(cause).__name__
        if "Connection" in name or "CannotConnect" in name or "Shutdown" in name:
            return True
        cause = cause.__cause__
    return False


# --- statements -------------------------------------------------------------------------------
_NAMED = re.compile(r"(?<![:\w]):(\w+)")  # `:name`, not `::type`


@functools.lru_cache(maxsize=1024)
def _positional(text: str, first: int) -> tuple[str, tuple[str, ...]]:
    """`text` with `:name` as asyncpg's `$n` (numbered from `first + 1`), and the names in
    the order of their numbers (a name used twice keeps one number)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${first + names.index(name) + 1}"

    return _NAMED.sub(number, text.strip()), tuple(names)


@dataclass(frozen=True)
class Sql:
    """A statement and the values of its `:name` parameters."""

    text: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def bound(self, first: int = 0) -> tuple[str, list[Any]]:
        text, names = _positional(self.text, first)
        return text, [self.params[name] for name in names]


def sql(text: str, **params: Any) -> Sql:
    return Sql(text, params)


class Db:
    """A connection (in a transaction or in autocommit) and the four ways to use it."""

    def __init__(self, conn: asyncpg.Connection[Record]) -> None:
        self._conn = conn

    async def rows(self, statement: Sql) -> list[Record]:
        text, args = statement.bound()
        return await self._conn.fetch(text, *args)

    async def row(self, statement: Sql) -> Record | None:
        text, args = statement.bound()
        return await self._conn.fetchrow(text, *args)

    async def value(self, statement: Sql) -> Any:
        text, args = statement.bound()
        return await self._conn.fetchval(text, *args)

    async def run(self, *writes: Sql) -> None:
        """Writes in one round trip: several become the data-modifying CTEs of a single
        `WITH … SELECT 1`, which PostgreSQL runs each exactly once and to completion (inside
        the caller's transaction, so still all or nothing). They see one snapshot, so none
        may depend on another's effect: each touches its own table."""
        if len(writes) == 1:
            text, args = writes[0].bound()
            await self._conn.execute(text, *args)
            return
        parts: list[str] = []
        args = []
        for n, write in enumerate(writes):
            text, values = write.bound(len(args))
            parts.append(f"w{n} AS ({text})")
            args += values
        await self._conn.execute("WITH " + ",\n".join(parts) + "\nSELECT 1", *args)


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Autocommit: no BEGIN/COMMIT round trips for single statements; `transaction`
        # begins asyncpg's own.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    # One statement on a pooled connection of its own, in autocommit (the same four as `Db`).
    async def rows(self, statement: Sql) -> list[Record]:
        async with self.connection() as db:
            return await db.rows(statement)

    async def row(self, statement: Sql) -> Record | None:
        async with self.connection() as db:
            return await db.row(statement)

    async def value(self, statement: Sql) -> Any:
        async with self.connection() as db:
            return await db.value(statement)

    async def run(self, *writes: Sql) -> None:
        async with self.connection() as db:
            await db.run(*writes)

    async def backlog(self, table: str, where: str) -> tuple[int, float]:
        """How many rows of `table` match `where` (both constants), and the age in seconds
        of the oldest of them by `create_time` (0 when none): a queue's gauges."""
        row = await self.row(
            sql(
                "SELECT count(*) AS matching,"  # noqa: S608 (constants; no values)
                " coalesce(extract(epoch FROM now() - min(create_time)), 0) AS age"
                f" FROM {table} WHERE {where}"
            )
        )
        assert row is not None
        return int(row["matching"]), float(row["age"])

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Db]:
        """A pooled connection in autocommit, for reads and single writes."""
        async with self._driver() as driver:
            yield Db(driver)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Db]:
        """A pooled connection in a transaction: committed when the block ends, rolled back
        when it raises."""
        async with self._driver() as driver, driver.transaction():
            yield Db(driver)

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection[Record]]:
        try:
            async with self._autocommit.connect() as conn:
                raw = await conn.get_raw_connection()
                driver = cast("asyncpg.Connection[Record]", raw.driver_connection)
                try:
                    yield driver
                except Exception as exc:
                    # A connection the server dropped while it sat in the pool may fail its
                    # next statement with asyncpg's InternalClientError ("cannot switch to
                    # state …") rather than a connection error: closed is closed.
                    if not isinstance(exc, _CONNECTION_DOWN) and not driver.is_closed():
                        raise
                    # SQLAlchemy never saw this error, so tell its pool what it would have
                    # done itself on a disconnect (engine/base.py, _handle_dbapi_exception):
                    # every connection made before now is stale (a database restart or
                    # failover drops them all), to be replaced at its next checkout rather
                    # than failing a request of its own; then this one is gone.
                    self._engine.sync_engine.pool._invalidate(raw, exc, _checkin=False)
                    await conn.invalidate(exc)
                    raise database_unavailable() from exc
                finally:
                    if not driver.is_closed() and driver.is_in_transaction():
                        # Its ROLLBACK never ran (cancelled, or the connection broke): a
                        # connection in a transaction must not go back to the pool.
                        await conn.invalidate()
        except _POOL_DOWN as exc:
            raise database_unavailable() from exc
        except sqlalchemy.exc.DBAPIError as exc:
            if _is_connection_error(exc):
                raise database_unavailable() from exc
            raise

    @contextlib.asynccontextmanager
    async def listening(
        self, channel: str, callback: Callable[[], None]
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """LISTEN on `channel` (a constant), calling `callback` on each notification, for as
        long as the block runs; it gets a probe that raises once the connection is gone."""
        async with self._driver() as driver:

            def on_notify(*_: object) -> None:
                callback()

            await driver.add_listener(channel, on_notify)

            async def alive() -> None:
                await driver.execute("SELECT 1")

            try:
                yield alive
            finally:
                with contextlib.suppress(Exception):
                    await driver.remove_listener(channel, on_notify)

    async def close(self) -> None:
        await self._engine.dispose()


def lease_owner() -> str:
    """Who holds a lease (a validation job's, an outbox event's): host, process and a random
    part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- rows -------------------------------------------------------------------------------------
def from_json(value: Any) -> Any:
    """A json/jsonb value as stored: asyncpg hands the text (the engine's codec) over."""
    return json.loads(value) if isinstance(value, str) else value


_FIELD_KINDS: dict[type[Any], tuple[tuple[str, bool], ...]] = {}


def _field_kinds(cls: type[Any]) -> tuple[tuple[str, bool], ...]:
    """Each field's name, and whether it holds JSON (a dict or list field)."""
    kinds = _FIELD_KINDS.get(cls)
    if kinds is None:
        hints = typing.get_type_hints(cls)
        kinds = tuple(
            (f.name, typing.get_origin(hints[f.name]) in (dict, list)) for f in fields(cls)
        )
        _FIELD_KINDS[cls] = kinds
    return kinds


class Row(Protocol):
    """An asyncpg record, or any mapping of column names."""

    def __getitem__(self, key: str, /) -> Any: ...


def record(cls: type[T], row: Row, **computed: Any) -> T:
    """A dataclass from a row: each field from the column of its name, or from `computed`.
    Ids (uuid) become their text, JSON columns of dict and list fields are decoded."""
    values: dict[str, Any] = {}
    for name, is_json in _field_kinds(cls):
        if name in computed:
            values[name] = computed[name]
            continue
        value = row[name]
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif is_json:
            value = from_json(value)
        values[name] = value
    return cls(**values)
