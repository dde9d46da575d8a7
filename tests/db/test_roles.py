"""The database roles the setup creates: the query role can read history and
write nothing at all; the audit log is append-only for the registry."""

from __future__ import annotations

import asyncpg
import pytest

from services.stack.postgres import EmbeddedPostgres
from tests.stack_runner import RunningStack

WRITES = [
    "INSERT INTO assets (tenant_id, asset_id) VALUES ('demo', 'evil-1')",
    "UPDATE tag_data SET value = 0",
    "DELETE FROM tag_data",
    "DELETE FROM audit_log",
    "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome) "
    "VALUES ('t', 's', 'a', 'r', 'o')",
    "INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern, created_by) "
    "VALUES ('demo', 'role', 'data_scientist', '*', 'me')",
    "TRUNCATE tag_data",
    "UPDATE exports SET sha256 = 'forged'",
    "DELETE FROM exports",
    "INSERT INTO exports (export_id, tenant_id, subject, asset_id, start_time, end_time, tags,"
    " encoding) VALUES (gen_random_uuid(), 'demo', 'x', 'pump-001', now(), now(), '{}', 'csv')",
    "CREATE TABLE sneaky (x int)",
    "CREATE TEMP TABLE sneaky_tmp (x int)",
]


@pytest.fixture
async def query_conn(stack: RunningStack):  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(stack.role_dsn("mlplane_query"))
    try:
        yield conn
    finally:
        await conn.close()


async def test_query_role_reads_history(query_conn: asyncpg.Connection) -> None:
    for table in ("assets", "tags", "tag_data", "failure_events", "asset_grants"):
        await query_conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608


@pytest.mark.parametrize("statement", WRITES)
async def test_query_role_cannot_write(query_conn: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.PostgresError) as caught:
        await query_conn.execute(statement)
    assert isinstance(
        caught.value, asyncpg.InsufficientPrivilegeError | asyncpg.ReadOnlySQLTransactionError
    ), caught.value


@pytest.mark.parametrize("statement", WRITES)
async def test_query_role_cannot_write_even_in_a_read_write_transaction(
    query_conn: asyncpg.Connection, statement: str
) -> None:
    # The read-only session default is only a second line: privileges must hold alone.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with query_conn.transaction(readonly=False):
            await query_conn.execute("SET TRANSACTION READ WRITE")
            await query_conn.execute(statement)


async def test_query_role_cannot_read_audit_log(query_conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await query_conn.fetch("SELECT * FROM audit_log")


async def test_audit_log_is_append_only_for_registry(stack: RunningStack) -> None:
    conn = await asyncpg.connect(stack.role_dsn("mlplane_registry"))
    try:
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome) "
            "VALUES ('t', 'test', 'test.append', 'r', 'ok')"
        )
        for statement in ("UPDATE audit_log SET outcome = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(statement)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO tag_data (asset_pk, ts, tag_pk, value) VALUES (1, now(), 1, 1)"
            )
    finally:
        await conn.close()


async def test_no_role_can_log_in_without_password(stack: RunningStack) -> None:
    dsn = EmbeddedPostgres(stack.state_dir).dsn(user="mlplane_query", password="wrong-password")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(dsn)


async def test_query_role_records_only_through_its_functions(
    query_conn: asyncpg.Connection,
) -> None:
    export_id = "00000000-0000-4000-8000-000000000001"
    async with query_conn.transaction():
        await query_conn.execute("SET TRANSACTION READ WRITE")
        await query_conn.execute(
            "SELECT mlplane_begin_export($1::uuid, 'demo', 'tester', 'pump-001', now(),"
            " now() + interval '1 hour', '{}', NULL, 'csv', 'req-1')",
            export_id,
        )
        await query_conn.execute(
            "SELECT mlplane_finish_export($1::uuid, 'completed', 10, 'aa')", export_id
        )
        # A manifest closes once: a second finish changes nothing.
        await query_conn.execute(
            "SELECT mlplane_finish_export($1::uuid, 'completed', 99, 'forged')", export_id
        )
    row = await query_conn.fetchrow(
        "SELECT status, row_count, sha256 FROM exports WHERE export_id = $1::uuid", export_id
    )
    assert row is not None
    assert (row["status"], row["row_count"], row["sha256"]) == ("completed", 10, "aa")
