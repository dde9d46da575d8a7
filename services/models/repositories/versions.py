"""Model versions: the uploaded file's row, its status and the history of its status."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.models import workflow
from services.models.repositories import audit
from services.models.repositories.database import Database, Db, Row, Sql, from_json, record, sql
from services.models.repositories.models import Reservation
from services.models.repositories.validation_jobs import queued


@dataclass(frozen=True)
class StatusChangeRecord:
    from_status: str | None
    to_status: str
    actor: str
    comment: str
    change_time: datetime


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


@dataclass(frozen=True)
class LockedVersion:
    """A version row locked (FOR UPDATE) by the transaction that changes its status."""

    version: int
    status: str
    sha256: str
    created_by: str


# A version with its model's name, its validation state and its status history in one
# statement: one round trip and one snapshot (the history always ends at the current status).
_VERSIONS = """
SELECT v.*, m.name, v.evaluation_key IS NOT NULL AS has_evaluation_set,
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
# Versions named by (model id, version): two arrays, zipped.
_SOME_VERSIONS = f"""{_VERSIONS}
 WHERE v.tenant_id = :tenant
   AND (v.model_id, v.version) IN (
       SELECT unnest(CAST(:model_ids AS uuid[])), unnest(CAST(:versions AS bigint[])))
"""
_ONE_VERSION = (
    f"{_VERSIONS} WHERE v.tenant_id = :tenant AND v.model_id = :model_id AND v.version = :version"
)


def _version(row: Row) -> VersionRecord:
    history = [
        StatusChangeRecord(from_, to, actor, comment, datetime.fromisoformat(changed))
        for from_, to, actor, comment, changed in from_json(row["history"])
    ]
    return record(VersionRecord, row, history=history)


def status_changed(
    model_id: uuid.UUID, version: int, move: workflow.Transition, actor: str, comment: str
) -> Sql:
    """The status history's entry for `move`."""
    return sql(
        "INSERT INTO model_version_status_history (model_id, version, from_status, to_status,"
        " actor, comment) VALUES (:model_id, :version, :from_status, :to_status, :actor,"
        " :comment)",
        model_id=model_id,
        version=version,
        from_status=move.from_status,
        to_status=move.to_status,
        actor=actor,
        comment=comment,
    )


def transition(
    model_id: uuid.UUID, version: int, move: workflow.Transition, actor: str, comment: str
) -> tuple[Sql, Sql]:
    """The version's new status, and its history entry."""
    return (
        sql(
            "UPDATE model_versions SET status = :status, update_time = now()"
            " WHERE model_id = :model_id AND version = :version",
            status=move.to_status,
            model_id=model_id,
            version=version,
        ),
        status_changed(model_id, version, move, actor, comment),
    )


class Versions:
    def __init__(self, database: Database) -> None:
        self._database = database

    # --- reads ----------------------------------------------------------------------------
    async def get(self, tenant: str, model_id: str, version: int) -> VersionRecord | None:
        row = await self._database.row(
            sql(_ONE_VERSION, tenant=tenant, model_id=uuid.UUID(model_id), version=version)
        )
        return None if row is None else _version(row)

    async def page(
        self, tenant: str, model_id: str, *, before: int, limit: int
    ) -> list[VersionRecord]:
        """A model's versions, newest first, from below `before`."""
        rows = await self._database.rows(
            sql(
                f"""{_VERSIONS}
                 WHERE v.tenant_id = :tenant AND v.model_id = :model_id
                   AND v.version < :before
                 ORDER BY v.version DESC LIMIT :limit""",
                tenant=tenant,
                model_id=uuid.UUID(model_id),
                before=before,
                limit=limit,
            )
        )
        return [_version(row) for row in rows]

    @staticmethod
    async def of(
        db: Db, tenant: str, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], VersionRecord]:
        """The versions named by (model id, version), in one query."""
        if not keys:
            return {}
        rows = await db.rows(
            sql(
                _SOME_VERSIONS,
                tenant=tenant,
                model_ids=[uuid.UUID(model_id) for model_id, _ in keys],
                versions=[version for _, version in keys],
            )
        )
        found = (_version(row) for row in rows)
        return {(v.model_id, v.version): v for v in found}

    async def stored_at(self, tenant: str, model_id: str, key: str) -> int | None:
        """The version whose object is `key`, if its row exists."""
        found = await self._database.value(
            sql(
                "SELECT version FROM model_versions"
                " WHERE tenant_id = :tenant AND model_id = :model_id AND storage_key = :key",
                tenant=tenant,
                model_id=uuid.UUID(model_id),
                key=key,
            )
        )
        return None if found is None else int(found)

    async def named_keys(self, keys: list[str]) -> set[str]:
        """Which of `keys` a version row names (storage keys are unique across tenants)."""
        if not keys:
            return set()
        rows = await self._database.rows(
            sql(
                "SELECT storage_key AS key FROM model_versions"
                " WHERE storage_key = ANY(CAST(:keys AS text[]))"
                " UNION ALL SELECT evaluation_key FROM model_versions"
                " WHERE evaluation_key = ANY(CAST(:keys AS text[]))",
                keys=keys,
            )
        )
        return {str(row["key"]) for row in rows}

    async def missing_exports(self, tenant: str, export_ids: list[str]) -> list[str]:
        """Which of a new version's training exports this tenant has no record of."""
        if not export_ids:
            return []
        rows = await self._database.rows(
            sql(
                "SELECT export_id::text FROM exports"
                " WHERE tenant_id = :tenant AND export_id = ANY(CAST(:ids AS uuid[]))",
                tenant=tenant,
                ids=export_ids,
            )
        )
        found = {row[0] for row in rows}
        return [e for e in export_ids if e not in found]

    # --- writes ---------------------------------------------------------------------------
    @staticmethod
    async def lock(
        db: Db, tenant: str, model_id: uuid.UUID, version: int | None
    ) -> LockedVersion | None:
        """Lock a version (the newest when `version` is None) for a change of its status."""
        row = await db.row(
            sql(
                """
                SELECT version, status, sha256, created_by FROM model_versions
                 WHERE tenant_id = :tenant AND model_id = :model_id
                   AND version = coalesce(CAST(:version AS bigint),
                                          (SELECT max(version) FROM model_versions
                                            WHERE tenant_id = :tenant AND model_id = :model_id))
                 FOR UPDATE
                """,
                tenant=tenant,
                model_id=model_id,
                version=version,
            )
        )
        return None if row is None else record(LockedVersion, row)

    async def record(self, new: NewVersion, *, request_id: str | None) -> int:
        """Store the accepted upload's rows and return its version number, allocated here:
        one more than the model's latest, under the `models` row's lock, so concurrent
        uploads of one name get consecutive numbers in the order they commit. The version's
        validation job is queued in the same transaction: no version without its job."""
        model_id = uuid.UUID(new.reservation.model_id)
        evaluation = new.evaluation
        async with self._database.transaction() as db:
            # The version is allocated by the upsert (the row lock orders concurrent
            # uploads); the newest version's description describes the model.
            version = int(
                await db.value(
                    sql(
                        """
                        INSERT INTO models (model_id, tenant_id, name, description,
                                            latest_version, created_by)
                        VALUES (:model_id, :tenant, :name, :description, 1, :actor)
                        ON CONFLICT (model_id) DO UPDATE SET
                          description = EXCLUDED.description,
                          latest_version = models.latest_version + 1,
                          update_time = now()
                        RETURNING latest_version
                        """,
                        model_id=model_id,
                        tenant=new.tenant,
                        name=new.name,
                        description=new.description,
                        actor=new.created_by,
                    )
                )
            )
            await db.run(
                sql(
                    """
                    INSERT INTO model_versions (model_id, version, tenant_id, status, description,
                        labels, metrics, training_export_ids, storage_key, sha256, size_bytes,
                        signature, created_by, evaluation_key, evaluation_sha256,
                        evaluation_size_bytes, evaluation_label_column)
                    VALUES (:model_id, :version, :tenant, :status, :description,
                        CAST(:labels AS jsonb), CAST(:metrics AS jsonb), :exports, :key, :sha256,
                        :size, CAST(:signature AS jsonb), :actor, :eval_key, :eval_sha256,
                        :eval_size, :eval_label)
                    """,
                    model_id=model_id,
                    version=version,
                    tenant=new.tenant,
                    status=workflow.UPLOAD.to_status,
                    description=new.description,
                    labels=json.dumps(new.labels),
                    metrics=json.dumps(new.metrics),
                    exports=new.training_export_ids,
                    key=new.storage_key,
                    sha256=new.sha256,
                    size=new.size_bytes,
                    signature=json.dumps(new.signature),
                    actor=new.created_by,
                    eval_key=evaluation.storage_key if evaluation else None,
                    eval_sha256=evaluation.sha256 if evaluation else None,
                    eval_size=evaluation.size_bytes if evaluation else None,
                    eval_label=evaluation.label_column if evaluation else None,
                )
            )
            for statement in queued(model_id, version, new.tenant):
                await db.run(statement)
            await db.run(
                status_changed(model_id, version, workflow.UPLOAD, new.created_by, "uploaded")
            )
            await db.run(
                audit.entry(
                    audit.Who(new.tenant, new.created_by),
                    "model.upload",
                    f"model/{new.reservation.model_id}/version/{version}",
                    "ok",
                    request_id=request_id,
                    detail={"name": new.name, "sha256": new.sha256, "size_bytes": new.size_bytes},
                )
            )
        return version
