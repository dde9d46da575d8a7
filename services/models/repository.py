"""The registry's data layer: one database (services/models/repositories/database.py) and a
repository per aggregate, each holding all the SQL of its tables:

    models           model names, storage slots, `models`          repositories/models.py
    versions         model versions and their status history       repositories/versions.py
    approvals        approval requests                             repositories/approvals.py
    outbox           events for the webhooks, and their leases     repositories/outbox.py
    audit_log        the append-only audit log                     repositories/audit.py
    validation_jobs  the validation queue and its reports          repositories/validation_jobs.py

A change that spans aggregates (a submission writes a request, a status, an event and an
audit entry) takes a `transaction()` and runs each repository's statements in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from services.models.repositories.approvals import ApprovalRecord, ApprovalRequests
from services.models.repositories.audit import AuditLog, AuditRecord
from services.models.repositories.database import Database, Db, database_unavailable
from services.models.repositories.models import ModelRecord, Models, Reservation
from services.models.repositories.outbox import Outbox
from services.models.repositories.validation_jobs import (
    VALIDATION_CHANNEL,
    ValidationJobs,
    ValidationRecord,
)
from services.models.repositories.versions import (
    EvaluationSetRecord,
    NewVersion,
    StatusChangeRecord,
    VersionRecord,
    Versions,
)

__all__ = [
    "VALIDATION_CHANNEL",
    "ApprovalRecord",
    "AuditRecord",
    "EvaluationSetRecord",
    "ModelRecord",
    "NewVersion",
    "RegistryRepository",
    "Reservation",
    "StatusChangeRecord",
    "ValidationRecord",
    "VersionRecord",
    "database_unavailable",
]


class RegistryRepository:
    def __init__(self, engine: AsyncEngine) -> None:
        self.database = Database(engine)
        self.models = Models(self.database)
        self.versions = Versions(self.database)
        self.approvals = ApprovalRequests(self.database)
        self.outbox = Outbox(self.database)
        self.audit_log = AuditLog(self.database)
        self.validation_jobs = ValidationJobs(self.database)

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Db]:
        return self.database.transaction()

    def listening(
        self, channel: str, callback: Callable[[], None]
    ) -> contextlib.AbstractAsyncContextManager[Callable[[], Awaitable[None]]]:
        return self.database.listening(channel, callback)

    async def record_version(self, new: NewVersion, *, request_id: str | None) -> int:
        """An accepted upload's rows (`Versions.record`): the one write uploads make through
        this class, so a test can fail it here."""
        return await self.versions.record(new, request_id=request_id)

    async def named_keys(self, keys: list[str]) -> set[str]:
        """Which of `keys` a version row names (the orphan sweep's question)."""
        return await self.versions.named_keys(keys)

    async def close(self) -> None:
        await self.database.close()
