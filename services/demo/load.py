"""Load the demo plant, or bigger synthetic sets for benchmarks, into PostgreSQL.

tag_data goes in through binary COPY. Rows are laid out in PostgreSQL's binary COPY format by a
numpy structured array (big-endian fields with their length words), so no Python code runs per
row: a slice of samples is rendered, encoded and sent as one message of a few MB. The next slice
is rendered in a worker thread while the current one is on the wire, which keeps both the server
and this process busy on a two-core machine. Slices are bounded, so memory stays flat however
long or fast the series is.

Within an asset rows go out in primary-key order (ts, tag_pk) and assets one after another, so
for a new asset every primary-key insertion lands on the rightmost leaf page. That index is
still most of the cost: on the default plant the same COPY into a table without it is 3x faster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias, cast

import asyncpg
import numpy as np
from numpy.typing import NDArray

from services.demo.plant import (
    NOISE_BLOCK,
    AssetGenerator,
    demo_assets,
    from_unix_us,
    to_unix_us,
)

logger = logging.getLogger(__name__)

DEMO_GRANT_ROLE = "data_scientist"
DEMO_GRANT_PATTERN = "pump-*"
GRANT_CREATED_BY = "mlplane-demo"
# Rows per COPY message, rounded down to whole noise blocks (4-7 MB of COPY data): big enough
# that per-message overhead vanishes, small enough to keep the loader's memory flat.
CHUNK_ROWS = 1 << 17

_PG_EPOCH_UNIX_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z, PostgreSQL's timestamp zero
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
_COPY_COLUMNS = ["asset_pk", "ts", "tag_pk", "value", "quality"]

# One tag_data row of a binary COPY: field count, then (byte length, value) per column.
COPY_ROW = np.dtype(
    [
        ("fields", ">i2"),
        ("asset_pk_len", ">i4"),
        ("asset_pk", ">i8"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("tag_pk_len", ">i4"),
        ("tag_pk", ">i4"),
        ("value_len", ">i4"),
        ("value", ">f8"),
        ("quality_len", ">i4"),
        ("quality", ">i2"),
    ]
)
assert COPY_ROW.itemsize == 52


def _template_row() -> NDArray[np.void]:
    row = np.zeros(1, dtype=COPY_ROW)
    row["fields"] = len(_COPY_COLUMNS)
    for name in _COPY_COLUMNS:
        row[f"{name}_len"] = COPY_ROW[name].itemsize
    return row


_TEMPLATE = _template_row()


@dataclass
class LoadReport:
    assets: int
    tags: int
    rows: int
    failures: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# A string: asyncpg.Connection is generic only in its stubs.
_Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


async def _connect(dsn: str) -> _Connection:
    return await asyncpg.connect(dsn)


def encode_rows(
    asset_pk: int,
    tag_pks: NDArray[np.int32],
    times_us: NDArray[np.int64],
    values: NDArray[np.float64],
    quality: NDArray[np.int16],
) -> NDArray[np.void]:
    """Binary COPY rows for samples x tags, ordered by (time, tag) as the tags are given.

    ``values`` and ``quality`` are (n_tags, n_times); pass ``tag_pks`` ascending to get the
    primary-key order.
    """
    n_tags, n_times = values.shape
    if tag_pks.shape != (n_tags,) or times_us.shape != (n_times,) or quality.shape != values.shape:
        raise ValueError("tag_pks, times_us, values and quality disagree in shape")
    rows = np.empty((n_times, n_tags), dtype=COPY_ROW)
    # One broadcast copy fills the constant fields; only the four varying ones are written.
    rows[...] = _TEMPLATE[0]
    rows["asset_pk"] = asset_pk
    rows["ts"] = (times_us - _PG_EPOCH_UNIX_US)[:, None]
    rows["tag_pk"] = tag_pks[None, :]
    rows["value"] = values.T
    rows["quality"] = quality.T
    return rows.reshape(-1)


def _slices(n_times: int, n_tags: int, chunk_rows: int) -> list[tuple[int, int]]:
    # Whole noise blocks per slice, so no block is drawn twice.
    blocks = max(1, chunk_rows // max(1, n_tags) // NOISE_BLOCK)
    step = blocks * NOISE_BLOCK
    return [(i, min(i + step, n_times)) for i in range(0, n_times, step)]


async def _copy_chunks(
    generator: AssetGenerator,
    asset_pk: int,
    tag_pks: NDArray[np.int32],
    order: NDArray[np.intp],
    chunk_rows: int,
) -> AsyncIterator[bytes | memoryview]:
    def build(bounds: tuple[int, int]) -> memoryview:
        times, values, quality = generator.render(*bounds)
        rows = encode_rows(asset_pk, tag_pks, times, values[order], quality[order])
        return rows.view(np.uint8).data

    yield _COPY_HEADER
    bounds = _slices(generator.n_times, generator.n_tags, chunk_rows)
    # numpy releases the GIL in its loops, so the next slice renders while the event loop
    # pushes the current one into the socket.
    pending = asyncio.ensure_future(asyncio.to_thread(build, bounds[0]))
    try:
        for following in bounds[1:]:
            chunk = await pending
            pending = asyncio.ensure_future(asyncio.to_thread(build, following))
            yield chunk
        yield await pending
    finally:
        pending.cancel()
    yield _COPY_TRAILER


@dataclass
class _AssetResult:
    tags: int
    rows: int
    failures: int


async def _replace_asset(
    conn: _Connection, tenant: str, generator: AssetGenerator, chunk_rows: int
) -> _AssetResult:
    """(Re)create one asset with its tags, history and failure events; call in a transaction."""
    started = time.perf_counter()
    asset_pk = int(
        await conn.fetchval(
            """
            INSERT INTO assets (tenant_id, asset_id, display_name, kind)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (tenant_id, asset_id)
            DO UPDATE SET display_name = EXCLUDED.display_name, kind = EXCLUDED.kind
            RETURNING asset_pk
            """,
            tenant,
            generator.asset_id,
            generator.display_name,
            generator.kind,
        )
    )
    # tag_data has no foreign key to assets, so it is cleared explicitly.
    await conn.execute("DELETE FROM tag_data WHERE asset_pk = $1", asset_pk)
    await conn.execute("DELETE FROM failure_events WHERE asset_pk = $1", asset_pk)
    await conn.execute("DELETE FROM tags WHERE asset_pk = $1", asset_pk)

    specs = generator.tags
    inserted = await conn.fetch(
        """
        INSERT INTO tags (asset_pk, name, unit, description)
        SELECT $1, t.name, t.unit, t.description
        FROM unnest($2::text[], $3::text[], $4::text[]) AS t (name, unit, description)
        RETURNING tag_pk, name
        """,
        asset_pk,
        [s.name for s in specs],
        [s.unit for s in specs],
        [s.description for s in specs],
    )
    pk_by_name = {str(r["name"]): int(r["tag_pk"]) for r in inserted}
    pks = np.array([pk_by_name[s.name] for s in specs], dtype=np.int32)
    # Serial values usually follow insertion order, but the primary-key order is what
    # matters to the index, so sort rather than assume.
    order = np.argsort(pks, kind="stable")

    await conn.copy_to_table(
        "tag_data",
        # asyncpg sends any buffer; its stubs only admit bytes, and copying each chunk
        # into bytes would only cost time.
        source=cast(
            AsyncIterable[bytes],
            _copy_chunks(generator, asset_pk, pks[order], order, chunk_rows),
        ),
        columns=_COPY_COLUMNS,
        format="binary",
    )
    rows = generator.n_times * generator.n_tags

    failures = generator.failures
    if failures:
        await conn.execute(
            """
            INSERT INTO failure_events (asset_pk, start_time, end_time, failure_mode, description)
            SELECT $1, f.start_time, f.end_time, f.failure_mode, f.description
            FROM unnest($2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[])
                 AS f (start_time, end_time, failure_mode, description)
            """,
            asset_pk,
            [f.start for f in failures],
            [f.end for f in failures],
            [f.failure_mode for f in failures],
            [f.description for f in failures],
        )
    elapsed = time.perf_counter() - started
    logger.info(
        "loaded %s/%s: %d rows in %.2fs (%.0f rows/s)",
        tenant,
        generator.asset_id,
        rows,
        elapsed,
        rows / elapsed if elapsed > 0 else 0.0,
    )
    return _AssetResult(tags=len(specs), rows=rows, failures=len(failures))


async def _tune_transaction(conn: _Connection) -> None:
    # Nothing is lost if the machine dies before the commit's WAL flush: the load is redone.
    await conn.execute("SET LOCAL synchronous_commit = off")


def _resolve_end(end: datetime | None, step_us: int) -> datetime:
    if end is not None:
        to_unix_us(end)  # rejects naive datetimes early
        return end
    now_us = to_unix_us(datetime.now(UTC))
    return from_unix_us(now_us // step_us * step_us)


def _step_us(step_seconds: float) -> int:
    step = round(step_seconds * 1_000_000)
    if step < 1:
        raise ValueError("the sampling step must be at least one microsecond")
    return step


async def load_demo_plant(
    dsn: str,
    *,
    tenant: str = "demo",
    days: float = 90,
    step_seconds: float = 60,
    end: datetime | None = None,
    seed: int = 7,
    only_if_empty: bool = True,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadReport | None:
    """Load the ten demo assets, their failure events and the demo grant for ``tenant``.

    Returns None, and changes nothing, when ``only_if_empty`` and the tenant already has
    assets. Otherwise the demo assets are replaced. ``end`` defaults to now, truncated to the
    step.

    The whole plant is one transaction: an interrupted first load leaves nothing behind, so
    the next start loads it again instead of finding a half plant and skipping it.
    """
    end = _resolve_end(end, _step_us(step_seconds))
    started = time.perf_counter()
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            await _tune_transaction(conn)
            # Two stacks starting at once on one database must not both load.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"mlplane.demo.load:{tenant}",
            )
            if only_if_empty and await conn.fetchval(
                "SELECT EXISTS (SELECT FROM assets WHERE tenant_id = $1)", tenant
            ):
                logger.info("tenant %s already has assets; demo plant not loaded", tenant)
                return None
            total = _AssetResult(tags=0, rows=0, failures=0)
            assets = demo_assets()
            for asset_id, kind in assets:
                generator = AssetGenerator(
                    asset_id, kind, end=end, days=days, step_seconds=step_seconds, seed=seed
                )
                result = await _replace_asset(conn, tenant, generator, chunk_rows)
                total = _add(total, result)
            await conn.execute(
                """
                INSERT INTO asset_grants
                    (tenant_id, principal_kind, principal, asset_pattern, created_by)
                VALUES ($1, 'role', $2, $3, $4)
                ON CONFLICT DO NOTHING
                """,
                tenant,
                DEMO_GRANT_ROLE,
                DEMO_GRANT_PATTERN,
                GRANT_CREATED_BY,
            )
        await _analyze(conn)
    finally:
        await conn.close()
    report = LoadReport(
        assets=len(assets),
        tags=total.tags,
        rows=total.rows,
        failures=total.failures,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "demo plant for tenant %s: %d rows in %.1fs (%.0f rows/s)",
        tenant,
        report.rows,
        report.seconds,
        report.rows_per_second,
    )
    return report


async def load_assets(
    dsn: str,
    *,
    tenant: str,
    asset_ids: Sequence[str],
    kind: str,
    days: float,
    hz: float,
    n_tags: int,
    end: datetime | None = None,
    seed: int = 11,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadReport:
    """Synthetic assets for benchmarks, one transaction each; existing ones are replaced."""
    if hz <= 0:
        raise ValueError("hz must be positive")
    step_seconds = 1.0 / hz
    end = _resolve_end(end, _step_us(step_seconds))
    started = time.perf_counter()
    total = _AssetResult(tags=0, rows=0, failures=0)
    conn = await _connect(dsn)
    try:
        for asset_id in asset_ids:
            generator = AssetGenerator(
                asset_id,
                kind,
                end=end,
                days=days,
                step_seconds=step_seconds,
                seed=seed,
                n_tags=n_tags,
            )
            async with conn.transaction():
                await _tune_transaction(conn)
                result = await _replace_asset(conn, tenant, generator, chunk_rows)
            total = _add(total, result)
        await _analyze(conn)
    finally:
        await conn.close()
    return LoadReport(
        assets=len(asset_ids),
        tags=total.tags,
        rows=total.rows,
        failures=total.failures,
        seconds=time.perf_counter() - started,
    )


async def _analyze(conn: _Connection) -> None:
    # Without statistics on a freshly loaded table the planner sorts a whole
    # range instead of walking the primary key in order (0.5 s more for a day).
    await conn.execute("ANALYZE tag_data, tags, assets")


def _add(a: _AssetResult, b: _AssetResult) -> _AssetResult:
    return _AssetResult(
        tags=a.tags + b.tags, rows=a.rows + b.rows, failures=a.failures + b.failures
    )
