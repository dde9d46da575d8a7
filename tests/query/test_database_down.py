"""The database goes away: callers get a prompt 503 / UNAVAILABLE, and the
service recovers by itself when it comes back."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from services.common.devkeys import ensure_dev_keys
from services.common.server import RunningServer, start_server
from services.common.settings import Settings
from services.db.setup import QUERY_ROLE, RoleCredentials, role_dsn, setup_database
from services.query.service import query_spec
from services.stack.postgres import EmbeddedPostgres
from tests.tokens import Tokens


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
