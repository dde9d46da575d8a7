"""Validation jobs: one per version, queued in the transaction that stores the version, claimed
by the validation workers with a lease (services/validation/queue.py), and, once done, the
version's validation report."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.models.repositories.database import Database, Sql, from_json, record, sql

# Validation workers LISTEN on it: a new version is taken at once, not at the next poll.
VALIDATION_CHANNEL = "mlplane_validation"


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
class Job:
    """A claimed job, with what the worker needs of its version."""

    model_id: str
    version: int
    tenant: str
    attempts: int
    storage_key: str
    size_bytes: int
    signature: dict[str, Any]
    metrics: dict[str, float]
    evaluation_key: str | None
    evaluation_label_column: str | None

    @property
    def resource(self) -> str:
        return f"model/{self.model_id}/version/{self.version}"


@dataclass(frozen=True)
class ApprovedSignature:
    version: int
    signature: dict[str, Any]


def queued(model_id: uuid.UUID, version: int, tenant: str) -> tuple[Sql, Sql]:
    """A new version's job, and the notification that wakes the workers (at commit)."""
    return (
        sql(
            "INSERT INTO validation_jobs (model_id, version, tenant_id)"
            " VALUES (:model_id, :version, :tenant)",
            model_id=model_id,
            version=version,
            tenant=tenant,
        ),
        sql(f"NOTIFY {VALIDATION_CHANNEL}"),
    )


_CLAIM = """
WITH next AS (
    SELECT model_id, version FROM validation_jobs
     WHERE state = 'PENDING' OR (state = 'RUNNING' AND lease_expires < now())
     ORDER BY create_time, model_id, version
     LIMIT 1
     FOR UPDATE SKIP LOCKED
)
UPDATE validation_jobs j
   SET state = 'RUNNING', attempts = j.attempts + 1, lease_owner = :owner,
       lease_expires = now() + make_interval(secs => :lease), start_time = now()
  FROM next, model_versions v
 WHERE j.model_id = next.model_id AND j.version = next.version
   AND v.model_id = j.model_id AND v.version = j.version
RETURNING j.model_id, j.version, j.tenant_id AS tenant, j.attempts, v.storage_key,
          v.size_bytes, v.signature, v.metrics, v.evaluation_key, v.evaluation_label_column
"""
# Each `WHERE` below: the job, as long as it is still `owner`'s.
_RENEW = """
UPDATE validation_jobs SET lease_expires = now() + make_interval(secs => :lease)
 WHERE model_id = :model_id AND version = :version AND state = 'RUNNING' AND lease_owner = :owner
RETURNING true
"""
_RELEASE = """
UPDATE validation_jobs
   SET state = 'PENDING', lease_owner = NULL, lease_expires = NULL,
       attempts = greatest(attempts - 1, 0)
 WHERE model_id = :model_id AND version = :version AND state = 'RUNNING' AND lease_owner = :owner
"""
_FINISH = """
UPDATE validation_jobs
   SET state = :state, reason = :reason, message = :message, report = CAST(:report AS jsonb),
       complete_time = now(), lease_owner = NULL, lease_expires = NULL
 WHERE model_id = :model_id AND version = :version AND state = 'RUNNING' AND lease_owner = :owner
RETURNING true
"""


class ValidationJobs:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def report(self, tenant: str, model_id: str, version: int) -> ValidationRecord | None:
        row = await self._database.row(
            sql(
                "SELECT * FROM validation_jobs"
                " WHERE tenant_id = :tenant AND model_id = :model_id AND version = :version",
                tenant=tenant,
                model_id=uuid.UUID(model_id),
                version=version,
            )
        )
        return None if row is None else record(ValidationRecord, row)

    async def claim(self, owner: str, lease_seconds: float) -> Job | None:
        """The oldest claimable job, now leased to `owner`; None when there is none."""
        row = await self._database.row(sql(_CLAIM, owner=owner, lease=lease_seconds))
        if row is None:
            return None
        metrics = {k: float(v) for k, v in from_json(row["metrics"]).items()}
        return record(Job, row, metrics=metrics)

    async def renew(self, job: Job, owner: str, lease_seconds: float) -> bool:
        """Extend the lease; False when the job is no longer `owner`'s."""
        renewed = await self._database.value(sql(_RENEW, lease=lease_seconds, **_key(job, owner)))
        return bool(renewed)

    async def release(self, job: Job, owner: str) -> None:
        """Give an unfinished job back: claimable at once, and this attempt does not count."""
        await self._database.run(sql(_RELEASE, **_key(job, owner)))

    async def finish(
        self,
        job: Job,
        owner: str,
        *,
        state: str,
        reason: str,
        message: str,
        report: dict[str, Any],
        announced: list[Sql],
    ) -> bool:
        """Record the report, with the writes that announce it (its outbox event, its audit
        entry), in one transaction; False (and nothing written) when the job is no longer
        `owner`'s."""
        async with self._database.transaction() as db:
            finished = await db.value(
                sql(
                    _FINISH,
                    state=state,
                    reason=reason,
                    message=message,
                    report=json.dumps(report),
                    **_key(job, owner),
                )
            )
            if not finished:
                return False
            await db.run(*announced)
        return True

    async def backlog(self) -> tuple[int, float]:
        """Open jobs (pending or running) and the age of the oldest, in seconds (0 if none)."""
        return await self._database.backlog("validation_jobs", "state IN ('PENDING', 'RUNNING')")

    async def approved_signature(self, job: Job) -> ApprovedSignature | None:
        """The signature of the model's newest approved version other than the job's."""
        row = await self._database.row(
            sql(
                "SELECT version, signature FROM model_versions"
                " WHERE model_id = :model_id AND status = 'APPROVED' AND version <> :version"
                " ORDER BY version DESC LIMIT 1",
                model_id=uuid.UUID(job.model_id),
                version=job.version,
            )
        )
        return None if row is None else record(ApprovedSignature, row)


def _key(job: Job, owner: str) -> dict[str, Any]:
    return {"model_id": uuid.UUID(job.model_id), "version": job.version, "owner": owner}
