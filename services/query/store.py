"""Everything the QueryService reads from (and the little it records in) PostgreSQL.

Kept whole (over 400 lines): every statement the read-only query role runs, reviewed together.

It connects as the read-only query role. The export hot path is asyncpg's
COPY ... TO STDOUT, streamed chunk by chunk with backpressure: a slow client
slows the database cursor instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

import asyncpg
import grpc
from asyncpg.pool import PoolConnectionProxy

from services.common.errors import ServiceError, unavailable
from services.common.metrics import PoolUsage
from services.common.tasks import to_the_end
from services.query.grants import Grant
from services.query.request import ExportQuery

T = TypeVar("T")
# What the pool hands out; behaves as a connection.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

# A few chunks of ~15 KiB in flight between the database and the encoder.
_QUEUE_CHUNKS = 64


@dataclass(frozen=True)
class TagRow:
    tag_pk: int
    name: str
    unit: str
    description: str


@dataclass(frozen=True)
class AssetRow:
    asset_pk: int
    asset_id: str
    display_name: str
    tags: list[TagRow]
    first_time: datetime | None
    last_time: datetime | None


@dataclass(frozen=True)
class FailureEventRow:
    event_pk: int
    start_time: datetime
    end_time: datetime | None
    failure_mode: str
    description: str


@dataclass(frozen=True)
class ExportRecord:
    export_id: str
    asset_id: str
    start_time: datetime
    end_time: datetime
    tags: list[str]
    resolution_seconds: int | None
    encoding: str
    status: str
    row_count: int | None
    sha256: str | None
    subject: str
    create_time: datetime


_DB_DOWN = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def database_unavailable() -> ServiceError:
    return unavailable(
        "DATABASE_UNAVAILABLE", "the history database is unavailable; try again shortly"
    )


class _ClientIdle(Exception):
    """The consumer took no chunk within the idle timeout."""


@dataclass(frozen=True)
class _End:
    error: BaseException | None


def export_idle_timeout(seconds: float) -> ServiceError:
    shown = f"{seconds:g}"
    return ServiceError(
        grpc.StatusCode.DEADLINE_EXCEEDED,
        "EXPORT_IDLE_TIMEOUT",
        f"the export was ended because its client read nothing for {shown} s",
        metadata={"idleTimeoutSeconds": shown},
    )


class HistoryStore:
    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], *, acquire_timeout: float) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout

    @classmethod
    async def open(
        cls, dsn: str, *, pool_size: int, connect_timeout: float, statement_timeout: float
    ) -> HistoryStore:
        # min_size=0: the service starts (and answers 503) while the database is down.
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=pool_size,
            timeout=connect_timeout,
            command_timeout=None,
            server_settings={
                "application_name": "mlplane-query",
                "TimeZone": "UTC",
                "DateStyle": "ISO",
                "default_transaction_read_only": "on",
                "statement_timeout": str(int(statement_timeout * 1000)),
                "extra_float_digits": "1",
            },
        )
        return cls(pool, acquire_timeout=connect_timeout)

    async def close(self) -> None:
        await self._pool.close()

    def pool_usage(self) -> PoolUsage:
        size, idle = self._pool.get_size(), self._pool.get_idle_size()
        return PoolUsage(in_use=size - idle, idle=idle, max=self._pool.get_max_size())

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        try:
            conn = await self._pool.acquire(timeout=self._acquire_timeout)
        except _DB_DOWN as exc:
            raise database_unavailable() from exc
        clean = False
        try:
            yield conn
            clean = True
        except _DB_DOWN as exc:
            raise database_unavailable() from exc
        except asyncpg.InternalClientError as exc:
            # The client's protocol state is broken ("cannot switch to state 15; another
            # operation is in progress"): seen when the server died mid-COPY (bench/soak.py).
            # The connection is terminated below; the caller may try again.
            raise database_unavailable() from exc
        except asyncpg.PostgresError:
            clean = True  # the server refused a statement; the session is in sync
            raise
        finally:
            await self._give_back(conn, clean=clean)

    async def _give_back(self, conn: Connection, *, clean: bool) -> None:
        """Return a connection to the pool in a state the next caller can use.

        A connection whose work ended abnormally (cancelled, or failed mid-protocol, as
        an abandoned COPY does) is terminated rather than reset: resetting one whose
        COPY is still in flight is what fails with asyncpg's "cannot switch to state 15;
        another operation is in progress" (MagicStack/asyncpg#784). The pool's slot stays,
        and the next acquire opens a fresh connection in it.
        """
        if not clean:
            with contextlib.suppress(Exception):
                conn.terminate()
        # Waited for to its end even if this task is cancelled (again) meanwhile: the
        # connection must be back before the export's share of the pool is.
        with contextlib.suppress(Exception):  # a failed reset: asyncpg terminated it
            await to_the_end(self._pool.release(conn))

    async def _run(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        async with self._connection() as conn:
            return await work(conn)

    async def _read(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """A read: retried once on a fresh connection when the pooled one turns out to be
        dead (the database restarted since it was opened), so the first callers after a
        restart are answered instead of getting a 503 each for every stale connection."""
        for attempt in (1, 2):
            try:
                return await self._run(work)
            except ServiceError as error:
                cause = error.__cause__
                stale = isinstance(
                    cause, (asyncpg.ConnectionDoesNotExistError, asyncpg.AdminShutdownError)
                )
                if attempt == 2 or not stale:
                    raise
                # Every idle connection opened before the restart is dead too.
                await self._pool.expire_connections()
        raise AssertionError("unreachable")

    # --- reads ----------------------------------------------------------------
    async def grants_for(self, tenant: str) -> list[Grant]:
        rows = await self._read(
            lambda c: c.fetch(
                "SELECT principal_kind, principal, asset_pattern FROM asset_grants"
                " WHERE tenant_id = $1",
                tenant,
            )
        )
        return [Grant(r["principal_kind"], r["principal"], r["asset_pattern"]) for r in rows]

    async def list_assets(self, tenant: str, *, after: str, limit: int) -> list[AssetRow]:
        rows = await self._read(
            lambda c: c.fetch(
                """
                SELECT a.asset_pk, a.asset_id, a.display_name,
                       (SELECT min(ts) FROM tag_data d WHERE d.asset_pk = a.asset_pk) AS first_time,
                       (SELECT max(ts) FROM tag_data d WHERE d.asset_pk = a.asset_pk) AS last_time,
                       coalesce(
                         (SELECT json_agg(json_build_array(t.tag_pk, t.name, t.unit, t.description)
                                          ORDER BY t.name)
                            FROM tags t WHERE t.asset_pk = a.asset_pk), '[]') AS tags
                  FROM assets a
                 WHERE a.tenant_id = $1 AND a.asset_id > $2
                 ORDER BY a.asset_id
                 LIMIT $3
                """,
                tenant,
                after,
                limit,
            )
        )
        return [_asset(r) for r in rows]

    async def find_asset(
        self, tenant: str, asset_id: str, *, with_range: bool = False
    ) -> AssetRow | None:
        """One asset with its tags; its first and last sample times only `with_range`
        (two index probes an export does not need)."""
        times = (
            "(SELECT min(ts) FROM tag_data d WHERE d.asset_pk = a.asset_pk) AS first_time,"
            " (SELECT max(ts) FROM tag_data d WHERE d.asset_pk = a.asset_pk) AS last_time"
            if with_range
            else "NULL AS first_time, NULL AS last_time"
        )
        row = await self._read(
            lambda c: c.fetchrow(
                f"""
                SELECT a.asset_pk, a.asset_id, a.display_name, {times},
                       coalesce(
                         (SELECT json_agg(json_build_array(t.tag_pk, t.name, t.unit, t.description)
                                          ORDER BY t.name)
                            FROM tags t WHERE t.asset_pk = a.asset_pk), '[]') AS tags
                  FROM assets a WHERE a.tenant_id = $1 AND a.asset_id = $2
                """,  # noqa: S608 (a fixed choice of two column lists; values are bound)
                tenant,
                asset_id,
            )
        )
        return None if row is None else _asset(row)

    async def count_rows_up_to(
        self, asset_pk: int, query: ExportQuery, tag_pks: list[int], cap: int
    ) -> int:
        sql, args = _select(asset_pk, query, tag_pks, columns="1", order=False)
        count = await self._read(
            lambda c: c.fetchval(
                f"SELECT count(*) FROM ({sql} LIMIT {int(cap) + 1}) AS capped",  # noqa: S608
                *args,
            )
        )
        return int(count)

    async def get_export(self, tenant: str, export_id: str) -> ExportRecord | None:
        row = await self._read(
            lambda c: c.fetchrow(
                "SELECT * FROM exports WHERE tenant_id = $1 AND export_id = $2",
                tenant,
                uuid.UUID(export_id),
            )
        )
        return None if row is None else _export_record(row)

    async def list_exports(
        self,
        tenant: str,
        subject: str,
        *,
        before: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[ExportRecord]:
        """A subject's exports, newest first, from just before `before` (a page's last)."""
        rows = await self._read(
            lambda c: c.fetch(
                """
                SELECT * FROM exports
                 WHERE tenant_id = $1 AND subject = $2
                   AND ($3::timestamptz IS NULL OR (create_time, export_id) < ($3, $4))
                 ORDER BY create_time DESC, export_id DESC
                 LIMIT $5
                """,
                tenant,
                subject,
                before[0] if before else None,
                before[1] if before else None,
                limit,
            )
        )
        return [_export_record(r) for r in rows]

    async def list_failure_events(
        self,
        asset_pk: int,
        *,
        start: datetime | None,
        end: datetime | None,
        after: tuple[datetime, int] | None,
        limit: int,
    ) -> list[FailureEventRow]:
        """Failures starting in [start, end), ordered by (start_time, event_pk),
        resuming after the `after` position."""
        rows = await self._read(
            lambda c: c.fetch(
                """
                SELECT event_pk, start_time, end_time, failure_mode, description
                  FROM failure_events
                 WHERE asset_pk = $1
                   AND ($2::timestamptz IS NULL OR start_time >= $2)
                   AND ($3::timestamptz IS NULL OR start_time < $3)
                   AND ($4::timestamptz IS NULL OR (start_time, event_pk) > ($4, $5::bigint))
                 ORDER BY start_time, event_pk
                 LIMIT $6
                """,
                asset_pk,
                start,
                end,
                after[0] if after else None,
                after[1] if after else None,
                limit,
            )
        )
        return [
            FailureEventRow(
                event_pk=r["event_pk"],
                start_time=r["start_time"],
                end_time=r["end_time"],
                failure_mode=r["failure_mode"],
                description=r["description"],
            )
            for r in rows
        ]

    # --- the export stream ----------------------------------------------------
    async def copy_out(
        self,
        asset_pk: int,
        query: ExportQuery,
        tag_pks: list[int],
        *,
        csv_tag_names: dict[int, str] | None = None,
        idle_timeout: float | None = None,
        on_release: Callable[[], None] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """COPY the export's rows out, as binary (default) or CSV with a header.

        A producer task owns the connection: it runs the COPY into a bounded queue and
        gives the connection back when the COPY ends, however it ends, then calls
        `on_release`. When the consumer takes no chunk for `idle_timeout` seconds (its
        client stopped reading) the producer gives up: the connection goes back at once,
        and the consumer, if it ever reads on, gets the chunks already queued and then
        `export_idle_timeout`. When the consumer goes away (client gone), the producer
        is cancelled and the connection terminated (a COPY in flight cannot be reset).
        """
        if csv_tag_names is not None:
            sql, args = _csv_select(asset_pk, query, tag_pks, csv_tag_names)
            fmt: dict[str, Any] = {"format": "csv", "header": True}
        else:
            sql, args = _select(asset_pk, query, tag_pks, columns=None, order=True)
            fmt = {"format": "binary"}
        queue: asyncio.Queue[bytes | _End] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)

        async def sink(chunk: bytes) -> None:
            if not queue.full():
                queue.put_nowait(chunk)
                return
            try:
                await asyncio.wait_for(queue.put(chunk), idle_timeout)
            except TimeoutError:
                raise _ClientIdle from None

        async def produce() -> None:
            end = _End(None)
            try:
                async with self._connection() as conn:
                    await conn.copy_from_query(sql, *args, output=sink, **fmt)
            except _ClientIdle:
                assert idle_timeout is not None
                end = _End(export_idle_timeout(idle_timeout))
            except Exception as error:  # handed to the consumer, raised there
                end = _End(error)
            finally:
                if on_release is not None:
                    on_release()
            await queue.put(end)

        task = asyncio.create_task(produce())
        try:
            while not isinstance(item := await queue.get(), _End):
                yield item
            if item.error is not None:
                raise item.error
        finally:
            if not task.done():
                # The consumer went away: stop the COPY and wait until the connection is
                # back (terminated: see _give_back), even if cancelled again meanwhile.
                task.cancel()
                await asyncio.wait({task})

    # --- the only writes: through SECURITY DEFINER functions ------------------
    async def _write(
        self, statements: list[tuple[str, tuple[Any, ...]]], *, durable: bool = True
    ) -> None:
        async def work(conn: Connection) -> None:
            async with conn.transaction():
                # The role's sessions default to read-only; these functions are its
                # only write path, and they need a read-write transaction.
                await conn.execute("SET TRANSACTION READ WRITE")
                if not durable:
                    await conn.execute("SET LOCAL synchronous_commit = off")
                for sql, args in statements:
                    await conn.execute(sql, *args)

        await self._run(work)

    async def begin_export(
        self, export_id: str, tenant: str, subject: str, query: ExportQuery, request_id: str | None
    ) -> None:
        # Only a "running" marker: it may skip the WAL flush (one fsync less per
        # export); what must survive a crash is written when the export ends.
        try:
            await self._begin_export(export_id, tenant, subject, query, request_id)
        except asyncpg.UniqueViolationError as exc:
            # Only a download link names its export id: this one was used already.
            raise ServiceError(
                grpc.StatusCode.UNAUTHENTICATED,
                "LINK_INVALID",
                "this download link was used already; create a new one",
            ) from exc

    async def _begin_export(
        self, export_id: str, tenant: str, subject: str, query: ExportQuery, request_id: str | None
    ) -> None:
        await self._write(
            [
                (
                    "SELECT mlplane_begin_export($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    (
                        uuid.UUID(export_id),
                        tenant,
                        subject,
                        query.asset_id,
                        query.start,
                        query.end,
                        list(query.tags),
                        query.resolution_seconds,
                        query.encoding,
                        request_id,
                    ),
                )
            ],
            durable=False,
        )

    async def finish_export(
        self,
        export_id: str,
        status: str,
        row_count: int,
        sha256: str | None,
        *,
        audit: AuditEntry,
    ) -> None:
        """Close the manifest and audit the export in one durable transaction."""
        await self._write(
            [
                (
                    "SELECT mlplane_finish_export($1, $2, $3, $4)",
                    (uuid.UUID(export_id), status, row_count, sha256),
                ),
                _audit_statement(audit),
            ]
        )

    async def audit(self, entry: AuditEntry) -> None:
        await self._write([_audit_statement(entry)])


@dataclass(frozen=True)
class AuditEntry:
    tenant: str
    subject: str
    action: str
    resource: str
    outcome: str
    request_id: str | None
    detail: dict[str, Any]


def _audit_statement(entry: AuditEntry) -> tuple[str, tuple[Any, ...]]:
    return (
        "SELECT mlplane_audit($1, $2, $3, $4, $5, $6, $7::jsonb)",
        (
            entry.tenant,
            entry.subject,
            entry.action,
            entry.resource,
            entry.outcome,
            entry.request_id,
            json.dumps(entry.detail, default=str),
        ),
    )


def _asset(row: asyncpg.Record) -> AssetRow:
    tags = json.loads(row["tags"]) if isinstance(row["tags"], str) else row["tags"]
    return AssetRow(
        asset_pk=row["asset_pk"],
        asset_id=row["asset_id"],
        display_name=row["display_name"],
        tags=[TagRow(int(t[0]), t[1], t[2], t[3]) for t in tags],
        first_time=row["first_time"],
        last_time=row["last_time"],
    )


def _where(asset_pk: int, query: ExportQuery, tag_pks: list[int]) -> tuple[str, list[Any]]:
    args: list[Any] = [asset_pk, query.start, query.end]
    where = "d.asset_pk = $1 AND d.ts >= $2 AND d.ts < $3"
    if query.tags:
        args.append(tag_pks)
        where += " AND d.tag_pk = ANY($4::int[])"
    return where, args


def _select(
    asset_pk: int, query: ExportQuery, tag_pks: list[int], *, columns: str | None, order: bool
) -> tuple[str, list[Any]]:
    where, args = _where(asset_pk, query, tag_pks)
    if query.resolution is None:
        cols = columns or "d.ts, d.tag_pk, d.value, d.quality"
        sql = f"SELECT {cols} FROM tag_data d WHERE {where}"  # noqa: S608 (no user text)
        return (sql + " ORDER BY d.ts, d.tag_pk" if order else sql), args
    args.append(query.resolution)
    bucket = f"date_bin(${len(args)}::interval, d.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    cols = columns or (
        f"{bucket} AS bucket, d.tag_pk, avg(d.value)::float8, min(d.value), max(d.value),"
        " count(*)::int8"
    )
    sql = f"SELECT {cols} FROM tag_data d WHERE {where} GROUP BY {bucket}, d.tag_pk"  # noqa: S608
    return (sql + " ORDER BY 1, 2" if order else sql), args


def _csv_select(
    asset_pk: int, query: ExportQuery, tag_pks: list[int], names: dict[int, str]
) -> tuple[str, list[Any]]:
    where, args = _where(asset_pk, query, tag_pks)
    args += [list(names), list(names.values())]
    # An array lookup instead of a join keeps the index order: no re-sort.
    tag = f"(${len(args)}::text[])[array_position(${len(args) - 1}::int[], d.tag_pk)]"
    if query.resolution is None:
        sql = (
            f"SELECT d.ts AS time, {tag} AS tag, d.value, d.quality"  # noqa: S608
            f" FROM tag_data d WHERE {where} ORDER BY d.ts, d.tag_pk"
        )
        return sql, args
    args.append(query.resolution)
    bucket = f"date_bin(${len(args)}::interval, d.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    sql = (
        f"SELECT {bucket} AS bucket_time, {tag} AS tag, avg(d.value)::float8 AS avg,"  # noqa: S608
        " min(d.value) AS min, max(d.value) AS max, count(*) AS count"
        f" FROM tag_data d WHERE {where}"
        " GROUP BY bucket_time, d.tag_pk ORDER BY bucket_time, d.tag_pk"
    )
    return sql, args


def _export_record(row: Any) -> ExportRecord:
    return ExportRecord(
        export_id=str(row["export_id"]),
        asset_id=row["asset_id"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        tags=list(row["tags"]),
        resolution_seconds=row["resolution_seconds"],
        encoding=row["encoding"],
        status=row["status"],
        row_count=row["row_count"],
        sha256=row["sha256"],
        subject=row["subject"],
        create_time=row["create_time"],
    )
