"""Tests for services.stack.postgres: real servers on unix sockets in throwaway state dirs."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.stack.postgres import PG_SYSTEM_USER, EmbeddedPostgres

pytestmark = pytest.mark.stack

REPO_ROOT = Path(__file__).resolve().parents[2]


def _wait_gone(pid: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def state_root() -> Iterator[Path]:
    # Not tmp_path: each pytest session chmods /tmp/pytest-of-<user> back to 0700, which locks
    # the unprivileged server user out mid-test whenever another session starts concurrently.
    root = Path(tempfile.mkdtemp(prefix="mlplane-pg-test-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[list[EmbeddedPostgres]]:
    """Every server a test registers here is stopped, whatever the test outcome."""
    started: list[EmbeddedPostgres] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


async def test_connect_auth_stop_and_restart_keeps_data(
    state_root: Path, servers: list[EmbeddedPostgres]
) -> None:
    state = state_root / "state"
    pg = EmbeddedPostgres(state)
    servers.append(pg)
    pg.start()
    pid = pg.pid
    assert pid is not None
    assert pg.running()
    assert stat.S_IMODE((state / "pg-superuser.password").stat().st_mode) == 0o600
    assert pg.socket_dir == state / "run"
    assert pg.dsn().startswith("postgresql://postgres:")
    assert "?host=" in pg.dsn()

    conn = await asyncpg.connect(pg.dsn())
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == "mlplane"
        assert await conn.fetchval("SHOW listen_addresses") == ""
        assert await conn.fetchval("SHOW password_encryption") == "scram-sha-256"
        await conn.execute("CREATE TABLE kept (v int)")
        await conn.execute("INSERT INTO kept VALUES (42)")
        # A password that needs URL quoting proves dsn() escapes it.
        await conn.execute("CREATE ROLE app LOGIN PASSWORD 'p@ss/w:rd%?&#'")
        await conn.execute("GRANT SELECT ON kept TO app")
    finally:
        await conn.close()

    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg.dsn(password="wrong"))
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg.dsn(user="app"))  # no password at all

    app = await asyncpg.connect(pg.dsn(user="app", password="p@ss/w:rd%?&#"))
    try:
        assert await app.fetchval("SELECT current_user") == "app"
    finally:
        await app.close()

    pg.stop()
    assert pg.pid is None
    assert not pg.running()
    assert _wait_gone(pid, timeout=1)
    assert not psutil.pid_exists(pid)
    pg.stop()  # idempotent

    # A fresh supervisor on the same state dir reuses the cluster and its password.
    again = EmbeddedPostgres(state)
    servers.append(again)
    again.start()
    assert again.pid is not None
    assert again.superuser_password == pg.superuser_password
    engine = create_async_engine(again.sqlalchemy_url())
    try:
        async with engine.connect() as sa_conn:
            assert (await sa_conn.execute(text("SELECT v FROM kept"))).scalar_one() == 42
    finally:
        await engine.dispose()


def test_refuses_data_dir_owned_by_live_postmaster(
    state_root: Path, servers: list[EmbeddedPostgres]
) -> None:
    first = EmbeddedPostgres(state_root)
    second = EmbeddedPostgres(state_root)
    servers += [first, second]
    first.start()
    with pytest.raises(RuntimeError, match=rf"running postmaster \(PID {first.pid}\)"):
        second.start()
    assert second.pid is None


def test_stale_pid_file_with_reused_pid_is_ignored(
    state_root: Path, servers: list[EmbeddedPostgres]
) -> None:
    pg = EmbeddedPostgres(state_root)
    servers.append(pg)
    pg.ensure_initialized()
    # After a crash + container restart the recorded PID may belong to an unrelated process of
    # the server's user; postgres alone would refuse to start ("lock file already exists").
    # (It ignores PIDs it may not signal, hence the squatter runs as the server user.)
    squatter = subprocess.Popen(["sleep", "60"], user=PG_SYSTEM_USER if os.geteuid() == 0 else None)
    try:
        pid_file = pg.data_dir / "postmaster.pid"
        pid_file.write_text(f"{squatter.pid}\n{pg.data_dir}\n0\n5432\n\n\n\nready\n")
        pg.start(ready_timeout=30)
        assert pg.pid is not None
    finally:
        squatter.kill()
        squatter.wait()


def test_server_dies_with_its_owner(state_root: Path) -> None:
    """PDEATHSIG survives the switch to the unprivileged user (when running as root)."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from services.stack.postgres import PG_SYSTEM_USER, EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(Path(sys.argv[1]))\n"
        "pg.start()\n"
        "print(pg.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(state_root)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    pg_pid: int | None = None
    try:
        assert owner.stdout is not None
        line = owner.stdout.readline()
        assert line, "the owner process failed to start postgres (see captured stderr)"
        pg_pid = int(line)
        assert psutil.Process(pg_pid).name() == "postgres"
        owner.send_signal(signal.SIGKILL)  # no cleanup code runs in the owner
        owner.wait()
        assert _wait_gone(pg_pid), "postmaster outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if pg_pid is not None and psutil.pid_exists(pg_pid):
            os.kill(pg_pid, signal.SIGKILL)

    # The fast shutdown left a clean data dir: a new supervisor starts on it directly.
    pg = EmbeddedPostgres(state_root)
    try:
        pg.start()
        assert pg.pid is not None
    finally:
        pg.stop()


async def test_long_state_dir_uses_short_socket_dir(state_root: Path) -> None:
    deep = state_root / ("d" * 60) / ("e" * 60)
    pg = EmbeddedPostgres(deep)
    assert pg.socket_dir.parent == Path("/tmp")
    assert len(os.fsencode(pg.socket_dir / ".s.PGSQL.5432")) <= 107
    assert EmbeddedPostgres(deep).socket_dir == pg.socket_dir  # stable across restarts
    try:
        pg.start()
        assert stat.S_IMODE(pg.socket_dir.stat().st_mode) == 0o700
        conn = await asyncpg.connect(pg.dsn())
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    finally:
        pg.stop()
        shutil.rmtree(pg.socket_dir, ignore_errors=True)


def test_dsn_quotes_credentials(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "s", database="my db")
    url = pg.dsn(user="a@b", password="p:w/d")
    assert url == f"postgresql://a%40b:p%3Aw%2Fd@/my%20db?host={tmp_path.resolve()}/s/run&port=5432"
    assert pg.sqlalchemy_url(user="u", password="x", database="d").startswith(
        "postgresql+asyncpg://u:x@/d?host="
    )
    assert pg.dsn(user="nopw").startswith("postgresql://nopw@/")
    with pytest.raises(RuntimeError, match="ensure_initialized"):
        pg.dsn()  # the superuser password does not exist before initdb


def test_startup_failure_reports_log_tail(state_root: Path) -> None:
    pg = EmbeddedPostgres(state_root)
    pg.ensure_initialized()
    with (pg.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("no_such_setting = 1\n")
    try:
        with pytest.raises(RuntimeError, match=r"(?s)exited with code.*no_such_setting"):
            pg.start(ready_timeout=30)
        assert pg.pid is None
    finally:
        pg.stop()
