"""Keeping the demo plant live while `mlplane up` runs.

The plant is loaded once, up to the moment of its first load, but the README's relative
commands ("the last hour") need history up to now however long the stack has run. So `mlplane
up` brings the plant up to date when it starts (`prepare_demo_plant`) and then appends each new
minute as it passes (`PlantKeeper`). Appends render the same generator from the load's record,
so the stored rows are exactly those a fresh load would hold: the data never depends on when,
or how often, the stack ran.

Appends go through the admin DSN, as loads do; the QueryService's role stays read-only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.demo.load import (
    DEMO_TENANT,
    ExtendReport,
    LoadReport,
    extend_demo_plant,
    load_demo_plant,
    read_demo_plant,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Prepared:
    """What `prepare_demo_plant` did: loaded (or re-anchored) the plant, or caught it up."""

    loaded: LoadReport | None
    extended: ExtendReport | None
    reason: str  # why it loaded: "empty", "no record", "domain ended"; "" when it extended


async def prepare_demo_plant(
    dsn: str,
    *,
    days: float,
    seed: int,
    tenant: str = DEMO_TENANT,
    now: datetime | None = None,
) -> Prepared:
    """Load the plant into an empty tenant, or append what is missing up to ``now``.

    A plant that cannot be kept live is loaded again with a new anchor: one whose anchor's
    domain has ended (a stack not started for a year), or one loaded by an mlplane that kept
    no record of its anchor. Its assets keep their ids and keys; their history is replaced.
    """
    now = now or _utc_now()
    loaded = await load_demo_plant(dsn, tenant=tenant, days=days, seed=seed, now=now)
    if loaded is not None:
        return Prepared(loaded=loaded, extended=None, reason="empty")
    # Looked at before appending: catching up to the end of a domain only to replace it all
    # would be wasted work.
    plant = await read_demo_plant(dsn, tenant)
    if plant is not None and now < plant.domain_end:
        extended = await extend_demo_plant(dsn, tenant=tenant, now=now)
        if extended is not None:
            return Prepared(loaded=None, extended=extended, reason="")
    reason = "domain ended" if plant is not None else "no record"
    reloaded = await load_demo_plant(
        dsn, tenant=tenant, days=days, seed=seed, now=now, only_if_empty=False
    )
    return Prepared(loaded=reloaded, extended=None, reason=reason)


class PlantKeeper:
    """A thread that appends the demo plant's new samples every ``interval`` seconds.

    Ticks land just after each multiple of ``interval`` on the wall clock (plus ``lag``), so
    with the default one-minute interval a minute's sample is stored about a second after the
    minute starts. A failed tick (the database restarting, say) is reported once and retried
    at the next one; nothing is lost, since each tick appends from the newest stored sample.
    `stop` wakes the thread and waits for the tick in progress.
    """

    def __init__(
        self,
        dsn: str,
        *,
        tenant: str = DEMO_TENANT,
        interval: float = 60.0,
        lag: float = 1.0,
        clock: Clock = _utc_now,
        report: Callable[[str], None] = logger.warning,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._dsn = dsn
        self._tenant = tenant
        self._interval = interval
        self._lag = lag
        self._clock = clock
        self._report = report
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0  # successful ones
        self.failures = 0
        self.last: ExtendReport | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the keeper is already started")
        # A daemon as well as joined in stop(): a crashed `mlplane up` must not hang on it.
        self._thread = threading.Thread(target=self._run, name="demo-plant-keeper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._report("the demo plant keeper did not stop in time")
            self._thread = None

    def _delay(self) -> float:
        now = time.time()
        return self._interval - now % self._interval + self._lag

    def _run(self) -> None:
        failing = False
        said_exhausted = False
        while not self._stop.wait(self._delay()):
            try:
                report = asyncio.run(
                    extend_demo_plant(self._dsn, tenant=self._tenant, now=self._clock())
                )
            except Exception as exc:  # any failure: report it, retry at the next tick
                if not failing:
                    self._report(f"demo plant not extended ({type(exc).__name__}: {exc})")
                failing = True
                self.failures += 1
                continue
            if failing:
                self._report("demo plant extended again")
            failing = False
            self.ticks += 1
            self.last = report
            if report is not None and report.exhausted and not said_exhausted:
                said_exhausted = True
                self._report(
                    f"the demo plant's domain ended at {report.plant.domain_end:%Y-%m-%d %H:%M}"
                    " UTC; restart `mlplane up` to load it again with a new anchor"
                )
