"""What the bench found: figures, memory, the project's targets, a table and a JSON file."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.measure import MIB, Run, Stats

Comparison = Literal["<=", "<", ">="]


@dataclass
class Figure:
    key: str
    label: str
    runs: list[Run] = field(default_factory=list)
    warmup: list[Run] = field(default_factory=list)
    # CPU per request when only a whole series was metered (the small queries).
    cpu_per_run: dict[str, float] = field(default_factory=dict)

    @property
    def stats(self) -> Stats:
        return Stats.of([r.seconds for r in self.runs])

    def extra_median(self, name: str) -> float | None:
        values = [r.extra[name] for r in self.runs if name in r.extra]
        if values:
            return statistics.median(values)
        return self.cpu_per_run.get(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "stats_seconds": asdict(self.stats),
            "runs": [asdict(r) for r in self.runs],
            "warmup": [asdict(r) for r in self.warmup],
            "cpu_per_run": self.cpu_per_run,
        }


@dataclass
class MemoryResult:
    label: str
    rows: int
    seconds: float
    baseline: dict[str, int]  # bytes, per process name
    peak: dict[str, int]
    samples: int
    extra: dict[str, float] = field(default_factory=dict)

    def growth_mb(self, name: str = "query") -> float:
        return (self.peak[name] - self.baseline[name]) / MIB

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Target:
    label: str
    value: float
    comparison: Comparison
    threshold: float
    unit: str

    @property
    def met(self) -> bool:
        if self.comparison == "<=":
            return self.value <= self.threshold
        if self.comparison == "<":
            return self.value < self.threshold
        return self.value >= self.threshold


def targets(figures: dict[str, Figure], memory: dict[str, MemoryResult]) -> list[Target]:
    """The project's targets, from whichever figures were measured."""

    def median(key: str) -> float:
        return figures[key].stats.median

    found: list[Target] = []

    def ratio(label: str, top: str, bottom: str, comparison: Comparison, limit: float) -> None:
        if top in figures and bottom in figures:
            found.append(Target(label, median(top) / median(bottom), comparison, limit, "x"))

    ratio("E1 CSV via Envoy / psql \\copy", "e1.csv", "e1.psql", "<=", 1.3)
    ratio("E1 Arrow->pandas (grpc sync) / ADBC->pandas", "e1.arrow", "e1.adbc", "<=", 1.5)
    ratio("E1 Arrow->pandas (grpc.aio) / ADBC->pandas", "e1.arrow_aio", "e1.adbc", "<=", 1.5)
    ratio("E1 pandas.read_sql / our Arrow (sync)", "e1.read_sql", "e1.arrow", ">=", 4.0)
    for key, label in [
        ("e1.csv", "E1 CSV P95"),
        ("e1.arrow", "E1 Arrow (sync) P95"),
        ("e1.arrow_aio", "E1 Arrow (aio) P95"),
    ]:
        if key in figures:
            found.append(Target(label, figures[key].stats.p95, "<", 1.0, "s"))
    for key, label in [
        ("small.rest_json", "small query REST JSON P95"),
        ("small.grpc_rows", "small query gRPC rows P95"),
    ]:
        if key in figures:
            found.append(Target(label, figures[key].stats.p95 * 1000, "<", 50.0, "ms"))
    for key, result in memory.items():
        rows_m = result.rows / 1e6
        label = f"query RSS growth, {rows_m:.1f} M rows {key.removeprefix('big.')}"
        found.append(Target(label, result.growth_mb(), "<", 100.0, "MB"))
    return found


# --- printing ----------------------------------------------------------------------------
def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.1f}"


def _row(cells: list[str], widths: list[int]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
    )


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_row(header, widths), "  ".join("-" * w for w in widths)]
    return "\n".join(lines + [_row(r, widths) for r in rows])


def figures_table(figures: dict[str, Figure]) -> str:
    rows = []
    for figure in figures.values():
        s = figure.stats
        rows.append([figure.label, _ms(s.median), _ms(s.p95), _ms(s.min), _ms(s.max), str(s.n)])
    return text_table(["figure (ms)", "median", "P95", "min", "max", "n"], rows)


def breakdown_table(figures: dict[str, Figure]) -> str:
    """Medians of the first-byte time and of each component's CPU time per run (for the small
    queries: CPU of the whole series divided by its requests)."""
    columns = ["ttfb", "cpu_query", "cpu_envoy", "cpu_postgres", "cpu_client"]
    rows = []
    for figure in figures.values():
        rows.append(
            [figure.label, _ms(figure.stats.median)]
            + [_ms(figure.extra_median(c)) for c in columns]
        )
    header = ["where the time goes (ms, CPU)", "wall", "1st byte", "query", "envoy", "pg", "client"]
    return text_table(header, rows)


def memory_table(memory: dict[str, MemoryResult]) -> str:
    rows = []
    for result in memory.values():
        rows.append(
            [
                result.label,
                f"{result.rows:,}",
                f"{result.seconds:.2f}",
                f"{result.rows_per_second / 1e6:.2f}",
                f"{result.baseline['query'] / MIB:.0f}",
                f"{result.peak['query'] / MIB:.0f}",
                f"{result.growth_mb():.1f}",
                f"{result.growth_mb('envoy'):.1f}",
            ]
        )
    header = ["big export", "rows", "s", "M rows/s", "RSS base", "peak", "growth MB", "envoy +MB"]
    return text_table(header, rows)


def targets_table(found: list[Target]) -> str:
    rows = [
        [
            t.label,
            f"{t.value:.2f} {t.unit}",
            f"{t.comparison} {t.threshold:g} {t.unit}",
            "met" if t.met else "NOT MET",
        ]
        for t in found
    ]
    return text_table(["target", "measured", "goal", ""], rows)


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def results_document(
    meta: dict[str, Any],
    figures: dict[str, Figure],
    memory: dict[str, MemoryResult],
    found: list[Target],
) -> dict[str, Any]:
    return {
        **meta,
        "figures": {k: f.to_json() for k, f in figures.items()},
        "memory": {
            k: {
                **asdict(m),
                "growth_mb": m.growth_mb(),
                "envoy_growth_mb": m.growth_mb("envoy"),
                "rows_per_second": m.rows_per_second,
            }
            for k, m in memory.items()
        },
        "targets": [{**asdict(t), "met": t.met} for t in found],
    }
