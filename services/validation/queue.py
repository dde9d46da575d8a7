"""The validation queue, as a worker sees it: claim a job with a lease, renew it, finish it.

Jobs are `validation_jobs` rows, inserted in the transaction that stores a version; their SQL
is in services/models/repositories/validation_jobs.py. A worker claims the oldest open job
with `FOR UPDATE SKIP LOCKED`, so any number of workers share the queue without taking the
same job, and writes a lease (`lease_owner`, `lease_expires`) that it renews while it works. A
job whose lease ran out (its worker died, or lost the database) is claimable again; after
`max_attempts` claims it fails as WORKER_LOST instead of killing worker after worker.

Finishing is guarded by the lease: a worker whose job was taken over writes nothing. The
report, the `validation.completed` outbox event and the audit entry commit together.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.models.repositories import audit, outbox
from services.models.repositories.validation_jobs import ApprovedSignature, Job
from services.models.repository import RegistryRepository

__all__ = ["WORKER_ACTOR", "WORKER_LOST", "ApprovedSignature", "Job", "JobQueue"]

WORKER_ACTOR = "mlplane-validation-worker"
WORKER_LOST = "WORKER_LOST"


class JobQueue:
    def __init__(self, repo: RegistryRepository, owner: str, lease_seconds: float) -> None:
        self._jobs = repo.validation_jobs
        self.owner = owner
        self._lease = lease_seconds

    async def claim(self) -> Job | None:
        """The oldest claimable job, now leased to this worker; None when there is none."""
        return await self._jobs.claim(self.owner, self._lease)

    async def renew(self, job: Job) -> bool:
        """Extend the lease; False when the job is no longer this worker's."""
        return await self._jobs.renew(job, self.owner, self._lease)

    async def release(self, job: Job) -> None:
        """Give an unfinished job back (the worker is stopping): another worker takes it at
        once instead of after the lease, and this attempt does not count."""
        await self._jobs.release(job, self.owner)

    async def backlog(self) -> tuple[int, float]:
        """Open jobs (pending or running) and the age of the oldest, in seconds (0 if none)."""
        return await self._jobs.backlog()

    async def approved_signature(self, job: Job) -> ApprovedSignature | None:
        """The signature of the model's newest approved version, if it has one."""
        return await self._jobs.approved_signature(job)

    async def finish(
        self, job: Job, *, state: str, reason: str, message: str, report: dict[str, Any]
    ) -> bool:
        """Record the report, its outbox event and its audit entry in one transaction.
        False (and nothing written) when the job is no longer this worker's."""
        event = outbox.event(
            job.tenant,
            uuid.UUID(job.model_id),
            "validation.completed",
            {
                "modelId": job.model_id,
                "version": job.version,
                "state": state,
                "reason": reason,
                "message": message,
                "verdict": (report.get("compatibility") or {}).get("verdict", ""),
            },
        )
        entry = audit.entry(
            audit.Who(job.tenant, WORKER_ACTOR),
            "validation.complete",
            job.resource,
            state if state == "PASSED" else reason,
            request_id=None,
            detail={
                "modelId": job.model_id,
                "version": job.version,
                "state": state,
                "reason": reason,
                "attempts": job.attempts,
                "worker": self.owner,
            },
        )
        return await self._jobs.finish(
            job,
            self.owner,
            state=state,
            reason=reason,
            message=message,
            report=report,
            announced=[event, entry],
        )
