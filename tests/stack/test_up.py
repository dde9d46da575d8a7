"""`mlplane up` as a user runs it: starts, serves, stops clean, and restarts on the same state;
records itself for commands run elsewhere, and keeps the demo plant up to now."""

from __future__ import annotations

import json
import signal
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.stack_runner import RunningStack, start_stack, stop_stack

pytestmark = pytest.mark.stack


def _kid(state_dir: Path) -> str:
    return str(json.loads((state_dir / "keys" / "jwks.json").read_text())["keys"][0]["kid"])


def _records(stack: RunningStack) -> list[Path]:
    return sorted((stack.xdg_state_home / "mlplane" / "stacks").glob("*.json"))


_NEWEST_HOURS = """
    SELECT a.asset_id, d.ts, d.tag_pk, d.value, d.quality
      FROM tag_data d JOIN assets a USING (asset_pk)
     WHERE a.tenant_id = 'demo' AND d.ts >= $1 AND d.ts < $2
     ORDER BY 1, 2, 3
"""


async def _rows(conn: asyncpg.Connection, start: datetime, end: datetime) -> list[Any]:
    return [tuple(r) for r in await conn.fetch(_NEWEST_HOURS, start, end)]


async def test_stop_leaves_nothing_and_restart_reuses_state(stack_root: Path) -> None:
    state_dir = stack_root / "state"
    started = time.monotonic()
    first = start_stack(state_dir, MLPLANE_DEMO_PLANT_DAYS="1")
    print(f"first start to healthy gateway: {time.monotonic() - started:.1f}s")
    try:
        async with httpx.AsyncClient() as client:
            health = await client.get(f"{first.gateway_url}/healthz", timeout=5)
        assert health.status_code == 200
        assert {"postgres", "query", "models", "envoy"} <= set(first.info["pids"])
        kid = _kid(state_dir)
        # Recorded for `mlplane token` run from another folder: private, naming this state.
        (record,) = _records(first)
        assert stat.S_IMODE(record.stat().st_mode) == 0o600
        assert json.loads(record.read_text())["state_dir"] == str(state_dir.resolve())
        conn = await asyncpg.connect(first.admin_dsn())
        try:
            await conn.execute(
                "INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern,"
                " created_by) VALUES ('demo', 'subject', 'survivor', 'pump-*', 'test')"
            )
            # The plant holds history up to the moment of the load.
            newest = await conn.fetchval("SELECT max(ts) FROM tag_data")
            assert datetime.now(UTC) - timedelta(minutes=2) < newest <= datetime.now(UTC)
            # Lose the newest hours, as if the stack had been stopped for them: the next
            # start must append exactly these rows again.
            cut = newest.replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
            lost = await _rows(conn, cut, newest + timedelta(minutes=1))
            assert len(lost) >= 2 * 60 * 10 * 5
            await conn.execute("DELETE FROM tag_data WHERE ts >= $1", cut)
        finally:
            await conn.close()
    finally:
        survivors = stop_stack(first)
    assert survivors == []
    assert not (state_dir / "stack.json").exists()
    assert _records(first) == []

    started = time.monotonic()
    second = start_stack(state_dir, MLPLANE_DEMO_PLANT_DAYS="1")
    print(f"second start (warm state) to healthy gateway: {time.monotonic() - started:.1f}s")
    try:
        assert _kid(state_dir) == kid, "the dev signing key must survive a restart"
        conn = await asyncpg.connect(second.admin_dsn())
        try:
            count = await conn.fetchval(
                "SELECT count(*) FROM asset_grants WHERE principal = 'survivor'"
            )
        finally:
            await conn.close()
        assert count == 1
        conn = await asyncpg.connect(second.admin_dsn())
        try:
            again = await _rows(conn, cut, newest + timedelta(minutes=1))
            newest_now = await conn.fetchval("SELECT max(ts) FROM tag_data")
        finally:
            await conn.close()
        assert again == lost
        assert datetime.now(UTC) - timedelta(minutes=2) < newest_now <= datetime.now(UTC)
        assert "appended" in second.log()
        # Ctrl-C in a terminal is SIGINT: it must stop everything just the same.
        second.proc.send_signal(signal.SIGINT)
        second.proc.wait(60)
    finally:
        survivors = stop_stack(second)
    assert survivors == []
