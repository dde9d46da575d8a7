"""The bench's data: synthetic assets loaded with `mlplane demo load`, a read grant, and
the exact time range of each asset, read back from PostgreSQL as the admin."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg2

from tests.stack_runner import ROOT, RunningStack, stack_env

TENANT = "bench"
ROLE = "data_scientist"
SECONDS_PER_DAY = 86_400
_CLI_TIMEOUT = 1800.0  # a 10 M-row load takes well under a minute; this only bounds a hang


@dataclass(frozen=True)
class Workload:
    asset_id: str
    asset_pk: int
    start: datetime  # inclusive: the first sample
    end: datetime  # exclusive: one second after the last sample
    rows: int
    tags: list[str]  # in tag_pk order, the export's column order


def mlplane(stack: RunningStack, *args: str) -> str:
    """Run the `mlplane` CLI against the stack's state dir; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=stack_env(stack.state_dir),
        capture_output=True,
        text=True,
        timeout=_CLI_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mlplane {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def load(stack: RunningStack, *, prefix: str, days: float, tags: int = 10, hz: float = 1) -> str:
    """Load one asset ``PREFIX-001`` and grant the bench role read access to ``PREFIX-*``."""
    loaded = mlplane(
        stack,
        *("demo", "load", "--tenant", TENANT, "--assets", "1"),
        *("--days", repr(days), "--hz", repr(hz), "--tags", str(tags), "--prefix", prefix),
    )
    mlplane(stack, "grant", "add", "--tenant", TENANT, "--role", ROLE, "--assets", f"{prefix}-*")
    return loaded


def days_for_rows(rows: int, *, tags: int = 10, hz: float = 1) -> float:
    return rows / (tags * hz * SECONDS_PER_DAY)


def analyze(stack: RunningStack) -> None:
    # A freshly loaded table has no statistics until autovacuum gets to it, and without them
    # the planner sorts the whole range (a 0.5 s wait for the first byte on E1). Production
    # tables are analysed, so the bench measures that state, for references and ours alike.
    with psycopg2.connect(stack.admin_dsn()) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE tag_data, tags, assets")


def describe(stack: RunningStack, asset_id: str) -> Workload:
    conn = psycopg2.connect(stack.admin_dsn())
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT asset_pk FROM assets WHERE tenant_id = %s AND asset_id = %s",
                (TENANT, asset_id),
            )
            found = cur.fetchone()
            if found is None:
                raise RuntimeError(f"asset {asset_id} is not loaded")
            asset_pk = int(found[0])
            cur.execute(
                "SELECT min(ts), max(ts), count(*) FROM tag_data WHERE asset_pk = %s", (asset_pk,)
            )
            first, last, rows = cur.fetchone() or (None, None, 0)
            cur.execute("SELECT name FROM tags WHERE asset_pk = %s ORDER BY tag_pk", (asset_pk,))
            tags = [str(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()
    if first is None or last is None:
        raise RuntimeError(f"asset {asset_id} has no history")
    return Workload(
        asset_id=asset_id,
        asset_pk=asset_pk,
        start=first.astimezone(UTC),
        end=last.astimezone(UTC) + timedelta(seconds=1),
        rows=int(rows),
        tags=tags,
    )


def iso(value: datetime) -> str:
    """RFC 3339 with a Z, as the REST API takes it."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
