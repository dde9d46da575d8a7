"""Limits that keep one user's exports from taking the QueryService from everyone else.

* A per-user bound: a user (tenant, subject) runs at most `per_user` exports at once;
  one more is refused at once with RESOURCE_EXHAUSTED (429) `TOO_MANY_EXPORTS`.
* A share of the pool: exports together hold at most `connections` database connections,
  which is the pool less the ones kept for interactive queries (ListAssets, GetAsset, short
  manifests, and REST JSON exports: those are row-capped, so interactive by nature). An
  export that finds no share free within `wait` seconds is refused with
  `EXPORT_CAPACITY_REACHED` (429).

Both are decided before an export's first message, while the status can still change.
An export's share of the pool is given back as soon as its COPY ends (even when its
client stopped reading and the stream itself is still open), its per-user place when its
RPC ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from services.common.auth import Principal
from services.common.errors import ServiceError


class ExportSlot:
    """One admitted export's share of the pool; `release` is idempotent."""

    def __init__(self, semaphore: asyncio.Semaphore | None) -> None:
        self._semaphore: asyncio.Semaphore | None = semaphore

    def release(self) -> None:
        semaphore, self._semaphore = self._semaphore, None
        if semaphore is not None:
            semaphore.release()


class ExportLimiter:
    def __init__(self, *, per_user: int, connections: int, wait: float) -> None:
        self.per_user = per_user
        self.connections = connections
        self._wait = wait
        self._semaphore = asyncio.Semaphore(connections)
        self._running: dict[tuple[str, str], int] = {}

    def running(self, principal: Principal) -> int:
        return self._running.get((principal.tenant, principal.subject), 0)

    @contextlib.asynccontextmanager
    async def admit(
        self, principal: Principal, *, interactive: bool = False
    ) -> AsyncIterator[ExportSlot]:
        """Admit one export of `principal`'s; an `interactive` one (small by construction)
        counts for the per-user bound but uses the interactive share of the pool."""
        key = (principal.tenant, principal.subject)
        running = self._running.get(key, 0)
        if running >= self.per_user:
            raise ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "TOO_MANY_EXPORTS",
                f"you are running {running} exports, the most one user may run at once; "
                "let one finish (or cancel it) and try again",
                metadata={"limit": str(self.per_user)},
            )
        self._running[key] = running + 1
        try:
            if interactive:
                yield ExportSlot(None)
                return
            try:
                await asyncio.wait_for(self._semaphore.acquire(), self._wait)
            except TimeoutError as exc:
                raise ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "EXPORT_CAPACITY_REACHED",
                    f"all {self.connections} export connections are busy; try again shortly",
                    metadata={"limit": str(self.connections)},
                ) from exc
            slot = ExportSlot(self._semaphore)
            try:
                yield slot
            finally:
                slot.release()
        finally:
            left = self._running.get(key, 1) - 1
            if left > 0:
                self._running[key] = left
            else:
                self._running.pop(key, None)
