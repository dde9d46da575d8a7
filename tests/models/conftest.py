"""Fixtures of the model registry's tests: the real S3 server (tests/s3_server.py), a
folder for a test's own PostgreSQL and service, and a module's own PostgreSQL with the
registry's schema and roles."""

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.db.setup import REGISTRY_ROLE, RoleCredentials, role_dsn, setup_database
from services.stack.postgres import EmbeddedPostgres
from tests.conftest import starts_servers
from tests.s3_server import private_seaweedfs, s3_bucket, seaweedfs

__all__ = ["private_seaweedfs", "rig_dir", "s3_bucket", "seaweedfs"]


@pytest.fixture
def rig_dir() -> Iterator[Path]:
    """A short path of its own (PostgreSQL's socket path must stay under 108 bytes, which
    pytest's tmp_path can exceed), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="mlplane-rig-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RegistryDatabase:
    admin_dsn: str
    settings: Settings  # the registry role's DSN, and quick webhook timings for relays
    pg: EmbeddedPostgres


@pytest.fixture(scope="module")
@starts_servers
def database() -> Iterator[RegistryDatabase]:
    """An embedded PostgreSQL with the registry's schema and roles, for this module."""
    root = Path(tempfile.mkdtemp(prefix="mlplane-regdb-"))  # short: the socket's path
    pg = EmbeddedPostgres(root / "state")
    pg.start()
    try:
        creds = RoleCredentials.load_or_create(root / "state" / "db-roles.json")
        asyncio.run(setup_database(pg.dsn(), creds))
        settings = Settings(
            state_dir=root / "state",
            registry_database_url=role_dsn(pg.dsn(), REGISTRY_ROLE, creds.registry_password),
            webhook_secret="two-relays",
            webhook_poll_seconds=0.05,
            webhook_backoff_seconds=0.05,
            webhook_timeout_seconds=2.0,
        )
        yield RegistryDatabase(pg.dsn(), settings, pg)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
