"""The database goes away: callers get a prompt 503 / UNAVAILABLE, and the
service recovers by itself when it comes back."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from services.common.devkeys import ensure_dev_keys
from services.common.errors import error_info_from_trailers
from services.common.server import RunningServer, start_server
from services.common.settings import Settings
from services.db.setup import QUERY_ROLE, RoleCredentials, role_dsn, setup_database
from services.query.service import query_spec
from services.stack.postgres import EmbeddedPostgres
from tests.tokens import Tokens

pytestmark = pytest.mark.stack


@pytest.fixture
async def query_service() -> AsyncIterator[tuple[RunningServer, EmbeddedPostgres, Tokens]]:
    root = Path(tempfile.mkdtemp(prefix="mlplane-dbdown-"))
    pg = EmbeddedPostgres(root / "state")
    pg.start()
    server: RunningServer | None = None
    try:
        creds = RoleCredentials.load_or_create(root / "state" / "db-roles.json")
        await setup_database(pg.dsn(), creds)
        conn = await asyncpg.connect(pg.dsn())
        try:
            await conn.execute(
                "INSERT INTO assets (tenant_id, asset_id) VALUES ('demo', 'pump-001');"
                "INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern,"
                " created_by) VALUES ('demo', 'role', 'data_scientist', 'pump-*', 'test')"
            )
        finally:
            await conn.close()
        settings = Settings(
            state_dir=root / "state",
            query_database_url=role_dsn(pg.dsn(), QUERY_ROLE, creds.query_password),
            db_connect_timeout_seconds=2.0,
        )
        ensure_dev_keys(settings)
        server = await start_server(
            settings, query_spec(settings), listen="127.0.0.1:0", metrics_port=0
        )
        yield server, pg, Tokens(settings)
    finally:
        if server is not None:
            await server.stop(1)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _export(port: int, token: str) -> list[pb.ExportHistoryResponse]:
    now = datetime.now(UTC)
    start, end = Timestamp(), Timestamp()
    start.FromDatetime(now - timedelta(hours=1))
    end.FromDatetime(now)
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pb_grpc.QueryServiceStub(channel).ExportHistory(
            pb.ExportHistoryRequest(asset_id="pump-001", start_time=start, end_time=end),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=30,
        )
        return [message async for message in call]


async def test_database_down_is_unavailable_then_recovers(
    query_service: tuple[RunningServer, EmbeddedPostgres, Tokens],
) -> None:
    server, pg, tokens = query_service
    token = tokens.valid("data_scientist")
    messages = await _export(server.grpc_port, token)
    assert messages[-1].manifest.row_count == 0

    pg.stop()
    started = time.monotonic()
    with pytest.raises(aio.AioRpcError) as caught:
        await _export(server.grpc_port, token)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "database is unavailable" in (caught.value.details() or "")
    assert time.monotonic() - started < 10, "a down database must fail fast, not hang"

    pg.start()
    messages = await _export(server.grpc_port, token)
    assert messages[-1].manifest.status == pb.Export.COMPLETED


async def _fill_history(pg: EmbeddedPostgres, rows: int) -> tuple[datetime, datetime]:
    """`rows` one-second samples of one tag of pump-001, ending now."""
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=rows)
    conn = await asyncpg.connect(pg.dsn())
    try:
        asset_pk = await conn.fetchval("SELECT asset_pk FROM assets WHERE asset_id = 'pump-001'")
        tag_pk = await conn.fetchval(
            "INSERT INTO tags (asset_pk, name) VALUES ($1, 'flow') RETURNING tag_pk", asset_pk
        )
        await conn.execute(
            "INSERT INTO tag_data (asset_pk, ts, tag_pk, value)"
            " SELECT $1, ts, $2, 1.5 FROM generate_series($3::timestamptz,"
            " $4::timestamptz - interval '1 second', interval '1 second') AS ts",
            asset_pk,
            tag_pk,
            start,
            end,
        )
    finally:
        await conn.close()
    return start, end


def _reason(error: aio.AioRpcError) -> str:
    info = error_info_from_trailers(error.trailing_metadata())  # type: ignore[arg-type]
    return info.reason if info is not None else ""


async def _query_sessions(pg: EmbeddedPostgres) -> list[str]:
    conn = await asyncpg.connect(pg.dsn())
    try:
        rows = await conn.fetch("SELECT state FROM pg_stat_activity WHERE usename = $1", QUERY_ROLE)
    finally:
        await conn.close()
    return [r["state"] for r in rows]


async def test_database_restart_mid_export_recovers_without_a_restart_of_its_own(
    query_service: tuple[RunningServer, EmbeddedPostgres, Tokens],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL restarts under the service: an export streaming at that moment ends with
    DATABASE_UNAVAILABLE, so does every call while it is down; once it is back, the
    service answers again by itself, every pooled connection of before is replaced, none
    is left behind, and nothing was logged as an error."""
    server, pg, tokens = query_service
    start, end = await _fill_history(pg, 200_000)
    metadata = (("authorization", f"Bearer {tokens.valid('data_scientist')}"),)
    async with aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.QueryServiceStub(channel)

        def export(s: datetime = start, e: datetime = end) -> Any:
            request = pb.ExportHistoryRequest(
                asset_id="pump-001",
                start_time=_ts(s),
                end_time=_ts(e),
                format=pb.Export.ARROW,
            )
            return stub.ExportHistory(request, metadata=metadata, timeout=60)

        # Warm the pool with several connections (all of them about to go stale).
        await asyncio.gather(
            *(stub.ListAssets(pb.ListAssetsRequest(), metadata=metadata) for _ in range(6))
        )
        streaming = export()
        await streaming.read()  # the header
        await streaming.read()  # data: the COPY runs

        pg.stop()
        with pytest.raises(aio.AioRpcError) as cut:
            while await streaming.read() is not aio.EOF:
                pass
        assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _reason(cut.value) == "DATABASE_UNAVAILABLE"
        with pytest.raises(aio.AioRpcError) as listing:
            await stub.ListAssets(pb.ListAssetsRequest(), metadata=metadata)
        with pytest.raises(aio.AioRpcError) as exporting:
            await _drain(export())
        for down in (listing, exporting):
            assert down.value.code() == grpc.StatusCode.UNAVAILABLE
            assert _reason(down.value) == "DATABASE_UNAVAILABLE"

        pg.start()
        # Back by itself: every call of a burst answers (stale connections are replaced,
        # not handed to callers as a 503 each).
        small = (end - timedelta(minutes=10), end)
        listings, exports = await asyncio.gather(
            asyncio.gather(
                *(stub.ListAssets(pb.ListAssetsRequest(), metadata=metadata) for _ in range(6))
            ),
            asyncio.gather(*(_drain(export(*small)) for _ in range(4))),
        )
        assert all(len(listing.assets) == 1 for listing in listings)
        for messages in exports:
            assert messages[-1].manifest.status == pb.Export.COMPLETED
            assert messages[-1].manifest.row_count == 600

    deadline = time.monotonic() + 30
    while True:
        sessions = await _query_sessions(pg)
        if len(sessions) <= 10 and all(s == "idle" for s in sessions):
            break
        assert time.monotonic() < deadline, f"query sessions left behind: {sessions}"
        await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
    assert "Task exception was never retrieved" not in caplog.text


async def _drain(call: Any) -> list[pb.ExportHistoryResponse]:
    return [message async for message in call]


def _ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
