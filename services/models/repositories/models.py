"""Models: a name unique per tenant (`model_names`, which hands out storage slots) and the
`models` row that appears with its first version."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.models.repositories.database import Database, record, sql


@dataclass(frozen=True)
class Reservation:
    """Where an upload's bytes go while they stream: the name's model id and a storage
    slot, `{tenant}/{model_id}/{slot}.onnx`. Not the version number: that is allocated
    only when the upload is accepted, in the transaction that stores its row, so refused
    and abandoned uploads burn no number (versions are 1, 2, 3… without gaps). Without a
    race the slot is the version; see `Models.reserve`."""

    model_id: str
    slot: int


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


# A model with the status of its newest version.
_MODELS = """
SELECT m.*, v.status AS latest_status FROM models m
  JOIN model_versions v ON v.model_id = m.model_id AND v.version = m.latest_version
"""
_ONE_MODEL = f"{_MODELS} WHERE m.tenant_id = :tenant AND m.model_id = :model_id"


class Models:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def reserve(self, tenant: str, name: str) -> Reservation:
        """The name's model id (made on first use; invisible until a version row exists)
        and a storage slot no other upload holds. Slots count up; a failed upload gives its
        slot back when no later one was handed out (`release_slot`), so without concurrent
        uploads of one name the slot equals the version the upload gets. When uploads of
        one name race and one fails, later keys run ahead of the versions they hold (the
        row's `storage_key` is what reads use)."""
        row = await self._database.row(
            sql(
                """
                INSERT INTO model_names (tenant_id, name, model_id, next_version)
                VALUES (:tenant, :name, :model_id, 2)
                ON CONFLICT (tenant_id, name)
                  DO UPDATE SET next_version = model_names.next_version + 1
                RETURNING model_id, next_version - 1 AS slot
                """,
                tenant=tenant,
                name=name,
                model_id=uuid.uuid4(),
            )
        )
        assert row is not None
        return record(Reservation, row)

    async def release_slot(self, tenant: str, name: str, reservation: Reservation) -> None:
        """Give a failed upload's slot back if it is still the last one handed out (only
        once no row can name the slot's object)."""
        await self._database.run(
            sql(
                "UPDATE model_names SET next_version = next_version - 1"
                " WHERE tenant_id = :tenant AND name = :name AND model_id = :model_id"
                " AND next_version = :slot + 1",
                tenant=tenant,
                name=name,
                model_id=uuid.UUID(reservation.model_id),
                slot=reservation.slot,
            )
        )

    async def get(self, tenant: str, model_id: str) -> ModelRecord | None:
        # The hottest read (a UI polls it).
        row = await self._database.row(sql(_ONE_MODEL, tenant=tenant, model_id=uuid.UUID(model_id)))
        return None if row is None else record(ModelRecord, row)

    async def page(
        self,
        tenant: str,
        *,
        after: str,
        limit: int,
        name: str | None,
        status: str | None,
        contains: str | None = None,
    ) -> list[ModelRecord]:
        """Models by name, from after `after`; `name` exact, `contains` a part of it, `status`
        that of the newest version."""
        rows = await self._database.rows(
            sql(
                f"""{_MODELS}
                 WHERE m.tenant_id = :tenant AND m.name > :after
                   AND (CAST(:name AS text) IS NULL OR m.name = :name)
                   AND (CAST(:contains AS text) IS NULL OR strpos(m.name, :contains) > 0)
                   AND (CAST(:status AS text) IS NULL OR v.status = :status)
                 ORDER BY m.name
                 LIMIT :limit
                """,
                tenant=tenant,
                after=after,
                limit=limit,
                name=name,
                contains=contains,
                status=status,
            )
        )
        return [record(ModelRecord, row) for row in rows]
