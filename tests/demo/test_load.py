"""Loading synthetic history into a real embedded PostgreSQL through binary COPY."""

from __future__ import annotations

import fnmatch
import shutil
import struct
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from services.db.setup import RoleCredentials, setup_database
from services.demo.load import encode_rows, load_assets, load_demo_plant
from services.demo.plant import (
    NOISE_BLOCK,
    AssetSeries,
    demo_assets,
    from_unix_us,
    generate_asset,
    to_unix_us,
)
from services.stack.postgres import EmbeddedPostgres

END = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAYS = 30
STEP = 600  # ten minutes: a month of the whole plant is 216,000 rows
N_TIMES = DAYS * 24 * 6


@pytest.fixture(scope="module")
def postgres() -> Iterator[tuple[EmbeddedPostgres, Path]]:
    # Not pytest's tmp_path: pytest resets its base dir to 0700, which locks out the
    # unprivileged server user.
    root = Path(tempfile.mkdtemp(prefix="mlplane-demo-test-"))
    server = EmbeddedPostgres(root / "state")
    try:
        server.start()
        yield server, root
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def dsn(postgres: tuple[EmbeddedPostgres, Path]) -> str:
    server, root = postgres
    admin = server.dsn()
    await setup_database(admin, RoleCredentials.load_or_create(root / "db-roles.json"))
    return admin


@pytest.fixture
async def conn(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def _count_rows(conn: asyncpg.Connection, tenant: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM tag_data d JOIN assets a USING (asset_pk) WHERE a.tenant_id = $1",
            tenant,
        )
    )


async def _history(
    conn: asyncpg.Connection,
    tenant: str,
    asset_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """
        SELECT d.ts, g.name, d.value, d.quality
        FROM tag_data d
        JOIN assets a USING (asset_pk)
        JOIN tags g USING (tag_pk)
        WHERE a.tenant_id = $1 AND a.asset_id = $2
          AND ($3::timestamptz IS NULL OR d.ts >= $3)
          AND ($4::timestamptz IS NULL OR d.ts < $4)
        ORDER BY d.ts, d.tag_pk
        """,
        tenant,
        asset_id,
        start,
        end,
    )


def _assert_same_history(
    rows: list[asyncpg.Record], expected: AssetSeries, mask: np.ndarray
) -> None:
    n_tags = len(expected.tags)
    times = expected.times[mask]
    assert len(rows) == times.size * n_tags
    got_ts = np.array([to_unix_us(r["ts"]) for r in rows], dtype=np.int64).reshape(-1, n_tags)
    got_names = [r["name"] for r in rows[:n_tags]]
    got_values = np.array([r["value"] for r in rows], dtype=np.float64).reshape(-1, n_tags)
    got_quality = np.array([r["quality"] for r in rows], dtype=np.int16).reshape(-1, n_tags)
    assert got_names == [t.name for t in expected.tags]
    assert np.array_equal(got_ts, np.repeat(times[:, None], n_tags, axis=1))
    # Binary COPY carries the float8 bits unchanged: equality, not closeness.
    assert np.array_equal(got_values, expected.values[:, mask].T)
    assert np.array_equal(got_quality, expected.quality[:, mask].T)


def test_encode_rows_is_postgres_binary_copy() -> None:
    unix_2000 = 946_684_800_000_000
    times = np.array([unix_2000, unix_2000 + 1_500_000], dtype=np.int64)
    values = np.array([[1.5, -2.25], [3e300, 0.0]], dtype=np.float64)
    quality = np.array([[192, 0], [64, 192]], dtype=np.int16)
    tag_pks = np.array([7, 9], dtype=np.int32)
    expected = b"".join(
        struct.pack(
            ">hiqiqiiidih", 5, 8, 42, 8, ts, 4, int(tag_pks[j]), 8, values[j, i], 2, quality[j, i]
        )
        for i, ts in enumerate([0, 1_500_000])
        for j in range(2)
    )
    assert encode_rows(42, tag_pks, times, values, quality).tobytes() == expected


async def test_demo_plant_loads_once_and_round_trips(dsn: str, conn: asyncpg.Connection) -> None:
    report = await load_demo_plant(dsn, days=DAYS, step_seconds=STEP, end=END)
    assert report is not None
    generated = {
        asset_id: generate_asset(asset_id, kind, end=END, days=DAYS, step_seconds=STEP, seed=7)
        for asset_id, kind in demo_assets()
    }
    n_failures = sum(len(s.failures) for s in generated.values())
    assert (report.assets, report.tags, report.rows) == (10, 50, 10 * 5 * N_TIMES)
    assert report.failures == n_failures >= 8
    assert report.seconds > 0

    assets = await conn.fetch(
        "SELECT asset_id, kind, display_name FROM assets WHERE tenant_id = 'demo' ORDER BY 1"
    )
    assert [(r["asset_id"], r["kind"]) for r in assets] == sorted(demo_assets())
    assert all(r["display_name"] for r in assets)
    tags = await conn.fetch(
        "SELECT a.asset_id, g.name, g.unit FROM tags g JOIN assets a USING (asset_pk) "
        "WHERE a.tenant_id = 'demo'"
    )
    assert len(tags) == 50
    assert all(r["unit"] for r in tags)
    assert await _count_rows(conn, "demo") == report.rows

    events = await conn.fetch(
        "SELECT e.start_time, e.end_time, e.failure_mode, e.description "
        "FROM failure_events e JOIN assets a USING (asset_pk) "
        "WHERE a.tenant_id = 'demo' AND a.asset_id = $1 ORDER BY e.start_time",
        "pump-001",
    )
    assert [
        (r["start_time"], r["end_time"], r["failure_mode"], r["description"]) for r in events
    ] == [(f.start, f.end, f.failure_mode, f.description) for f in generated["pump-001"].failures]

    grants = await conn.fetch(
        "SELECT principal_kind, principal, asset_pattern FROM asset_grants WHERE tenant_id = 'demo'"
    )
    assert [tuple(r) for r in grants] == [("role", "data_scientist", "pump-*")]
    assert not fnmatch.fnmatchcase("turbine-001", grants[0]["asset_pattern"])

    # One asset and a time range, the way an export reads it.
    series = generated["pump-003"]
    start, stop = END - timedelta(days=10), END - timedelta(days=9, hours=7)
    mask = (series.times >= to_unix_us(start)) & (series.times < to_unix_us(stop))
    _assert_same_history(await _history(conn, "demo", "pump-003", start, stop), series, mask)

    # Rows went in in primary-key order: a sequential scan returns them sorted.
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_indexscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        # Parallel workers would interleave their pages.
        await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        scan = await conn.fetch(
            "SELECT asset_pk, ts, tag_pk FROM tag_data WHERE asset_pk IN "
            "(SELECT asset_pk FROM assets WHERE tenant_id = 'demo')"
        )
    keys = [tuple(r) for r in scan]
    assert keys == sorted(keys)

    # The second start finds the tenant populated and leaves it alone.
    assert await load_demo_plant(dsn, days=DAYS, step_seconds=STEP, end=END) is None
    assert await _count_rows(conn, "demo") == report.rows


async def test_demo_plant_reload_replaces_rows(dsn: str, conn: asyncpg.Connection) -> None:
    tenant = "demo-reload"
    first = await load_demo_plant(dsn, tenant=tenant, days=2, step_seconds=STEP, end=END)
    assert first is not None
    pks = await conn.fetch("SELECT asset_id, asset_pk FROM assets WHERE tenant_id = $1", tenant)
    later = END + timedelta(days=1)
    second = await load_demo_plant(
        dsn, tenant=tenant, days=3, step_seconds=STEP, end=later, seed=99, only_if_empty=False
    )
    assert second is not None
    assert second.rows == 10 * 5 * 3 * 144
    assert await _count_rows(conn, tenant) == second.rows
    # Same assets, updated in place: other tables may refer to them.
    again = await conn.fetch("SELECT asset_id, asset_pk FROM assets WHERE tenant_id = $1", tenant)
    assert sorted(map(tuple, again)) == sorted(map(tuple, pks))
    count = await conn.fetchval("SELECT count(*) FROM asset_grants WHERE tenant_id = $1", tenant)
    assert count == 1
    series = generate_asset("turbine-002", "turbine", end=later, days=3, step_seconds=STEP, seed=99)
    rows = await _history(conn, tenant, "turbine-002")
    _assert_same_history(rows, series, np.ones(series.times.size, dtype=bool))


async def test_demo_plant_ends_now_on_the_step(dsn: str, conn: asyncpg.Connection) -> None:
    before = datetime.now(UTC)
    report = await load_demo_plant(dsn, tenant="demo-now", days=0.5, step_seconds=STEP)
    assert report is not None
    assert report.rows == 10 * 5 * 72
    last = await conn.fetchval(
        "SELECT max(ts) FROM tag_data JOIN assets USING (asset_pk) WHERE tenant_id = 'demo-now'"
    )
    end_us = to_unix_us(last) + STEP * 1_000_000
    assert end_us % (STEP * 1_000_000) == 0
    assert to_unix_us(before) - STEP * 1_000_000 < end_us <= to_unix_us(datetime.now(UTC))


async def test_load_assets_streams_in_slices_and_replaces(
    dsn: str, conn: asyncpg.Connection
) -> None:
    # Same asset id in another tenant: replacing "bench" must not touch it.
    neighbour = await load_assets(
        dsn, tenant="bench-other", asset_ids=["bench-1"], kind="pump", days=0.1, hz=0.1, n_tags=4
    )
    assert neighbour.rows == 864 * 4

    # 21,600 samples per asset: several COPY messages per asset.
    report = await load_assets(
        dsn,
        tenant="bench",
        asset_ids=["bench-1", "bench-2"],
        kind="pump",
        days=0.25,
        hz=1,
        n_tags=10,
        end=END,
    )
    assert (report.assets, report.tags, report.rows) == (2, 20, 2 * 21_600 * 10)
    assert await _count_rows(conn, "bench") == report.rows
    series = generate_asset(
        "bench-2", "pump", end=END, days=0.25, step_seconds=1, seed=11, n_tags=10
    )
    # Windows across the seams between COPY messages (every NOISE_BLOCK samples here).
    for seam in (NOISE_BLOCK, 2 * NOISE_BLOCK):
        start, stop = series.times[seam - 50], series.times[seam + 50]
        mask = (series.times >= start) & (series.times < stop)
        rows = await _history(
            conn, "bench", "bench-2", from_unix_us(int(start)), from_unix_us(int(stop))
        )
        _assert_same_history(rows, series, mask)
    summary = await conn.fetchrow(
        "SELECT min(ts) AS first, max(ts) AS last, sum(quality) AS quality "
        "FROM tag_data JOIN assets USING (asset_pk) "
        "WHERE tenant_id = 'bench' AND asset_id = 'bench-2'"
    )
    assert to_unix_us(summary["first"]) == series.times[0]
    assert to_unix_us(summary["last"]) == series.times[-1]
    assert summary["quality"] == int(series.quality.astype(np.int64).sum())

    replaced = await load_assets(
        dsn,
        tenant="bench",
        asset_ids=["bench-1", "bench-2"],
        kind="turbine",
        days=0.1,
        hz=0.5,
        n_tags=3,
        end=END,
        seed=5,
    )
    assert replaced.rows == 2 * 4320 * 3
    assert await _count_rows(conn, "bench") == replaced.rows
    kinds = await conn.fetch("SELECT DISTINCT kind FROM assets WHERE tenant_id = 'bench'")
    assert [r["kind"] for r in kinds] == ["turbine"]
    names = await conn.fetch(
        "SELECT g.name FROM tags g JOIN assets a USING (asset_pk) "
        "WHERE a.tenant_id = 'bench' AND a.asset_id = 'bench-1' ORDER BY g.tag_pk"
    )
    assert [r["name"] for r in names] == ["rotor_speed", "exhaust_temp", "vibration_rms"]
    assert await _count_rows(conn, "bench-other") == neighbour.rows
    assert not await conn.fetchval("SELECT count(*) FROM asset_grants WHERE tenant_id = 'bench'")


async def test_naive_end_is_rejected(dsn: str) -> None:
    with pytest.raises(ValueError, match="naive"):
        await load_demo_plant(dsn, tenant="naive", days=1, end=datetime(2026, 1, 1))
