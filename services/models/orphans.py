"""Objects in the store that no version row names, removed once they are old enough.

An upload stores its object, then records its version row (services/models/upload.py). A
process killed between the two (kill -9, the machine going down, a replica evicted) leaves a
whole object that no row will ever name: invisible to users, but it takes space and would be
read by nobody. The models service looks for such objects when it starts and every
`MLPLANE_ORPHAN_SWEEP_SECONDS` after, and removes those older than `MLPLANE_ORPHAN_MIN_AGE_SECONDS`.

What makes it safe beside uploads in flight (in this process or in another replica): an
upload's object exists for milliseconds before its row commits, so an object of the minimum
age (an hour by default) without a row is not waiting for one. Only keys of the registry's own
shape (`{tenant}/{model_id}/{slot}.onnx`, see `object_key`) are looked at, so a bucket shared
with other data loses nothing else; and a database that cannot answer removes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger("mlplane.models.orphans")

# The shape `object_key` gives a version's object: tenant, model id (a UUID), slot; and
# `evaluation_key` the evaluation set uploaded beside it.
_KEY = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/[1-9][0-9]{0,18}"
    r"(?:\.onnx|\.evaluation\.parquet)$"
)
# Keys are checked against the database this many at a time.
BATCH = 500


class ListableStore(Protocol):
    def listing(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every object's key and last-modified time (UTC)."""

    async def delete(self, key: str) -> None: ...


# The keys of a list that a version row names (the repository's `named_keys`).
NamedKeys = Callable[[list[str]], Awaitable[set[str]]]


@dataclass
class SweepResult:
    looked_at: int = 0
    removed: int = 0
    kept_young: int = 0


def is_registry_key(key: str) -> bool:
    """Whether `key` has the shape the registry gives its objects."""
    return _KEY.match(key) is not None


async def sweep_orphans(
    store: ListableStore,
    named_keys: NamedKeys,
    *,
    min_age: timedelta,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SweepResult:
    """Remove the store's objects of the registry's shape that are older than `min_age` and
    that no version row names. Raises what the store or the database raise (nothing of the
    batch being looked at is removed then)."""
    result = SweepResult()
    cutoff = now() - min_age
    batch: list[str] = []

    async def settle() -> None:
        named = await named_keys(batch)
        for key in batch:
            if key not in named:
                await store.delete(key)
                result.removed += 1
                log.warning(
                    "removed %s: no version names it (an upload cut off before its row)", key
                )
        batch.clear()

    async for key, modified in store.listing():
        if not is_registry_key(key):
            continue
        result.looked_at += 1
        if modified > cutoff:
            result.kept_young += 1
            continue
        batch.append(key)
        if len(batch) >= BATCH:
            await settle()
    if batch:
        await settle()
    return result


async def sweep_periodically(sweep: Callable[[], Awaitable[SweepResult]], every: timedelta) -> None:
    """Run `sweep` now and then every `every`, logging failures (a store or database that is
    down removes nothing and is tried again next time); until cancelled."""
    while True:
        try:
            result = await sweep()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything: the next round tries again
            log.warning("orphan sweep failed, removing nothing: %s", exc)
        else:
            if result.removed:
                log.warning(
                    "orphan sweep removed %d of %d objects", result.removed, result.looked_at
                )
        await asyncio.sleep(every.total_seconds())
