"""The transactional outbox: events written in the transaction of the change they announce,
then claimed, delivered and marked by the relays (services/models/outbox_relay.py).

Any number of relays share it. A relay claims due events with a lease (`lease_owner`,
`lease_expires`) in one short statement and holds no lock or connection while it posts
them; it then marks each delivered, or due again after a backoff, only while the lease is
still its own. A relay that dies leaves its leases to run out, and another takes the events
over (so an event is delivered at least once). Only the oldest undelivered event of a model
is ever claimable, and only once no live lease holds it: a model's events go out in order,
and other models go on while one waits.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from services.models.repositories.database import Database, Sql, record, sql


@dataclass(frozen=True)
class ClaimedEvent:
    event_pk: int
    payload: dict[str, Any]
    attempts: int


def event(tenant: str, model_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> Sql:
    """A new event (`kind`) about a model, for the writes of the change it announces."""
    event_id = uuid.uuid4()
    body = {"id": str(event_id), "type": kind, "tenant": tenant, **payload}
    return sql(
        "INSERT INTO outbox_events (event_id, tenant_id, model_id, event_type, payload)"
        " VALUES (:event_id, :tenant, :model_id, :kind, CAST(:payload AS jsonb))",
        event_id=event_id,
        tenant=tenant,
        model_id=model_id,
        kind=kind,
        payload=json.dumps(body),
    )


# `delivered_time` and the lease are checked on the locked row itself: a relay whose snapshot
# predates another's commit would otherwise lock a row just delivered (PostgreSQL re-checks
# only the conditions on the locked table, on the newest version of the row) and post it again.
_CLAIM = """
WITH due AS (
    SELECT e.event_pk FROM outbox_events e
     WHERE e.event_pk IN (
           SELECT DISTINCT ON (model_id) event_pk FROM outbox_events
            WHERE delivered_time IS NULL
            ORDER BY model_id, event_pk)
       AND e.delivered_time IS NULL
       AND e.next_attempt_time <= now()
       AND (e.lease_expires IS NULL OR e.lease_expires < now())
     ORDER BY e.event_pk
     LIMIT :limit
     FOR UPDATE SKIP LOCKED
)
UPDATE outbox_events e
   SET lease_owner = :owner, lease_expires = now() + make_interval(secs => :lease)
  FROM due
 WHERE e.event_pk = due.event_pk
RETURNING e.event_pk, e.payload, e.attempts
"""
_DELIVERED = """
UPDATE outbox_events
   SET delivered_time = now(), attempts = attempts + 1, last_error = NULL,
       lease_owner = NULL, lease_expires = NULL
 WHERE event_pk = :pk AND lease_owner = :owner AND delivered_time IS NULL
"""
_FAILED = """
UPDATE outbox_events
   SET attempts = attempts + 1, last_error = :error,
       next_attempt_time = now() + make_interval(secs => :delay),
       lease_owner = NULL, lease_expires = NULL
 WHERE event_pk = :pk AND lease_owner = :owner AND delivered_time IS NULL
"""


_RENEW = """
UPDATE outbox_events SET lease_expires = now() + make_interval(secs => :lease)
 WHERE event_pk = :pk AND lease_owner = :owner AND delivered_time IS NULL
RETURNING event_pk
"""


class Outbox:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def claim(self, owner: str, *, lease_seconds: float, limit: int) -> list[ClaimedEvent]:
        """Up to `limit` due events (each its model's oldest undelivered one), leased to
        `owner` for `lease_seconds`, oldest first."""
        rows = await self._database.rows(sql(_CLAIM, owner=owner, lease=lease_seconds, limit=limit))
        claimed = [record(ClaimedEvent, row) for row in rows]
        return sorted(claimed, key=lambda e: e.event_pk)

    async def renew(self, event_pk: int, owner: str, *, lease_seconds: float) -> bool:
        """Extend `owner`'s lease on a claimed event from now, right before it is posted;
        False if the lease is no longer `owner`'s (it ran out and another relay took the
        event over, which may have delivered it and the model's next ones since)."""
        renewed = await self._database.value(
            sql(_RENEW, pk=event_pk, owner=owner, lease=lease_seconds)
        )
        return renewed is not None

    async def delivered(self, event_pk: int, owner: str) -> None:
        await self._mark(_DELIVERED, pk=event_pk, owner=owner)

    async def failed(self, event_pk: int, owner: str, *, error: str, retry_seconds: float) -> None:
        """A failed delivery: due again in `retry_seconds`."""
        await self._mark(_FAILED, pk=event_pk, owner=owner, error=error[:500], delay=retry_seconds)

    async def release(self, owner: str) -> None:
        """Give back the leases `owner` still holds (its relay is stopping)."""
        await self._database.run(
            sql(
                "UPDATE outbox_events SET lease_owner = NULL, lease_expires = NULL"
                " WHERE lease_owner = :owner AND delivered_time IS NULL",
                owner=owner,
            )
        )

    async def _mark(self, statement: str, **params: Any) -> None:
        """Record how a claimed event's delivery went, and give its lease back; nothing if
        the lease is no longer `owner`'s."""
        await self._database.run(sql(statement, **params))

    async def backlog(self) -> tuple[int, float]:
        """Undelivered events, and the age of the oldest in seconds (0 if none)."""
        return await self._database.backlog("outbox_events", "delivered_time IS NULL")
