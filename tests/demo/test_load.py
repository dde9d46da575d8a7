"""Loading synthetic history into a real embedded PostgreSQL through binary COPY."""

from __future__ import annotations

import fnmatch
import struct
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest

from services.demo.load import (
    encode_rows,
    load_assets,
    load_demo_plant,
    read_demo_plant,
)
from services.demo.plant import (
    NOISE_BLOCK,
    AssetGenerator,
    AssetSeries,
    demo_assets,
    from_unix_us,
    generate_asset,
    to_unix_us,
)

ANCHOR = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
NOW = ANCHOR + timedelta(days=2, hours=5, minutes=17, seconds=30)  # "the moment of the load"
DAYS = 30
STEP = 600  # ten minutes: a month of the whole plant is 216,000 rows
N_TIMES = DAYS * 24 * 6
# Samples from the anchor up to NOW: the one at 05:10 is the newest.
N_LIVE = (2 * 24 + 5) * 6 + 2


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
    report = await load_demo_plant(dsn, days=DAYS, step_seconds=STEP, now=NOW)
    assert report is not None
    assert (report.anchor, report.start) == (ANCHOR, ANCHOR - timedelta(days=DAYS))
    assert report.until == ANCHOR + timedelta(days=2, hours=5, minutes=20)
    generated = {
        asset_id: generate_asset(
            asset_id, kind, anchor=ANCHOR, days=DAYS, step_seconds=STEP, seed=7, until=NOW
        )
        for asset_id, kind in demo_assets()
    }
    n_failures = sum(len(s.failures) for s in generated.values())
    assert (report.assets, report.tags, report.rows) == (10, 50, 10 * 5 * (N_TIMES + N_LIVE))
    assert report.asset_ids == [a for a, _ in demo_assets()]
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

    assert await _events(conn, "demo", "pump-001") == [
        (f.start, f.end, f.failure_mode, f.description) for f in generated["pump-001"].failures
    ]

    grants = await conn.fetch(
        "SELECT principal_kind, principal, asset_pattern FROM asset_grants WHERE tenant_id = 'demo'"
    )
    assert [tuple(r) for r in grants] == [("role", "data_scientist", "pump-*")]
    assert not fnmatch.fnmatchcase("turbine-001", grants[0]["asset_pattern"])

    # What it takes to render any later minute is on record, in the audit log.
    plant = await read_demo_plant(dsn, "demo")
    assert plant is not None
    assert (plant.anchor, plant.seed, plant.days, plant.step_seconds) == (ANCHOR, 7, DAYS, STEP)
    assert list(plant.assets) == demo_assets()
    audit = await conn.fetch(
        "SELECT subject, resource FROM audit_log WHERE tenant_id = 'demo' AND action = 'demo.load'"
    )
    assert [tuple(r) for r in audit] == [("mlplane-demo", "demo-plant/demo")]

    # One asset and a time range, the way an export reads it, before and after the anchor.
    series = generated["pump-003"]
    for start, stop in [
        (ANCHOR - timedelta(days=10), ANCHOR - timedelta(days=9, hours=7)),
        (ANCHOR - timedelta(hours=3), NOW),
    ]:
        mask = (series.times >= to_unix_us(start)) & (series.times < to_unix_us(stop))
        rows = await _history(conn, "demo", "pump-003", start, stop)
        _assert_same_history(rows, series, mask)

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
    assert await load_demo_plant(dsn, days=DAYS, step_seconds=STEP, now=NOW) is None
    assert await _count_rows(conn, "demo") == report.rows


async def _events(
    conn: asyncpg.Connection, tenant: str, asset_id: str
) -> list[tuple[datetime, datetime | None, str, str]]:
    rows = await conn.fetch(
        "SELECT e.start_time, e.end_time, e.failure_mode, e.description "
        "FROM failure_events e JOIN assets a USING (asset_pk) "
        "WHERE a.tenant_id = $1 AND a.asset_id = $2 ORDER BY e.start_time",
        tenant,
        asset_id,
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_demo_plant_reload_replaces_rows(dsn: str, conn: asyncpg.Connection) -> None:
    tenant = "demo-reload"
    first = await load_demo_plant(dsn, tenant=tenant, days=2, step_seconds=STEP, now=NOW)
    assert first is not None
    pks = await conn.fetch("SELECT asset_id, asset_pk FROM assets WHERE tenant_id = $1", tenant)
    later = ANCHOR + timedelta(weeks=1)  # exactly a new anchor, with one sample after it
    second = await load_demo_plant(
        dsn, tenant=tenant, days=3, step_seconds=STEP, now=later, seed=99, only_if_empty=False
    )
    assert second is not None
    assert second.anchor == later
    assert second.rows == 10 * 5 * (3 * 144 + 1)
    assert await _count_rows(conn, tenant) == second.rows
    # Same assets, updated in place: other tables may refer to them.
    again = await conn.fetch("SELECT asset_id, asset_pk FROM assets WHERE tenant_id = $1", tenant)
    assert sorted(map(tuple, again)) == sorted(map(tuple, pks))
    count = await conn.fetchval("SELECT count(*) FROM asset_grants WHERE tenant_id = $1", tenant)
    assert count == 1
    # The load made at `later` holds the sample at `later` itself.
    series = generate_asset(
        "turbine-002",
        "turbine",
        anchor=later,
        days=3,
        step_seconds=STEP,
        seed=99,
        until=later + timedelta(seconds=STEP),
    )
    rows = await _history(conn, tenant, "turbine-002")
    _assert_same_history(rows, series, np.ones(series.times.size, dtype=bool))
    plant = await read_demo_plant(dsn, tenant)
    assert plant is not None
    assert (plant.anchor, plant.seed, plant.days) == (later, 99, 3)


async def test_demo_plant_ends_now_on_the_step(dsn: str, conn: asyncpg.Connection) -> None:
    before = datetime.now(UTC)
    report = await load_demo_plant(dsn, tenant="demo-now", days=0.5, step_seconds=STEP)
    after = datetime.now(UTC)
    assert report is not None
    assert report.anchor is not None
    assert report.anchor.weekday() == 0
    assert report.anchor <= before < report.anchor + timedelta(days=7)
    last = await conn.fetchval(
        "SELECT max(ts) FROM tag_data JOIN assets USING (asset_pk) WHERE tenant_id = 'demo-now'"
    )
    # The newest sample is the last one at or before the moment of the load.
    assert to_unix_us(last) % (STEP * 1_000_000) == 0
    assert before - timedelta(seconds=STEP) < last <= after
    first = await conn.fetchval(
        "SELECT min(ts) FROM tag_data JOIN assets USING (asset_pk) WHERE tenant_id = 'demo-now'"
    )
    assert first == report.anchor - timedelta(days=0.5)


async def test_two_loads_at_different_moments_hold_the_same_plant(
    dsn: str, conn: asyncpg.Connection
) -> None:
    # Loaded in two weeks four months apart, at different times of day: the same values at
    # the same offsets from each plant's anchor, and the same failures.
    first_now = ANCHOR + timedelta(days=1, hours=3, minutes=41)
    second_now = ANCHOR + timedelta(weeks=17, days=5, hours=22, minutes=2)
    reports = [
        await load_demo_plant(dsn, tenant=tenant, days=DAYS, step_seconds=STEP, now=now)
        for tenant, now in (("moment-a", first_now), ("moment-b", second_now))
    ]
    assert all(r is not None for r in reports)
    anchors = [r.anchor for r in reports if r is not None]
    assert anchors == [ANCHOR, ANCHOR + timedelta(weeks=17)]
    shift = anchors[1] - anchors[0]
    for asset_id in ("pump-004", "turbine-002"):
        a = await _history(
            conn, "moment-a", asset_id, ANCHOR - timedelta(days=12), ANCHOR + timedelta(days=1)
        )
        b = await _history(
            conn,
            "moment-b",
            asset_id,
            ANCHOR + shift - timedelta(days=12),
            ANCHOR + shift + timedelta(days=1),
        )
        assert len(a) == len(b) == 13 * 144 * 5
        assert [(r["ts"] + shift, *r[1:]) for r in a] == [tuple(r) for r in b]
    # Failures of the first 30 days relative to the anchors (the second plant holds more: it
    # has run longer since its anchor).
    window = ANCHOR - timedelta(days=DAYS), ANCHOR
    early_a = [e for e in await _events(conn, "moment-a", "pump-002") if e[0] < window[1]]
    early_b = [e for e in await _events(conn, "moment-b", "pump-002") if e[0] < window[1] + shift]
    assert early_a
    assert [(s + shift, e and e + shift, m, d) for s, e, m, d in early_a] == early_b


async def test_the_examples_window_is_inside_the_loaded_data(
    dsn: str, conn: asyncpg.Connection
) -> None:
    # examples/predictive_maintenance.py: anchor = the pumps' first sample + the plant's
    # days (MLPLANE_DEMO_PLANT_DAYS), a Monday 00:00 UTC; the window is the 30 days before it.
    for tenant, days in (("window-90", 90), ("window-30", 30)):
        report = await load_demo_plant(dsn, tenant=tenant, days=days, step_seconds=STEP, now=NOW)
        assert report is not None
        first, last = await conn.fetchrow(
            "SELECT min(ts), max(ts) FROM tag_data JOIN assets USING (asset_pk) "
            "WHERE tenant_id = $1 AND asset_id LIKE 'pump-%'",
            tenant,
        )
        anchor = first + timedelta(days=days)
        assert anchor == report.anchor == ANCHOR
        assert (anchor.weekday(), anchor.time()) == (0, datetime.min.time())
        start, end = anchor - timedelta(days=30), anchor
        assert first <= start
        assert end <= last
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM failure_events JOIN assets USING (asset_pk) "
                "WHERE tenant_id = $1 AND start_time >= $2 AND start_time < $3",
                tenant,
                start,
                end,
            )
            >= 8
        )


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
        now=NOW,
    )
    assert (report.assets, report.tags, report.rows) == (2, 20, 2 * 21_600 * 10)
    assert report.until == NOW.replace(second=31)
    assert await _count_rows(conn, "bench") == report.rows
    gen = AssetGenerator("bench-2", "pump", anchor=ANCHOR, step_seconds=1, seed=11, n_tags=10)
    end = gen.index_through(NOW)
    series = gen.series(end - 21_600, end)
    # Windows across the seams between COPY messages (every NOISE_BLOCK samples of the domain).
    seams = [i for i in range(end - 21_600, end) if i % NOISE_BLOCK == 0]
    assert len(seams) >= 2
    for seam in seams:
        start, stop = gen.times(seam - 50, seam + 50)[[0, -1]]
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
        now=NOW,
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
    # Benchmark assets are not a demo plant: nothing to keep live.
    assert await read_demo_plant(dsn, "bench") is None


async def test_bad_arguments_are_rejected_before_anything_is_written(
    dsn: str, conn: asyncpg.Connection
) -> None:
    with pytest.raises(ValueError, match="naive"):
        await load_demo_plant(dsn, tenant="naive", days=1, now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="Monday"):
        await load_demo_plant(dsn, tenant="naive", days=1, now=NOW, anchor=NOW)
    with pytest.raises(ValueError, match="at most"):
        await load_demo_plant(dsn, tenant="naive", days=400, now=NOW)
    with pytest.raises(ValueError, match="year"):
        await load_assets(
            dsn, tenant="naive", asset_ids=["x-1"], kind="pump", days=400, hz=0.01, n_tags=1
        )
    assert await _count_rows(conn, "naive") == 0
