"""Keeping `mlplane up`'s children alive: a crashed child (PostgreSQL, a service, Envoy) is
started again with exponential backoff instead of taking the whole stack down.

The policy is plain code (no processes) so that its timing is testable with a fake clock:
`Supervisor.tick` is called by the foreground loop and returns what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delay before restart attempt n (1-based): first, doubled each time, capped."""

    first: float = 0.5
    cap: float = 30.0
    # A child that ran this long since its last restart counts as healthy again: its next
    # crash starts from the first delay.
    healthy_after: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * 2.0 ** max(0, attempt - 1))


@dataclass
class Child:
    """One supervised child: how to tell it is alive, how to start it again."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    # Set while it is down: when it went, how many attempts failed, when to try next.
    down_since: float | None = None
    attempts: int = 0
    next_try: float = 0.0
    up_since: float = 0.0
    restarts: int = 0


@dataclass(frozen=True)
class Event:
    child: str
    kind: str  # "down", "restarted", "failed"
    message: str
    downtime: float | None = None


@dataclass
class Supervisor:
    children: list[Child]
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic

    def tick(self) -> list[Event]:
        """Looks at every child once; restarts those whose time has come."""
        events: list[Event] = []
        for child in self.children:
            now = self.clock()
            if child.down_since is None:
                if child.alive():
                    if child.attempts and now - child.up_since >= self.backoff.healthy_after:
                        child.attempts = 0
                    continue
                child.down_since = now
                child.attempts += 1
                delay = self.backoff.delay(child.attempts)
                child.next_try = now + delay
                events.append(
                    Event(child.name, "down", f"{child.name} exited; restarting in {delay:.1f}s")
                )
                continue
            if now < child.next_try:
                continue
            try:
                child.restart()
            except Exception as exc:  # the next attempt comes after a longer pause
                now = self.clock()
                child.attempts += 1
                delay = self.backoff.delay(child.attempts)
                child.next_try = now + delay
                events.append(
                    Event(
                        child.name,
                        "failed",
                        f"{child.name} did not start ({exc}); next attempt in {delay:.1f}s",
                    )
                )
                continue
            now = self.clock()
            downtime = now - child.down_since
            child.down_since = None
            child.up_since = now
            child.restarts += 1
            events.append(
                Event(
                    child.name,
                    "restarted",
                    f"{child.name} is back after {downtime:.1f}s (restart {child.restarts})",
                    downtime,
                )
            )
        return events
