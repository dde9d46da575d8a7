"""A real embedded PostgreSQL per test module, migrated, for loading the plant into."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.db.setup import RoleCredentials, setup_database
from services.stack.postgres import EmbeddedPostgres
from tests.conftest import starts_servers


@pytest.fixture(scope="module")
@starts_servers
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
