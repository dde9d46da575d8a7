"""`mlplane up` as a user runs it: starts, serves, stops clean, and restarts on the same state."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import asyncpg
import httpx

from tests.stack_runner import start_stack, stop_stack


def _kid(state_dir: Path) -> str:
    return str(json.loads((state_dir / "keys" / "jwks.json").read_text())["keys"][0]["kid"])


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
        conn = await asyncpg.connect(first.admin_dsn())
        try:
            await conn.execute(
                "INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern,"
                " created_by) VALUES ('demo', 'subject', 'survivor', 'pump-*', 'test')"
            )
        finally:
            await conn.close()
    finally:
        survivors = stop_stack(first)
    assert survivors == []
    assert not (state_dir / "stack.json").exists()

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
        # Ctrl-C in a terminal is SIGINT: it must stop everything just the same.
        second.proc.send_signal(signal.SIGINT)
        second.proc.wait(60)
    finally:
        survivors = stop_stack(second)
    assert survivors == []
