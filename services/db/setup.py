"""Bring a database to the current schema and create the services' roles.

Runs as the admin (owner) role: migrations first, then the two application
roles and their grants, all idempotent, so every `mlplane up` can run it.

`run_setup` (`python -m services.db.setup`, the Helm chart's migration Job; the body meant
for `mlplane db setup`) sets the roles' passwords to those of the DSNs the services will use
(MLPLANE_QUERY_DATABASE_URL, MLPLANE_REGISTRY_DATABASE_URL) when they are given, and otherwise
to random ones kept in the state folder's db-roles.json; it never prints a password.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from sqlalchemy import exc, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.common.db import async_url, tls_connect_args
from services.common.settings import Settings

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
    "validation_jobs",
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
PASSWORD_RULE = "16-128 characters of A-Z a-z 0-9 _ -"  # noqa: S105 - a rule, not a password

ROLES_FILE = "db-roles.json"
QUERY_DSN_SETTING = "MLPLANE_QUERY_DATABASE_URL"
REGISTRY_DSN_SETTING = "MLPLANE_REGISTRY_DATABASE_URL"


class SetupError(ValueError):
    """A setting `mlplane db setup` cannot use; the message holds no password."""


def role_password(dsn: str, role: str, setting: str) -> str:
    """The password of a role DSN, checked: it must connect as `role`, with a usable password."""
    try:
        url = make_url(dsn)
    except (exc.ArgumentError, ValueError):
        # SQLAlchemy's message quotes the whole string, password included.
        raise SetupError(f"{setting} is not a database URL") from None
    if url.username != role:
        raise SetupError(f"{setting} must connect as {role}, not {url.username or 'no user'}")
    if not url.password:
        raise SetupError(f"{setting} must carry {role}'s password")
    password = str(url.password)
    if not _PASSWORD_OK.match(password):
        raise SetupError(f"{setting}: {role}'s password must be {PASSWORD_RULE}")
    return password


def masked(dsn: str) -> str:
    """A DSN fit for a log: its password (if any) as ***."""
    return make_url(dsn).render_as_string(hide_password=True)


@dataclass(frozen=True)
class RoleCredentials:
    query_password: str
    registry_password: str

    @classmethod
    def for_setup(
        cls, state_file: Path, *, query_dsn: str | None, registry_dsn: str | None
    ) -> RoleCredentials:
        """The passwords of the role DSNs the services will use, where given; the others
        from `state_file` (made with random passwords when missing). With both DSNs given
        nothing is read or written there."""
        query = role_password(query_dsn, QUERY_ROLE, QUERY_DSN_SETTING) if query_dsn else None
        registry = (
            role_password(registry_dsn, REGISTRY_ROLE, REGISTRY_DSN_SETTING)
            if registry_dsn
            else None
        )
        if query is not None and registry is not None:
            return cls(query, registry)
        stored = cls.load_or_create(state_file)
        return cls(query or stored.query_password, registry or stored.registry_password)

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
    engine: AsyncEngine = create_async_engine(
        async_url(admin_dsn), connect_args=tls_connect_args(admin_dsn), poolclass=None
    )
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


def _check_admin_dsn(dsn: str) -> None:
    try:
        make_url(dsn)
    except (exc.ArgumentError, ValueError):
        raise SetupError("MLPLANE_DATABASE_URL is not a database URL") from None
    async_url(dsn)  # a bad sslmode is refused before connecting


def run_setup(settings: Settings, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`mlplane db setup`: migrate MLPLANE_DATABASE_URL, set the roles, say so without secrets."""
    out = out or sys.stdout
    err = err or sys.stderr
    admin = settings.database_url
    if not admin:
        print("mlplane db setup: set MLPLANE_DATABASE_URL to an admin DSN", file=err)
        return 2
    state_file = settings.state_dir / ROLES_FILE
    given = {QUERY_ROLE: settings.query_database_url, REGISTRY_ROLE: settings.registry_database_url}
    try:
        _check_admin_dsn(admin)
        creds = RoleCredentials.for_setup(
            state_file, query_dsn=given[QUERY_ROLE], registry_dsn=given[REGISTRY_ROLE]
        )
    except ValueError as error:  # SetupError, or async_url's refusal of an sslmode
        print(f"mlplane db setup: {error}", file=err)
        return 2
    asyncio.run(setup_database(admin, creds))
    print(f"mlplane db setup: schema at head; roles {QUERY_ROLE} and {REGISTRY_ROLE} set", file=out)
    for setting, role, password in (
        (QUERY_DSN_SETTING, QUERY_ROLE, creds.query_password),
        (REGISTRY_DSN_SETTING, REGISTRY_ROLE, creds.registry_password),
    ):
        dsn = given[role]
        source = f"password from {setting}" if dsn else f"password in {state_file}"
        print(f"{setting}={masked(dsn or role_dsn(admin, role, password))}  ({source})", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(run_setup(Settings()))
