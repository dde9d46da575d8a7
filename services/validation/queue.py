"""The validation queue in PostgreSQL: claim a job with a lease, renew it, finish it.

Jobs are `validation_jobs` rows, inserted in the transaction that stores a version
(services/models/repository.py). A worker claims the oldest open job with
`FOR UPDATE SKIP LOCKED`, so any number of workers share the queue without taking the same
job, and writes a lease (`lease_owner`, `lease_expires`) that it renews while it works. A
job whose lease ran out (its worker died, or lost the database) is claimable again; after
`max_attempts` claims it fails as WORKER_LOST instead of killing worker after worker.

Finishing is guarded by the lease: a worker whose job was taken over writes nothing. The
report, the `validation.completed` outbox event and the audit entry commit together.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from services.models.repository import RegistryRepository

WORKER_ACTOR = "mlplane-validation-worker"
WORKER_LOST = "WORKER_LOST"


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
RETURNING j.model_id, j.version, j.tenant_id, j.attempts, v.storage_key, v.size_bytes,
          v.signature, v.metrics, v.evaluation_key, v.evaluation_label_column
"""


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


class JobQueue:
    def __init__(self, repo: RegistryRepository, owner: str, lease_seconds: float) -> None:
        self._repo = repo
        self.owner = owner
        self._lease = lease_seconds

    async def claim(self) -> Job | None:
        """The oldest claimable job, now leased to this worker; None when there is none."""
        async with self._repo.transaction() as conn:
            row = (
                await conn.execute(text(_CLAIM), {"owner": self.owner, "lease": self._lease})
            ).one_or_none()
        if row is None:
            return None
        return Job(
            model_id=str(row.model_id),
            version=int(row.version),
            tenant=row.tenant_id,
            attempts=int(row.attempts),
            storage_key=row.storage_key,
            size_bytes=int(row.size_bytes),
            signature=_json(row.signature),
            metrics={k: float(v) for k, v in _json(row.metrics).items()},
            evaluation_key=row.evaluation_key,
            evaluation_label_column=row.evaluation_label_column,
        )

    async def renew(self, job: Job) -> bool:
        """Extend the lease; False when the job is no longer this worker's."""
        async with self._repo.transaction() as conn:
            result = await conn.execute(
                text(
                    "UPDATE validation_jobs"
                    " SET lease_expires = now() + make_interval(secs => :lease)"
                    " WHERE model_id = :mid AND version = :version"
                    " AND state = 'RUNNING' AND lease_owner = :owner"
                ),
                self._key(job) | {"lease": self._lease},
            )
        return bool(result.rowcount)

    async def release(self, job: Job) -> None:
        """Give an unfinished job back (the worker is stopping): another worker takes it at
        once instead of after the lease, and this attempt does not count."""
        async with self._repo.transaction() as conn:
            await conn.execute(
                text(
                    "UPDATE validation_jobs SET state = 'PENDING', lease_owner = NULL,"
                    " lease_expires = NULL, attempts = greatest(attempts - 1, 0)"
                    " WHERE model_id = :mid AND version = :version"
                    " AND state = 'RUNNING' AND lease_owner = :owner"
                ),
                self._key(job),
            )

    async def backlog(self) -> tuple[int, float]:
        """Open jobs (pending or running) and the age of the oldest, in seconds (0 if none)."""
        async with self._repo.transaction(read_only=True) as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS jobs,"
                        " coalesce(extract(epoch FROM now() - min(create_time)), 0) AS age"
                        " FROM validation_jobs WHERE state IN ('PENDING', 'RUNNING')"
                    )
                )
            ).one()
        return int(row.jobs), float(row.age)

    async def approved_signature(self, job: Job) -> ApprovedSignature | None:
        """The signature of the model's newest approved version, if it has one."""
        async with self._repo.transaction(read_only=True) as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT version, signature FROM model_versions"
                        " WHERE model_id = :mid AND status = 'APPROVED' AND version <> :version"
                        " ORDER BY version DESC LIMIT 1"
                    ),
                    self._key(job),
                )
            ).one_or_none()
        if row is None:
            return None
        return ApprovedSignature(int(row.version), _json(row.signature))

    async def finish(
        self, job: Job, *, state: str, reason: str, message: str, report: dict[str, Any]
    ) -> bool:
        """Record the report, its outbox event and its audit entry in one transaction.
        False (and nothing written) when the job is no longer this worker's."""
        event_id = uuid.uuid4()
        event = {
            "id": str(event_id),
            "type": "validation.completed",
            "tenant": job.tenant,
            "modelId": job.model_id,
            "version": job.version,
            "state": state,
            "reason": reason,
            "message": message,
            "verdict": (report.get("compatibility") or {}).get("verdict", ""),
        }
        detail = {
            "modelId": job.model_id,
            "version": job.version,
            "state": state,
            "reason": reason,
            "attempts": job.attempts,
            "worker": self.owner,
        }
        params = self._key(job) | {
            "state": state,
            "reason": reason,
            "message": message,
            "report": json.dumps(report),
            "tenant": job.tenant,
            "eid": event_id,
            "event": json.dumps(event),
            "actor": WORKER_ACTOR,
            "resource": job.resource,
            "outcome": state if state == "PASSED" else reason,
            "detail": json.dumps(detail),
        }
        async with self._repo.transaction() as conn:
            updated = await conn.execute(
                text(
                    "UPDATE validation_jobs SET state = :state, reason = :reason,"
                    " message = :message, report = CAST(:report AS jsonb),"
                    " complete_time = now(), lease_owner = NULL, lease_expires = NULL"
                    " WHERE model_id = :mid AND version = :version"
                    " AND state = 'RUNNING' AND lease_owner = :owner"
                ),
                params,
            )
            if not updated.rowcount:
                return False
            await conn.execute(
                text(
                    "INSERT INTO outbox_events (event_id, tenant_id, model_id, event_type,"
                    " payload) VALUES (:eid, :tenant, :mid, 'validation.completed',"
                    " CAST(:event AS jsonb))"
                ),
                params,
            )
            await conn.execute(
                text(
                    "INSERT INTO audit_log (tenant_id, subject, action, resource, outcome,"
                    " request_id, detail) VALUES (:tenant, :actor, 'validation.complete',"
                    " :resource, :outcome, NULL, CAST(:detail AS jsonb))"
                ),
                params,
            )
        return True

    def _key(self, job: Job) -> dict[str, Any]:
        return {"mid": uuid.UUID(job.model_id), "version": job.version, "owner": self.owner}
