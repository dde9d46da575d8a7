"""Timing statistics, CPU accounting per process and an RSS sampler.

CPU is accounted per component (query service, Envoy, PostgreSQL, this client) so a slow
figure can be split into "who burned the time": on a two-core machine the wall time of an
export is roughly the busiest component's CPU, not the sum.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import numpy as np
import psutil

MIB = 1024 * 1024


@dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p95: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            raise ValueError("no values")
        return cls(
            n=len(values),
            median=statistics.median(values),
            # Linear interpolation: with 5 runs the P95 sits between the two slowest runs.
            p95=float(np.percentile(values, 95)),
            min=min(values),
            max=max(values),
        )


@dataclass
class Run:
    """One measured run: its wall time and whatever else the figure records."""

    seconds: float
    extra: dict[str, float] = field(default_factory=dict)


def process_cpu(process: psutil.Process, *, with_children: bool) -> float:
    try:
        times = process.cpu_times()
        total = times.user + times.system
        if not with_children:
            return total
        # Reaped children (closed backends) are in children_*; live ones are summed below.
        total += times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0.0


def machine(load_average_at_start: tuple[float, ...]) -> dict[str, object]:
    """What a result file says of the machine it was measured on."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_average_at_start": load_average_at_start,
        "load_average_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def _client_cpu() -> float:
    # The bench itself plus the curl / psql processes it has waited for.
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class CpuMeter:
    """CPU seconds spent by each stack component while a block runs (10 ms resolution)."""

    _SETTLE_SECONDS = 1.0

    def __init__(self, pids: dict[str, int]) -> None:
        self._query = psutil.Process(pids["query"])
        self._envoy = psutil.Process(pids["envoy"])
        self._postgres = psutil.Process(pids["postgres"])

    def snapshot(self) -> dict[str, float]:
        return {
            "cpu_query": process_cpu(self._query, with_children=False),
            "cpu_envoy": process_cpu(self._envoy, with_children=False),
            "cpu_postgres": process_cpu(self._postgres, with_children=True),
            "cpu_client": _client_cpu(),
        }

    def _backends(self) -> set[int]:
        try:
            return {child.pid for child in self._postgres.children()}
        except psutil.NoSuchProcess:
            return set()

    def _settle(self, backends: set[int]) -> None:
        # A client's backend exits just after the client disconnects; its CPU time reaches the
        # postmaster's children_* only once reaped, so wait (briefly) for that.
        deadline = time.monotonic() + self._SETTLE_SECONDS
        while not self._backends() <= backends and time.monotonic() < deadline:
            time.sleep(0.005)

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """Yields a dict that holds the CPU deltas once the block has finished."""
        usage: dict[str, float] = {}
        backends = self._backends()
        before = self.snapshot()
        try:
            yield usage
        finally:
            self._settle(backends)
            after = self.snapshot()
            usage.update({k: after[k] - before[k] for k in before})


def read_rss(pid: int) -> int:
    """Resident set size in bytes, from /proc (VmRSS is in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples the RSS of some processes every ``interval`` seconds in a thread."""

    # A sampler that is never stopped must not run forever: about two hours at 20 ms.
    _MAX_SAMPLES = 360_000

    def __init__(self, pids: dict[str, int], interval: float = 0.02) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self.baseline: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.samples = 0

    def _sample(self) -> dict[str, int]:
        return {name: read_rss(pid) for name, pid in self._pids.items()}

    def _loop(self) -> None:
        for _ in range(self._MAX_SAMPLES):
            for name, rss in self._sample().items():
                self.peak[name] = max(self.peak.get(name, 0), rss)
            self.samples += 1
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> RssSampler:
        # The baseline is the median of a few quiet samples, so one allocator hiccup
        # before the export does not move it.
        quiet = []
        for _ in range(5):
            quiet.append(self._sample())
            time.sleep(self._interval)
        self.baseline = {n: int(statistics.median(q[n] for q in quiet)) for n in self._pids}
        self.peak = dict(self.baseline)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def growth(self, name: str) -> int:
        return self.peak[name] - self.baseline[name]


CHILD_STOP_TIMEOUT = 60.0


def raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGTERM handler: take the same way out as Ctrl-C, so finally blocks stop everything."""
    raise KeyboardInterrupt(f"signal {signum}")


def stop_leftover_children() -> None:
    """Stop any child still running (a stack whose start was interrupted, moto, curl)."""
    children = psutil.Process().children()
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=CHILD_STOP_TIMEOUT)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
