"""What the QueryService's stack tests share: clients through the gateway, tokens, and
reading PostgreSQL as the admin (where expected values come from)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2

from tests.admin_sql import admin_fetch
from tests.stack_runner import RunningStack


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


# --- a stack for the export limit and cancellation tests ---------------------------
QUERY_ROLE = "mlplane_query"
BULK_ASSET = "bulk-001"
# One tag at 1 Hz: 14 days are ~1.2 M rows (~60 MB of CSV), far more than every buffer
# between the service and a client that stops reading (gRPC windows, Envoy, sockets).
BULK_DAYS = 14
BULK_END = datetime(2026, 1, 15, tzinfo=UTC)


def bulk_window(hours: float | None = None) -> tuple[datetime, datetime]:
    """The whole bulk history, or its last `hours` (a small, interactive query)."""
    span = timedelta(hours=hours) if hours is not None else timedelta(days=BULK_DAYS)
    return BULK_END - span, BULK_END


def export_stack_env(**extra: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "MLPLANE_DEMO_PLANT": "false",
        "MLPLANE_DB_POOL_SIZE": "6",
        "MLPLANE_QUERY_EXPORTS_PER_USER": "2",
        "MLPLANE_QUERY_INTERACTIVE_CONNECTIONS": "2",
        "MLPLANE_QUERY_EXPORT_IDLE_TIMEOUT_SECONDS": "120",
        "MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        # Nothing is uploaded here: no version to validate, no worker to start.
        "MLPLANE_VALIDATION_WORKER": "false",
    }
    env.update(extra)
    return env


async def load_bulk_history(stack: RunningStack) -> None:
    conn = await asyncpg.connect(stack.admin_dsn())
    try:
        asset_pk = await conn.fetchval(
            "INSERT INTO assets (tenant_id, asset_id, display_name) VALUES ('demo', $1, 'bulk')"
            " RETURNING asset_pk",
            BULK_ASSET,
        )
        tag_pk = await conn.fetchval(
            "INSERT INTO tags (asset_pk, name, unit) VALUES ($1, 'flow', 'l/s') RETURNING tag_pk",
            asset_pk,
        )
        start, end = bulk_window()
        await conn.execute(
            "INSERT INTO tag_data (asset_pk, ts, tag_pk, value)"
            " SELECT $1, ts, $2, extract(epoch FROM ts)::float8 / 1e6"
            "   FROM generate_series($3::timestamptz, $4::timestamptz - interval '1 second',"
            "                        interval '1 second') AS ts",
            asset_pk,
            tag_pk,
            start,
            end,
        )
        await conn.execute(
            "INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern,"
            " created_by) VALUES ('demo', 'role', 'data_scientist', 'bulk-*', 'test')"
        )
        await conn.execute("ANALYZE tag_data")
    finally:
        await conn.close()


async def query_backends(stack: RunningStack) -> list[asyncpg.Record]:
    """The query role's sessions (other than ours), as PostgreSQL sees them."""
    return await admin_fetch(
        stack,
        "SELECT pid, state, query FROM pg_stat_activity"
        " WHERE usename = $1 AND pid <> pg_backend_pid()",
        QUERY_ROLE,
    )


async def copy_backends(stack: RunningStack) -> int:
    """How many query-role sessions are running an export's COPY right now."""
    rows = await query_backends(stack)
    return sum(1 for r in rows if r["state"] == "active" and "COPY" in (r["query"] or ""))


def wait_for(check: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Poll `check` until it holds (a deadline for polling, not a timed assertion)."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        time.sleep(0.2)


def assert_no_connection_left(stack: RunningStack, pool_size: int) -> None:
    """No export still holds a connection, and the pool is no larger than its size."""

    def settled() -> bool:
        rows = asyncio.run(query_backends(stack))
        busy = [r for r in rows if r["state"] != "idle"]
        return not busy and len(rows) <= pool_size

    wait_for(settled, "the query role's sessions back to idle, at most the pool size")


def service_log(stack: RunningStack, name: str = "query") -> str:
    path = stack.state_dir / "logs" / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def error_reason(error: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    """A failed call's status code, ErrorInfo reason and metadata."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return error.code(), info.reason, dict(info.metadata)
    return error.code(), "", {}
