"""CPU seconds per named process (models service, Envoy, moto, PostgreSQL, this client).

``bench.measure.CpuMeter`` is tied to the query service's component names; this one takes any
{name: pid}. A process that is gone counts as 0; PostgreSQL's backends are its children.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import psutil

_WITH_CHILDREN = {"postgres"}


def _cpu(process: psutil.Process, *, with_children: bool) -> float:
    try:
        times = process.cpu_times()
        total = times.user + times.system
        if with_children:
            total += times.children_user + times.children_system
            for child in process.children(recursive=True):
                try:
                    child_times = child.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += child_times.user + child_times.system
        return total
    except psutil.NoSuchProcess:
        return 0.0


def client_cpu() -> float:
    """This process plus the children it has waited for (curl, hey, wrk)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class ComponentCpu:
    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}

    def snapshot(self) -> dict[str, float]:
        found = {
            f"cpu_{name}": _cpu(p, with_children=name in _WITH_CHILDREN)
            for name, p in self._processes.items()
        }
        found["cpu_client"] = client_cpu()
        return found

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """Yields a dict that holds the CPU seconds of each component once the block is done."""
        usage: dict[str, float] = {}
        before = self.snapshot()
        try:
            yield usage
        finally:
            after = self.snapshot()
            usage.update({k: after[k] - before[k] for k in before})


def percentiles(values: list[float], points: tuple[float, ...] = (50, 95, 99)) -> list[float]:
    """Linear-interpolated percentiles (numpy's default), as bench.measure.Stats computes P95."""
    return [float(v) for v in np.percentile(values, points)]
