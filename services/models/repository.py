"""The registry's rows, through SQLAlchemy 2 (async, asyncpg) as the registry role."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.errors import unavailable

PENDING_APPROVAL = "PENDING_APPROVAL"


@dataclass(frozen=True)
class Reservation:
    """Where an upload's bytes go while they stream: the name's model id and a storage
    slot, `{tenant}/{model_id}/{slot}.onnx`. Not the version number: that is allocated
    only when the upload is accepted, in the transaction that stores its row, so refused
    and abandoned uploads burn no number (versions are 1, 2, 3… without gaps). Without a
    race the slot is the version; see `reserve_version`."""

    model_id: str
    slot: int


@dataclass(frozen=True)
class StatusChangeRecord:
    from_status: str | None
    to_status: str
    actor: str
    comment: str
    change_time: datetime


@dataclass(frozen=True)
class AuditRecord:
    audit_pk: int
    time: datetime
    actor: str
    action: str
    resource: str
    outcome: str
    request_id: str
    detail: str  # the JSON object as stored


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    name: str
    description: str
    latest_version: int
    created_by: str
    create_time: datetime
    update_time: datetime
    latest_status: str


@dataclass(frozen=True)
class VersionRecord:
    model_id: str
    name: str
    version: int
    status: str
    description: str
    labels: dict[str, str]
    metrics: dict[str, float]
    training_export_ids: list[str]
    storage_key: str
    sha256: str
    size_bytes: int
    signature: dict[str, Any]
    created_by: str
    create_time: datetime
    update_time: datetime
    history: list[StatusChangeRecord] = field(default_factory=list)
    validation_state: str = "PENDING"
    has_evaluation_set: bool = False


@dataclass(frozen=True)
class ValidationRecord:
    """A version's validation job, and its report once done (services/validation/)."""

    model_id: str
    version: int
    state: str
    reason: str
    message: str
    attempts: int
    create_time: datetime
    start_time: datetime | None
    complete_time: datetime | None
    report: dict[str, Any]


@dataclass(frozen=True)
class EvaluationSetRecord:
    """The evaluation set stored beside a version's model."""

    storage_key: str
    sha256: str
    size_bytes: int
    label_column: str | None


@dataclass(frozen=True)
class NewVersion:
    tenant: str
    name: str
    reservation: Reservation
    description: str
    labels: dict[str, str]
    metrics: dict[str, float]
    training_export_ids: list[str]
    storage_key: str
    sha256: str
    size_bytes: int
    signature: dict[str, Any]
    created_by: str
    evaluation: EvaluationSetRecord | None = None


# Validation workers LISTEN on it: a new version is taken at once, not at the next poll.
VALIDATION_CHANNEL = "mlplane_validation"

_DB_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)


def database_unavailable() -> Exception:
    return unavailable(
        "DATABASE_UNAVAILABLE", "the registry database is unavailable; try again shortly"
    )


# asyncpg's own: what SQLAlchemy's adapter wraps in a generic `Error` (e.g. "the database
# system is starting up" while PostgreSQL recovers after a crash).
_ASYNCPG_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
    OSError,
)


def _is_connection_error(exc: sqlalchemy.exc.DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, _ASYNCPG_DOWN):
            return True
        name = type(cause).__name__
        if "Connection" in name or "CannotConnect" in name or "Shutdown" in name:
            return True
        cause = cause.__cause__
    return False


class RegistryRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Single-statement reads need no transaction: no BEGIN/COMMIT round trips.
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction (or, for reads, in autocommit), with
        connection failures reported as UNAVAILABLE."""
        try:
            if read_only:
                async with self._reads.connect() as conn:
                    yield conn
                return
            async with self._engine.begin() as conn:
                yield conn
        except _DB_DOWN as exc:
            raise database_unavailable() from exc
        except sqlalchemy.exc.DBAPIError as exc:
            if _is_connection_error(exc):
                raise database_unavailable() from exc
            raise

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection]:
        """The pooled connection's asyncpg connection, for hot single-statement reads."""
        async with self.transaction(read_only=True) as conn:
            raw = await conn.get_raw_connection()
            driver = cast("asyncpg.Connection[asyncpg.Record]", raw.driver_connection)
            try:
                yield driver
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
                # SQLAlchemy never saw this error: tell its pool the connection is gone.
                await conn.invalidate(exc)
                raise database_unavailable() from exc

    @contextlib.asynccontextmanager
    async def listening(
        self, channel: str, callback: Callable[[], None]
    ) -> AsyncIterator[Callable[[], Awaitable[None]]]:
        """LISTEN on `channel` (a constant), calling `callback` on each notification, for as
        long as the block runs; it gets a probe that raises once the connection is gone."""
        async with self._driver() as conn:

            def on_notify(*_: object) -> None:
                callback()

            await conn.add_listener(channel, on_notify)

            async def alive() -> None:
                await conn.execute("SELECT 1")

            try:
                yield alive
            finally:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(channel, on_notify)

    async def close(self) -> None:
        await self._engine.dispose()

    # --- writes ---------------------------------------------------------------------
    async def reserve_version(self, tenant: str, name: str) -> Reservation:
        """The name's model id (made on first use; invisible until a version row exists)
        and a storage slot no other upload holds. Slots count up; a failed upload gives its
        slot back when no later one was handed out (`release_slot`), so without concurrent
        uploads of one name the slot equals the version the upload gets. When uploads of
        one name race and one fails, later keys run ahead of the versions they hold (the
        row's `storage_key` is what reads use)."""
        async with self.transaction() as conn:
            row = (
                await conn.execute(
                    text(
                        """
                        INSERT INTO model_names (tenant_id, name, model_id, next_version)
                        VALUES (:tenant, :name, :model_id, 2)
                        ON CONFLICT (tenant_id, name)
                          DO UPDATE SET next_version = model_names.next_version + 1
                        RETURNING model_id, next_version - 1 AS version
                        """
                    ),
                    {"tenant": tenant, "name": name, "model_id": uuid.uuid4()},
                )
            ).one()
        return Reservation(model_id=str(row.model_id), slot=int(row.version))

    async def release_slot(self, tenant: str, name: str, reservation: Reservation) -> None:
        """Give a failed upload's slot back if it is still the last one handed out (only
        once no row can name the slot's object)."""
        async with self.transaction() as conn:
            await conn.execute(
                text(
                    "UPDATE model_names SET next_version = next_version - 1"
                    " WHERE tenant_id = :tenant AND name = :name AND model_id = :model_id"
                    " AND next_version = :slot + 1"
                ),
                {
                    "tenant": tenant,
                    "name": name,
                    "model_id": uuid.UUID(reservation.model_id),
                    "slot": reservation.slot,
                },
            )

    async def record_version(self, new: NewVersion, *, request_id: str | None) -> int:
        """Store the accepted upload's rows and return its version number, allocated here:
        one more than the model's latest, under the `models` row's lock, so concurrent
        uploads of one name get consecutive numbers in the order they commit."""
        params: dict[str, Any] = {
            "model_id": uuid.UUID(new.reservation.model_id),
            "tenant": new.tenant,
            "name": new.name,
            "description": new.description,
            "labels": json.dumps(new.labels),
            "metrics": json.dumps(new.metrics),
            "exports": new.training_export_ids,
            "key": new.storage_key,
            "sha256": new.sha256,
            "size": new.size_bytes,
            "signature": json.dumps(new.signature),
            "actor": new.created_by,
            "eval_key": new.evaluation.storage_key if new.evaluation else None,
            "eval_sha256": new.evaluation.sha256 if new.evaluation else None,
            "eval_size": new.evaluation.size_bytes if new.evaluation else None,
            "eval_label": new.evaluation.label_column if new.evaluation else None,
            "request_id": request_id,
            "detail": json.dumps(
                {"name": new.name, "sha256": new.sha256, "size_bytes": new.size_bytes}
            ),
        }
        async with self.transaction() as conn:
            # The version is allocated by the upsert (the row lock orders concurrent
            # uploads); the newest version's description describes the model.
            version = (
                await conn.execute(
                    text(
                        """
                        INSERT INTO models (model_id, tenant_id, name, description,
                                            latest_version, created_by)
                        VALUES (:model_id, :tenant, :name, :description, 1, :actor)
                        ON CONFLICT (model_id) DO UPDATE SET
                          description = EXCLUDED.description,
                          latest_version = models.latest_version + 1,
                          update_time = now()
                        RETURNING latest_version
                        """
                    ),
                    params,
                )
            ).scalar_one()
            params["version"] = int(version)
            params["resource"] = f"model/{new.reservation.model_id}/version/{version}"
            await conn.execute(
                text(
                    """
                    INSERT INTO model_versions (model_id, version, tenant_id, status, description,
                        labels, metrics, training_export_ids, storage_key, sha256, size_bytes,
                        signature, created_by, evaluation_key, evaluation_sha256,
                        evaluation_size_bytes, evaluation_label_column)
                    VALUES (:model_id, :version, :tenant, 'PENDING_APPROVAL', :description,
                        CAST(:labels AS jsonb), CAST(:metrics AS jsonb), :exports, :key, :sha256,
                        :size, CAST(:signature AS jsonb), :actor, :eval_key, :eval_sha256,
                        :eval_size, :eval_label)
                    """
                ),
                params,
            )
            # Queued in the same transaction: no version without its validation job.
            await conn.execute(
                text(
                    "INSERT INTO validation_jobs (model_id, version, tenant_id)"
                    " VALUES (:model_id, :version, :tenant)"
                ),
                params,
            )
            await conn.execute(text(f"NOTIFY {VALIDATION_CHANNEL}"))
            await conn.execute(
                text(
                    """
                    INSERT INTO model_version_status_history (model_id, version, from_status,
                        to_status, actor, comment)
                    VALUES (:model_id, :version, NULL, 'PENDING_APPROVAL', :actor, 'uploaded')
                    """
                ),
                params,
            )
            await conn.execute(
                text(
                    """
                    INSERT INTO audit_log (tenant_id, subject, action, resource, outcome,
                                           request_id, detail)
                    VALUES (:tenant, :actor, 'model.upload', :resource, 'ok', :request_id,
                            CAST(:detail AS jsonb))
                    """
                ),
                params,
            )
        return int(version)

    async def audit(
        self,
        *,
        tenant: str,
        subject: str,
        action: str,
        resource: str,
        outcome: str,
        request_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        async with self.transaction() as conn:
            await conn.execute(
                text(
                    """
                    INSERT INTO audit_log (tenant_id, subject, action, resource, outcome,
                                           request_id, detail)
                    VALUES (:tenant, :subject, :action, :resource, :outcome, :request_id,
                            CAST(:detail AS jsonb))
                    """
                ),
                {
                    "tenant": tenant,
                    "subject": subject,
                    "action": action,
                    "resource": resource,
                    "outcome": outcome,
                    "request_id": request_id,
                    "detail": json.dumps(detail, default=str),
                },
            )

    # --- reads ----------------------------------------------------------------------
    async def missing_exports(self, tenant: str, export_ids: list[str]) -> list[str]:
        if not export_ids:
            return []
        async with self.transaction(read_only=True) as conn:
            rows = await conn.execute(
                text(
                    "SELECT export_id::text FROM exports"
                    " WHERE tenant_id = :tenant AND export_id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"tenant": tenant, "ids": export_ids},
            )
            found = {r[0] for r in rows}
        return [e for e in export_ids if e not in found]

    async def list_models(
        self,
        tenant: str,
        *,
        after: str,
        limit: int,
        name: str | None,
        status: str | None,
        contains: str | None = None,
    ) -> list[ModelRecord]:
        async with self.transaction(read_only=True) as conn:
            rows = await conn.execute(
                text(
                    """
                    SELECT m.*, v.status AS latest_status FROM models m
                      JOIN model_versions v
                        ON v.model_id = m.model_id AND v.version = m.latest_version
                     WHERE m.tenant_id = :tenant AND m.name > :after
                       AND (CAST(:name AS text) IS NULL OR m.name = :name)
                       AND (CAST(:contains AS text) IS NULL OR strpos(m.name, :contains) > 0)
                       AND (CAST(:status AS text) IS NULL OR v.status = :status)
                     ORDER BY m.name
                     LIMIT :limit
                    """
                ),
                {
                    "tenant": tenant,
                    "after": after,
                    "limit": limit,
                    "name": name,
                    "contains": contains,
                    "status": status,
                },
            )
            return [_model(r._mapping) for r in rows]

    async def list_audit_entries(
        self, tenant: str, model_id: str, version: int, *, before: int, limit: int
    ) -> list[AuditRecord]:
        """A version's audit entries, newest first, from below `before` (an audit_pk)."""
        async with self._driver() as conn:
            rows = await conn.fetch(
                """
                SELECT audit_pk, event_time, subject, action, resource, outcome, request_id,
                       detail::text AS detail
                  FROM audit_log
                 WHERE tenant_id = $1 AND audit_pk < $2
                   AND (resource = $3
                        OR (detail->>'modelId' = $4 AND detail->>'version' = $5)
                        -- refusals of a decision name only the approval request
                        OR resource IN (SELECT 'approval/' || approval_id FROM approval_requests
                                         WHERE tenant_id = $1 AND model_id = $4::uuid
                                           AND version = $5::int))
                 ORDER BY audit_pk DESC
                 LIMIT $6
                """,
                tenant,
                before,
                f"model/{model_id}/version/{version}",
                model_id,
                str(version),
                limit,
            )
        return [
            AuditRecord(
                audit_pk=r["audit_pk"],
                time=r["event_time"],
                actor=r["subject"],
                action=r["action"],
                resource=r["resource"],
                outcome=r["outcome"],
                request_id=r["request_id"] or "",
                detail=r["detail"],
            )
            for r in rows
        ]

    async def get_model(self, tenant: str, model_id: str) -> ModelRecord | None:
        # The hottest read (a UI polls it): straight to asyncpg, whose statement
        # cache prepares it once per connection, skipping SQLAlchemy's
        # per-execution compile/result machinery (about a third of the call's CPU).
        async with self._driver() as conn:
            row = await conn.fetchrow(
                "SELECT m.*, v.status AS latest_status FROM models m"
                " JOIN model_versions v"
                "   ON v.model_id = m.model_id AND v.version = m.latest_version"
                " WHERE m.tenant_id = $1 AND m.model_id = $2",
                tenant,
                uuid.UUID(model_id),
            )
        return None if row is None else _model(row)

    async def list_versions(
        self, tenant: str, model_id: str, *, before: int, limit: int
    ) -> list[VersionRecord]:
        async with self._driver() as conn:
            rows = await conn.fetch(
                f"""{_VERSIONS}
                 WHERE v.tenant_id = $1 AND v.model_id = $2 AND v.version < $3
                 ORDER BY v.version DESC LIMIT $4""",
                tenant,
                uuid.UUID(model_id),
                before,
                limit,
            )
        return [_version(r) for r in rows]

    async def version_stored_at(self, tenant: str, model_id: str, key: str) -> int | None:
        """The version whose object is `key`, if its row exists."""
        async with self._driver() as conn:
            found = await conn.fetchval(
                "SELECT version FROM model_versions"
                " WHERE tenant_id = $1 AND model_id = $2 AND storage_key = $3",
                tenant,
                uuid.UUID(model_id),
                key,
            )
        return None if found is None else int(found)

    async def named_keys(self, keys: list[str]) -> set[str]:
        """Which of `keys` a version row names (storage keys are unique across tenants)."""
        if not keys:
            return set()
        async with self._driver() as conn:
            rows = await conn.fetch(
                "SELECT storage_key AS key FROM model_versions WHERE storage_key = ANY($1::text[])"
                " UNION ALL SELECT evaluation_key FROM model_versions"
                " WHERE evaluation_key = ANY($1::text[])",
                keys,
            )
        return {str(row["key"]) for row in rows}

    async def get_validation(
        self, tenant: str, model_id: str, version: int
    ) -> ValidationRecord | None:
        async with self._driver() as conn:
            row = await conn.fetchrow(
                "SELECT j.*, v.evaluation_key FROM validation_jobs j"
                " JOIN model_versions v USING (model_id, version)"
                " WHERE j.tenant_id = $1 AND j.model_id = $2 AND j.version = $3",
                tenant,
                uuid.UUID(model_id),
                version,
            )
        if row is None:
            return None
        return ValidationRecord(
            model_id=str(row["model_id"]),
            version=int(row["version"]),
            state=row["state"],
            reason=row["reason"],
            message=row["message"],
            attempts=int(row["attempts"]),
            create_time=row["create_time"],
            start_time=row["start_time"],
            complete_time=row["complete_time"],
            report=_json(row["report"]),
        )

    async def get_version(self, tenant: str, model_id: str, version: int) -> VersionRecord | None:
        async with self._driver() as conn:
            row = await conn.fetchrow(
                f"{_VERSIONS} WHERE v.tenant_id = $1 AND v.model_id = $2 AND v.version = $3",
                tenant,
                uuid.UUID(model_id),
                version,
            )
        return None if row is None else _version(row)


def _model(row: Any) -> ModelRecord:
    """From an asyncpg record or a SQLAlchemy row's `_mapping`."""
    return ModelRecord(
        model_id=str(row["model_id"]),
        name=row["name"],
        description=row["description"],
        latest_version=int(row["latest_version"]),
        created_by=row["created_by"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        latest_status=row["latest_status"],
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


# A version with its model's name and its status history in one statement: one
# round trip and one snapshot (the history always ends at the current status).
_VERSIONS = """
SELECT v.*, m.name,
       coalesce((SELECT j.state FROM validation_jobs j
                  WHERE j.model_id = v.model_id AND j.version = v.version), 'PENDING')
         AS validation_state,
       (SELECT coalesce(json_agg(json_build_array(h.from_status, h.to_status, h.actor,
                                                  h.comment, h.change_time)
                                 ORDER BY h.change_pk), '[]')
          FROM model_version_status_history h
         WHERE h.model_id = v.model_id AND h.version = v.version) AS history
  FROM model_versions v JOIN models m USING (model_id)
"""


def _version(row: Any) -> VersionRecord:
    """From an asyncpg record of `_VERSIONS`."""
    return VersionRecord(
        model_id=str(row["model_id"]),
        name=row["name"],
        version=int(row["version"]),
        status=row["status"],
        description=row["description"],
        labels=_json(row["labels"]),
        metrics=_json(row["metrics"]),
        training_export_ids=list(row["training_export_ids"]),
        storage_key=row["storage_key"],
        sha256=row["sha256"],
        size_bytes=int(row["size_bytes"]),
        signature=_json(row["signature"]),
        created_by=row["created_by"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        history=[
            StatusChangeRecord(from_, to, actor, comment, datetime.fromisoformat(changed))
            for from_, to, actor, comment, changed in _json(row["history"])
        ],
        validation_state=row["validation_state"],
        has_evaluation_set=row["evaluation_key"] is not None,
    )
