"""Bring a database to the current schema and create the services' roles.

Runs as the admin (owner) role: migrations first, then the two application
roles and their grants, all idempotent, so every `mlplane up` can run it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.common.db import async_url

MIGRATIONS = Path(__file__).parent / "migrations"

QUERY_ROLE = "mlplane_query"
REGISTRY_ROLE = "mlplane_registry"

# The QueryService reads production history and nothing else.
HISTORY_TABLES = ("assets", "tags", "tag_data", "failure_events", "asset_grants")
# Tables the registry may read and write (grown by the registry migrations).
REGISTRY_TABLES: tuple[str, ...] = (
    "model_names",
    "models",
    "model_versions",
    "model_version_status_history",
    "approval_requests",
    "outbox_events",
)
REGISTRY_SEQUENCES = (
    "model_version_status_history_change_pk_seq",
    "outbox_events_event_pk_seq",
)
# The query role's only write paths (SECURITY DEFINER, see migration 0002).
QUERY_FUNCTIONS = (
    "mlplane_begin_export(uuid, text, text, text, timestamptz, timestamptz, text[], bigint, text,"
    " text)",
    "mlplane_finish_export(uuid, text, bigint, text)",
    "mlplane_audit(text, text, text, text, text, text, jsonb)",
)
# Append-only for every application role.
AUDIT_TABLES = ("audit_log",)

_PASSWORD_OK = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


@dataclass(frozen=True)
class RoleCredentials:
    query_password: str
    registry_password: str

    @classmethod
    def load_or_create(cls, path: Path) -> RoleCredentials:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(data["query_password"], data["registry_password"])
        creds = cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(
                {
                    "query_password": creds.query_password,
                    "registry_password": creds.registry_password,
                },
                handle,
            )
        return creds


def role_dsn(admin_dsn: str, role: str, password: str) -> str:
    """The admin DSN with another user: same host, socket and database."""
    url = make_url(admin_dsn).set(username=role, password=password)
    return url.render_as_string(hide_password=False)


def _migrate(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _roles_sql(creds: RoleCredentials) -> list[str]:
    for password in (creds.query_password, creds.registry_password):
        if not _PASSWORD_OK.match(password):
            raise ValueError("role passwords must be 16-128 URL-safe characters")
    statements: list[str] = []
    for role, password in (
        (QUERY_ROLE, creds.query_password),
        (REGISTRY_ROLE, creds.registry_password),
    ):
        statements += [
            f"""DO $$ BEGIN
                  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} LOGIN;
                  END IF;
                END $$""",
            f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
            f"NOBYPASSRLS PASSWORD '{password}'",
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}",
            f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {role}",
            f"REVOKE CREATE ON SCHEMA public FROM {role}",
            f"GRANT USAGE ON SCHEMA public TO {role}",
        ]
    # PUBLIC must not hand out write access behind the roles' backs: no
    # objects in public, no temporary tables, no connecting for other roles.
    statements += [
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"""DO $$ BEGIN
              EXECUTE format('REVOKE TEMPORARY, CONNECT ON DATABASE %I FROM PUBLIC',
                             current_database());
              EXECUTE format('GRANT CONNECT ON DATABASE %I TO {QUERY_ROLE}, {REGISTRY_ROLE}',
                             current_database());
            END $$""",
        f"GRANT SELECT ON {', '.join(HISTORY_TABLES)} TO {QUERY_ROLE}",
        # Its manifests it may read back; writing goes through the definer functions.
        f"GRANT SELECT ON exports TO {QUERY_ROLE}, {REGISTRY_ROLE}",
        *(f"GRANT EXECUTE ON FUNCTION {fn} TO {QUERY_ROLE}" for fn in QUERY_FUNCTIONS),
        f"ALTER ROLE {QUERY_ROLE} SET default_transaction_read_only = on",
        f"GRANT SELECT, INSERT ON {', '.join(AUDIT_TABLES)} TO {REGISTRY_ROLE}",
        f"GRANT USAGE ON SEQUENCE audit_log_audit_pk_seq TO {REGISTRY_ROLE}",
    ]
    if REGISTRY_TABLES:
        tables = ", ".join(REGISTRY_TABLES)
        statements.append(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {REGISTRY_ROLE}")
        sequences = ", ".join(REGISTRY_SEQUENCES)
        statements.append(f"GRANT USAGE ON SEQUENCE {sequences} TO {REGISTRY_ROLE}")
    return statements


async def setup_database(admin_dsn: str, creds: RoleCredentials) -> None:
    engine: AsyncEngine = create_async_engine(async_url(admin_dsn), poolclass=None)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_migrate)
        async with engine.begin() as conn:
            # Serialise concurrent setups (two `mlplane up` on one database).
            await conn.execute(text("SELECT pg_advisory_xact_lock(72616)"))
            for statement in _roles_sql(creds):
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
