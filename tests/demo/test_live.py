"""Keeping the demo plant live: appends hold exactly what a fresh load would, failures are
recorded as they start and end, `mlplane up`'s start-up decisions, and the keeper thread."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.demo.live import PlantKeeper, prepare_demo_plant
from services.demo.load import extend_demo_plant, load_assets, load_demo_plant, read_demo_plant
from services.demo.plant import AssetGenerator, plant_anchor
from tests.polling import poll_until, wait_until

ANCHOR = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
STEP = 600


async def _tenant_rows(conn: asyncpg.Connection, tenant: str) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        """
        SELECT a.asset_id, d.ts, g.name, d.value, d.quality
          FROM tag_data d JOIN assets a USING (asset_pk) JOIN tags g USING (tag_pk)
         WHERE a.tenant_id = $1
         ORDER BY a.asset_id, d.ts, g.name
        """,
        tenant,
    )
    return [tuple(r) for r in rows]


async def _tenant_events(conn: asyncpg.Connection, tenant: str) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        """
        SELECT a.asset_id, e.start_time, e.end_time, e.failure_mode, e.description
          FROM failure_events e JOIN assets a USING (asset_pk)
         WHERE a.tenant_id = $1
         ORDER BY a.asset_id, e.start_time
        """,
        tenant,
    )
    return [tuple(r) for r in rows]


async def _newest(conn: asyncpg.Connection, tenant: str) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT max(ts) FROM tag_data JOIN assets USING (asset_pk) WHERE tenant_id = $1", tenant
    )
    return value


async def test_appends_hold_what_a_fresh_load_holds(dsn: str, conn: asyncpg.Connection) -> None:
    gen = AssetGenerator("pump-001", "pump", anchor=ANCHOR, step_seconds=STEP, seed=7)
    trip = next(
        f
        for f in gen.failure_events(0, gen.n_times)
        if f.start > ANCHOR + timedelta(days=1) and f.end is not None
    )
    assert trip.end is not None
    loaded_at = trip.start - timedelta(days=1, minutes=-7)
    # Loaded weeks after its anchor: the anchor is the plant's, not the load's week.
    assert await load_demo_plant(
        dsn, tenant="live", days=3, step_seconds=STEP, now=loaded_at, anchor=ANCHOR
    )

    # The trip is recorded as it comes, with no end while the pump is down.
    down_at = trip.start + timedelta(minutes=61)
    down = await extend_demo_plant(dsn, tenant="live", now=down_at)
    assert down is not None
    new_samples = gen.index_through(down_at) - gen.index_through(loaded_at)
    assert new_samples > 24 * 6
    assert (down.rows, down.failures_started, down.failures_ended) == (10 * 5 * new_samples, 1, 0)
    assert down.until == gen.time_of(gen.index_through(down_at))
    assert not down.exhausted
    events = {e[1]: e for e in await _tenant_events(conn, "live") if e[0] == "pump-001"}
    assert events[trip.start][2] is None
    assert "repair under way" in events[trip.start][4]

    # Nothing twice: the same moment again appends nothing.
    again = await extend_demo_plant(dsn, tenant="live", now=down_at + timedelta(minutes=1))
    assert again is not None
    assert (again.rows, again.failures_started, again.failures_ended) == (0, 0, 0)

    # Its end is filled in once the pump runs again, with the repair's description.
    later = trip.end + timedelta(days=2, minutes=3)
    up = await extend_demo_plant(dsn, tenant="live", now=later)
    assert up is not None
    assert up.failures_ended >= 1
    events = {e[1]: e for e in await _tenant_events(conn, "live") if e[0] == "pump-001"}
    assert events[trip.start][2:] == (trip.end, trip.failure_mode, trip.description)

    # A fresh load at that moment (same anchor: the record's) holds exactly the same.
    fresh = await load_demo_plant(
        dsn, tenant="fresh", days=3, step_seconds=STEP, now=later, anchor=ANCHOR
    )
    assert fresh is not None
    live_rows = await _tenant_rows(conn, "live")
    assert len(live_rows) == fresh.rows
    assert live_rows == await _tenant_rows(conn, "fresh")
    assert await _tenant_events(conn, "live") == await _tenant_events(conn, "fresh")


async def test_nothing_to_extend_without_a_recorded_plant(dsn: str) -> None:
    assert await extend_demo_plant(dsn, tenant="nobody") is None
    await load_assets(
        dsn, tenant="bench-only", asset_ids=["b-001"], kind="pump", days=0.1, hz=0.01, n_tags=2
    )
    assert await extend_demo_plant(dsn, tenant="bench-only") is None


async def test_appends_stop_at_the_end_of_the_anchors_domain(
    dsn: str, conn: asyncpg.Connection
) -> None:
    await load_demo_plant(
        dsn, tenant="old", days=1, step_seconds=3600, now=ANCHOR + timedelta(hours=1)
    )
    plant = await read_demo_plant(dsn, "old")
    assert plant is not None
    report = await extend_demo_plant(dsn, tenant="old", now=ANCHOR + timedelta(days=400))
    assert report is not None
    assert report.exhausted
    assert report.until == plant.domain_end
    assert await _newest(conn, "old") == plant.domain_end - timedelta(hours=1)


async def test_prepare_loads_extends_or_reanchors(dsn: str, conn: asyncpg.Connection) -> None:
    now = ANCHOR + timedelta(days=3, hours=8, minutes=5, seconds=12)
    first = await prepare_demo_plant(dsn, tenant="prep", days=2, seed=7, now=now)
    assert (first.reason, first.extended) == ("empty", None)
    assert first.loaded is not None
    assert first.loaded.anchor == ANCHOR

    second = await prepare_demo_plant(
        dsn, tenant="prep", days=2, seed=7, now=now + timedelta(minutes=30)
    )
    assert (second.reason, second.loaded) == ("", None)
    assert second.extended is not None
    assert second.extended.rows == 30 * 10 * 5  # a sample a minute
    assert await _newest(conn, "prep") == now.replace(second=0) + timedelta(minutes=30)

    # A plant loaded before anchors were recorded cannot be kept live: loaded again.
    await conn.execute("DELETE FROM audit_log WHERE tenant_id = 'prep' AND action = 'demo.load'")
    third = await prepare_demo_plant(
        dsn, tenant="prep", days=2, seed=7, now=now + timedelta(hours=1)
    )
    assert third.reason == "no record"
    assert third.loaded is not None
    assert await read_demo_plant(dsn, "prep") is not None

    # A year on, the anchor's domain has ended: loaded again with a new anchor.
    much_later = ANCHOR + timedelta(days=380, hours=2)
    fourth = await prepare_demo_plant(dsn, tenant="prep", days=2, seed=7, now=much_later)
    assert fourth.reason == "domain ended"
    assert fourth.loaded is not None
    assert fourth.loaded.anchor == plant_anchor(much_later) != ANCHOR
    first_ts = await conn.fetchval(
        "SELECT min(ts) FROM tag_data JOIN assets USING (asset_pk) WHERE tenant_id = 'prep'"
    )
    assert first_ts == plant_anchor(much_later) - timedelta(days=2)


async def test_keeper_appends_every_tick_and_stops(dsn: str, conn: asyncpg.Connection) -> None:
    start = ANCHOR + timedelta(hours=5)
    await load_demo_plant(dsn, tenant="keeper", days=0.5, step_seconds=STEP, now=start)
    # A clock that moves one step per tick, so the test needs no minute to pass.
    steps = itertools.count(1)
    lock = threading.Lock()

    def clock() -> datetime:
        with lock:
            return start + next(steps) * timedelta(seconds=STEP)

    messages: list[str] = []
    keeper = PlantKeeper(
        dsn, tenant="keeper", interval=0.05, lag=0.0, clock=clock, report=messages.append
    )
    keeper.start()
    try:

        async def caught_up() -> bool:
            newest = await _newest(conn, "keeper")
            return newest is not None and newest >= start + 3 * timedelta(seconds=STEP)

        await wait_until(caught_up, "three ticks of the keeper appended")
    finally:
        keeper.stop()
    threads = [t for t in threading.enumerate() if t.name == "demo-plant-keeper"]
    assert threads == []
    assert keeper.ticks >= 3
    assert messages == []
    # Every tick appended its step and nothing else: no gaps, no duplicates.
    newest = await _newest(conn, "keeper")
    fresh = await load_demo_plant(
        dsn, tenant="keeper-fresh", days=0.5, step_seconds=STEP, now=newest, anchor=ANCHOR
    )
    assert fresh is not None
    assert await _tenant_rows(conn, "keeper") == await _tenant_rows(conn, "keeper-fresh")


def test_keeper_reports_a_failing_database_once_and_keeps_trying() -> None:
    messages: list[str] = []
    keeper = PlantKeeper(
        "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1",
        interval=0.05,
        lag=0.0,
        report=messages.append,
    )
    keeper.start()
    try:
        poll_until(lambda: keeper.failures >= 3, "three failed ticks")
    finally:
        keeper.stop()
    assert len(messages) == 1
    assert messages[0].startswith("demo plant not extended")
    assert keeper.ticks == 0
