"""Load the demo plant, or bigger synthetic sets for benchmarks, into PostgreSQL.

Kept whole (over 400 lines): the binary COPY encoder and the loader that pipelines it are one
measured hot path (bench/README.md).

tag_data goes in through binary COPY. Rows are laid out in PostgreSQL's binary COPY format by a
numpy structured array (big-endian fields with their length words), so no Python code runs per
row: a slice of samples is rendered, encoded and sent as one message of a few MB. The next slice
is rendered in a worker thread while the current one is on the wire, which keeps both the server
and this process busy on a two-core machine. Slices are bounded, so memory stays flat however
long or fast the series is.

Within an asset rows go out in primary-key order (ts, tag_pk) and assets one after another, so
for a new asset every primary-key insertion lands on the rightmost leaf page. That index is
still most of the cost: on the default plant the same COPY into a table without it is 3x faster.

The demo plant is anchored (see plant.py) and loaded up to the moment of the load. What was
loaded is recorded in the audit log (action ``demo.load``, in the same transaction as the
rows), with what it takes to render any later minute: anchor, seed, days, step. The audit log,
rather than a file in a state folder, because the record then travels with the data: an
external database, a second state folder or a `mlplane demo load` from another shell all find
the plant they are looking at. `extend_demo_plant` appends what is missing between the newest
stored sample and now from that record; `mlplane up` calls it at start and once a minute.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias, cast

import asyncpg
import numpy as np
from numpy.typing import NDArray

from services.demo.plant import (
    NOISE_BLOCK,
    AssetGenerator,
    FailureEvent,
    demo_assets,
    plant_anchor,
)

logger = logging.getLogger(__name__)

DEMO_TENANT = "demo"
DEMO_GRANT_ROLE = "data_scientist"
DEMO_GRANT_PATTERN = "pump-*"
GRANT_CREATED_BY = "mlplane-demo"
# The default seed of the demo plant (MLPLANE_DEMO_PLANT_SEED) and of benchmark assets.
DEMO_SEED = 7
BENCH_SEED = 11
DEMO_STEP_SECONDS = 60.0
LOAD_ACTION = "demo.load"
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
    tenant: str = DEMO_TENANT
    asset_ids: list[str] = field(default_factory=list)
    start: datetime | None = None  # the first sample
    until: datetime | None = None  # just after the last sample
    anchor: datetime | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class DemoPlant:
    """What a demo load recorded: enough to render any sample of its domain again."""

    tenant: str
    anchor: datetime
    seed: int
    days: float
    step_seconds: float
    assets: tuple[tuple[str, str], ...]  # (asset_id, kind)

    def generator(self, asset_id: str, kind: str) -> AssetGenerator:
        return AssetGenerator(
            asset_id, kind, anchor=self.anchor, step_seconds=self.step_seconds, seed=self.seed
        )

    @property
    def domain_end(self) -> datetime:
        return self.generator(*self.assets[0]).domain_end

    def detail(self) -> dict[str, Any]:
        return {
            "anchor": self.anchor.isoformat(),
            "seed": self.seed,
            "days": self.days,
            "step_seconds": self.step_seconds,
            "assets": [list(a) for a in self.assets],
        }

    @classmethod
    def from_detail(cls, tenant: str, detail: dict[str, Any]) -> DemoPlant:
        return cls(
            tenant=tenant,
            anchor=datetime.fromisoformat(str(detail["anchor"])),
            seed=int(detail["seed"]),
            days=float(detail["days"]),
            step_seconds=float(detail["step_seconds"]),
            assets=tuple((str(a), str(k)) for a, k in detail["assets"]),
        )


@dataclass(frozen=True)
class ExtendReport:
    plant: DemoPlant
    rows: int
    failures_started: int
    failures_ended: int
    until: datetime | None  # just after the newest stored sample
    exhausted: bool  # now is past the anchor's domain: only a reload (re-anchor) goes further


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


def _slices(i0: int, i1: int, n_tags: int, chunk_rows: int) -> list[tuple[int, int]]:
    # Cut on whole noise blocks of the domain, so no block is drawn twice.
    blocks = max(1, chunk_rows // max(1, n_tags) // NOISE_BLOCK)
    step = blocks * NOISE_BLOCK
    cuts = [i0, *range((i0 // step + 1) * step, i1, step), i1]
    return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]


async def _copy_chunks(
    generator: AssetGenerator,
    bounds: list[tuple[int, int]],
    asset_pk: int,
    tag_pks: NDArray[np.int32],
    order: NDArray[np.intp],
) -> AsyncIterator[bytes | memoryview]:
    def build(piece: tuple[int, int]) -> memoryview:
        times, values, quality = generator.render(*piece)
        rows = encode_rows(asset_pk, tag_pks, times, values[order], quality[order])
        return rows.view(np.uint8).data

    yield _COPY_HEADER
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


async def _copy_samples(
    conn: _Connection,
    generator: AssetGenerator,
    asset_pk: int,
    pk_by_name: dict[str, int],
    i0: int,
    i1: int,
    chunk_rows: int,
) -> int:
    """COPY samples ``[i0, i1)`` of one asset into tag_data; returns the rows written."""
    if i1 <= i0:
        return 0
    pks = np.array([pk_by_name[s.name] for s in generator.tags], dtype=np.int32)
    # Serial values usually follow insertion order, but the primary-key order is what
    # matters to the index, so sort rather than assume.
    order = np.argsort(pks, kind="stable")
    bounds = _slices(i0, i1, generator.n_tags, chunk_rows)
    await conn.copy_to_table(
        "tag_data",
        # asyncpg sends any buffer; its stubs only admit bytes, and copying each chunk
        # into bytes would only cost time.
        source=cast(
            AsyncIterable[bytes], _copy_chunks(generator, bounds, asset_pk, pks[order], order)
        ),
        columns=_COPY_COLUMNS,
        format="binary",
    )
    return (i1 - i0) * generator.n_tags


@dataclass
class _AssetResult:
    tags: int
    rows: int
    failures: int


async def _replace_asset(
    conn: _Connection,
    tenant: str,
    generator: AssetGenerator,
    i0: int,
    i1: int,
    chunk_rows: int,
) -> _AssetResult:
    """(Re)create one asset with its tags, samples ``[i0, i1)`` and failure events; call in a
    transaction."""
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
    rows = await _copy_samples(conn, generator, asset_pk, pk_by_name, i0, i1, chunk_rows)
    failures = generator.failure_events(i0, i1)
    await _insert_failures(conn, asset_pk, failures)
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


async def _insert_failures(conn: _Connection, asset_pk: int, events: list[FailureEvent]) -> None:
    if not events:
        return
    await conn.execute(
        """
        INSERT INTO failure_events (asset_pk, start_time, end_time, failure_mode, description)
        SELECT $1, f.start_time, f.end_time, f.failure_mode, f.description
        FROM unnest($2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[])
             AS f (start_time, end_time, failure_mode, description)
        """,
        asset_pk,
        [f.start for f in events],
        [f.end for f in events],
        [f.failure_mode for f in events],
        [f.description for f in events],
    )


async def _tune_transaction(conn: _Connection) -> None:
    # Nothing is lost if the machine dies before the commit's WAL flush: the load is redone,
    # and an append is made again from the newest sample that did commit.
    await conn.execute("SET LOCAL synchronous_commit = off")


async def _lock_tenant(conn: _Connection, tenant: str) -> None:
    # Two stacks starting at once on one database must not both load, nor append the same
    # minutes twice; a load and an append must not interleave either.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"mlplane.demo.load:{tenant}"
    )


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError(f"{now!r} is naive; pass an aware datetime (UTC)")
    return now


async def load_demo_plant(
    dsn: str,
    *,
    tenant: str = DEMO_TENANT,
    days: float = 90,
    step_seconds: float = DEMO_STEP_SECONDS,
    seed: int = DEMO_SEED,
    now: datetime | None = None,
    anchor: datetime | None = None,
    only_if_empty: bool = True,
    loaded_by: str = GRANT_CREATED_BY,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadReport | None:
    """Load the ten demo assets, their failure events and the demo grant for ``tenant``.

    The plant is anchored on ``anchor`` (default: the Monday 00:00 UTC of the week of ``now``)
    and holds ``days`` of history before it, plus every sample from the anchor up to ``now``
    (default: the moment of the call), so relative queries ("the last hour") find data at
    once. Returns None, and changes nothing, when ``only_if_empty`` and the tenant already has
    assets. Otherwise the demo assets are replaced.

    The whole plant is one transaction: an interrupted first load leaves nothing behind, so
    the next start loads it again instead of finding a half plant and skipping it.
    """
    now = _now(now)
    plant = DemoPlant(
        tenant=tenant,
        anchor=plant_anchor(now) if anchor is None else anchor,
        seed=seed,
        days=days,
        step_seconds=step_seconds,
        assets=tuple(demo_assets()),
    )
    generators = [plant.generator(asset_id, kind) for asset_id, kind in plant.assets]
    # Validated before connecting: a bad anchor or too many days is the caller's mistake.
    i0 = generators[0].history_start(days)
    i1 = generators[0].index_through(now)
    if i1 <= i0:
        raise ValueError(f"{now.isoformat()} is before the plant's history starts")
    started = time.perf_counter()
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            await _tune_transaction(conn)
            await _lock_tenant(conn, tenant)
            if only_if_empty and await conn.fetchval(
                "SELECT EXISTS (SELECT FROM assets WHERE tenant_id = $1)", tenant
            ):
                logger.info("tenant %s already has assets; demo plant not loaded", tenant)
                return None
            total = _AssetResult(tags=0, rows=0, failures=0)
            for generator in generators:
                result = await _replace_asset(conn, tenant, generator, i0, i1, chunk_rows)
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
            await conn.execute(
                "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome, detail)"
                " VALUES ($1, $2, $3, $4, 'ok', $5::jsonb)",
                tenant,
                loaded_by,
                LOAD_ACTION,
                f"demo-plant/{tenant}",
                json.dumps({**plant.detail(), "rows": total.rows}),
            )
        await _analyze(conn)
    finally:
        await conn.close()
    report = LoadReport(
        assets=len(generators),
        tags=total.tags,
        rows=total.rows,
        failures=total.failures,
        seconds=time.perf_counter() - started,
        tenant=tenant,
        asset_ids=[g.asset_id for g in generators],
        start=generators[0].time_of(i0),
        until=generators[0].time_of(i1),
        anchor=plant.anchor,
    )
    logger.info(
        "demo plant for tenant %s: %d rows in %.1fs (%.0f rows/s)",
        tenant,
        report.rows,
        report.seconds,
        report.rows_per_second,
    )
    return report


async def read_demo_plant(dsn: str, tenant: str = DEMO_TENANT) -> DemoPlant | None:
    """The tenant's demo plant as its newest load recorded it; None when none is recorded."""
    conn = await _connect(dsn)
    try:
        return await _read_plant(conn, tenant)
    finally:
        await conn.close()


async def _read_plant(conn: _Connection, tenant: str) -> DemoPlant | None:
    detail = await conn.fetchval(
        "SELECT detail FROM audit_log WHERE tenant_id = $1 AND action = $2"
        " ORDER BY audit_pk DESC LIMIT 1",
        tenant,
        LOAD_ACTION,
    )
    if detail is None:
        return None
    return DemoPlant.from_detail(tenant, json.loads(detail) if isinstance(detail, str) else detail)


async def extend_demo_plant(
    dsn: str, *, tenant: str = DEMO_TENANT, now: datetime | None = None
) -> ExtendReport | None:
    """Append the demo plant's samples from its newest stored one up to ``now``.

    The rows are rendered from the load's record by the same generator, so they are exactly
    what a load made at ``now`` would hold. Failures whose trip has come are recorded as it
    comes, with no end while the pump is down; the end (and the repair's description) is
    filled in once it passes. Returns None when the tenant has no recorded demo plant (none
    loaded, or loaded by an mlplane that did not record it). Past the end of the anchor's
    domain nothing more can be rendered: the report says ``exhausted``, and the next
    `mlplane up` re-anchors the plant by reloading it.
    """
    now = _now(now)
    rows = started = ended = 0
    newest_until: datetime | None = None
    conn = await _connect(dsn)
    try:
        async with conn.transaction():
            await _tune_transaction(conn)
            await _lock_tenant(conn, tenant)
            plant = await _read_plant(conn, tenant)
            if plant is None:
                return None
            for asset_id, kind in plant.assets:
                result = await _extend_asset(conn, plant, asset_id, kind, now)
                if result is None:
                    continue
                rows += result[0]
                started += result[1]
                ended += result[2]
                newest_until = result[3] if newest_until is None else min(newest_until, result[3])
        if rows >= CHUNK_ROWS:
            await _analyze(conn)  # a long catch-up moves the statistics' upper bound a lot
    finally:
        await conn.close()
    return ExtendReport(
        plant=plant,
        rows=rows,
        failures_started=started,
        failures_ended=ended,
        until=newest_until,
        exhausted=now >= plant.domain_end,
    )


async def _extend_asset(
    conn: _Connection, plant: DemoPlant, asset_id: str, kind: str, now: datetime
) -> tuple[int, int, int, datetime] | None:
    asset_pk = await conn.fetchval(
        "SELECT asset_pk FROM assets WHERE tenant_id = $1 AND asset_id = $2 AND kind = $3",
        plant.tenant,
        asset_id,
        kind,
    )
    if asset_pk is None:
        return None  # removed since the load: nothing to keep live
    newest = await conn.fetchval("SELECT max(ts) FROM tag_data WHERE asset_pk = $1", asset_pk)
    if newest is None:
        return None
    generator = plant.generator(asset_id, kind)
    tags = await conn.fetch("SELECT tag_pk, name FROM tags WHERE asset_pk = $1", asset_pk)
    pk_by_name = {str(r["name"]): int(r["tag_pk"]) for r in tags}
    if any(spec.name not in pk_by_name for spec in generator.tags):
        logger.warning("%s/%s has lost tags since its load; not extended", plant.tenant, asset_id)
        return None
    i0 = generator.index_through(newest)
    i1 = max(i0, generator.index_through(now))
    rows = await _copy_samples(conn, generator, int(asset_pk), pk_by_name, i0, i1, CHUNK_ROWS)
    known = generator.failure_events(generator.history_start(plant.days), i1)
    started, ended = await _sync_failures(conn, int(asset_pk), known)
    return rows, started, ended, generator.time_of(i1)


async def _sync_failures(
    conn: _Connection, asset_pk: int, known: list[FailureEvent]
) -> tuple[int, int]:
    """Record failures that have started and the ends of those that have ended."""
    stored = {
        r["start_time"]: (int(r["event_pk"]), r["end_time"])
        for r in await conn.fetch(
            "SELECT event_pk, start_time, end_time FROM failure_events WHERE asset_pk = $1",
            asset_pk,
        )
    }
    new = [event for event in known if event.start not in stored]
    await _insert_failures(conn, asset_pk, new)
    ended = 0
    for event in known:
        if event.start in stored and event.end is not None and stored[event.start][1] is None:
            await conn.execute(
                "UPDATE failure_events SET end_time = $2, description = $3 WHERE event_pk = $1",
                stored[event.start][0],
                event.end,
                event.description,
            )
            ended += 1
    return len(new), ended


async def load_assets(
    dsn: str,
    *,
    tenant: str,
    asset_ids: Sequence[str],
    kind: str,
    days: float,
    hz: float,
    n_tags: int,
    now: datetime | None = None,
    seed: int = BENCH_SEED,
    chunk_rows: int = CHUNK_ROWS,
) -> LoadReport:
    """Synthetic assets for benchmarks, ``days`` up to ``now``, one transaction each;
    existing ones are replaced. They are not kept live: only the demo plant is."""
    if hz <= 0:
        raise ValueError("hz must be positive")
    now = _now(now)
    anchor = plant_anchor(now)
    generators = [
        AssetGenerator(
            asset_id, kind, anchor=anchor, step_seconds=1.0 / hz, seed=seed, n_tags=n_tags
        )
        for asset_id in asset_ids
    ]
    windows = [_bench_window(g, days, now) for g in generators]
    started = time.perf_counter()
    total = _AssetResult(tags=0, rows=0, failures=0)
    conn = await _connect(dsn)
    try:
        for generator, (i0, i1) in zip(generators, windows, strict=True):
            async with conn.transaction():
                await _tune_transaction(conn)
                result = await _replace_asset(conn, tenant, generator, i0, i1, chunk_rows)
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
        tenant=tenant,
        asset_ids=list(asset_ids),
        start=generators[0].time_of(windows[0][0]) if generators else None,
        until=generators[0].time_of(windows[0][1]) if generators else None,
    )


def _bench_window(generator: AssetGenerator, days: float, now: datetime) -> tuple[int, int]:
    # Exactly days * hz samples ending at now, so row counts are what the caller asked for.
    i1 = generator.index_through(now)
    i0 = i1 - int(round(days * 86_400_000_000) // generator.step_us)
    if i0 >= i1:
        raise ValueError("days and hz give no sample")
    if i0 < 0:
        raise ValueError("at most about a year of history can be loaded")
    return i0, i1


async def _analyze(conn: _Connection) -> None:
    # Without statistics on a freshly loaded table the planner sorts a whole
    # range instead of walking the primary key in order (0.5 s more for a day).
    await conn.execute("ANALYZE tag_data, tags, assets")


def _add(a: _AssetResult, b: _AssetResult) -> _AssetResult:
    return _AssetResult(
        tags=a.tags + b.tags, rows=a.rows + b.rows, failures=a.failures + b.failures
    )
