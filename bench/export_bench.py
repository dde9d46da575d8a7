"""History export benchmark against a real stack (embedded PostgreSQL, QueryService, Envoy).

    .venv/bin/python -m bench.export_bench [--runs 5] [--big-rows 10000000] [--skip-big]

Measures, on one database:
  E1 (one asset, 24 h, 10 tags at 1 Hz = 864,000 rows), the references straight from
  PostgreSQL (psql \\copy to CSV, ADBC -> pandas, pandas.read_sql) against our exports through
  Envoy (CSV with curl, Arrow over gRPC into pandas, sync and aio); the latency of a small
  query (1 tag, 1 h) over REST JSON and gRPC rows; and the query service's RSS growth while
  exporting ~10 M rows as CSV and as Arrow. Prints the figures, where the time goes, and the
  project's targets, and writes the raw numbers to bench/results/export-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import gateway_clients as ours
from bench import references as refs
from bench import workload as wl
from bench.gateway_clients import Window
from bench.measure import (
    CpuMeter,
    RssSampler,
    Run,
    machine,
    raise_interrupt,
    stop_leftover_children,
)
from bench.report import (
    Figure,
    MemoryResult,
    breakdown_table,
    figures_table,
    memory_table,
    results_document,
    targets,
    targets_table,
    write_json,
)
from tests.stack_runner import RunningStack, start_stack, stop_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
E1_ROWS = 864_000  # 1 asset x 24 h x 10 tags x 1 Hz
_BUSY_LOAD = 0.5  # 1-minute load average above which the machine is not quiet
_PACKAGES = [
    "grpcio",
    "pyarrow",
    "pandas",
    "adbc-driver-postgresql",
    "psycopg2-binary",
    "sqlalchemy",
    "httpx",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.export_bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="measured runs per E1 figure (>= 5)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first (default 1)")
    parser.add_argument(
        "--small-requests", type=int, default=200, help="requests per small-query figure"
    )
    parser.add_argument(
        "--big-rows", type=int, default=10_000_000, help="rows of the memory export (~10 M)"
    )
    parser.add_argument("--skip-big", action="store_true", help="skip the memory export")
    parser.add_argument(
        "--reference-role",
        choices=["query", "admin"],
        default="query",
        help="database role of the references (default: the service's read-only role)",
    )
    parser.add_argument("--keep-state", action="store_true", help="keep the stack's state dir")
    args = parser.parse_args(argv)
    if not 5 <= args.runs <= 100:
        parser.error("--runs must be 5-100 (the figures are medians of at least 5 runs)")
    if not 0 <= args.warmup <= 10 or not 20 <= args.small_requests <= 10_000:
        parser.error("--warmup must be 0-10 and --small-requests 20-10000")
    if not 100_000 <= args.big_rows <= 100_000_000:
        parser.error("--big-rows must be 100000-100000000")
    return args


def _token(stack: RunningStack) -> str:
    # One fresh token per phase: each lives an hour, far longer than any phase.
    return stack.tokens.valid(wl.ROLE, tenant=wl.TENANT)


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --- phases ----------------------------------------------------------------------------
def load_workloads(stack: RunningStack, args: argparse.Namespace) -> dict[str, wl.Workload]:
    _progress("loading E1: " + wl.load(stack, prefix="e1", days=1))
    if not args.skip_big:
        days = wl.days_for_rows(args.big_rows)
        _progress(f"loading big ({days:.4f} days): " + wl.load(stack, prefix="big", days=days))
    wl.analyze(stack)
    loaded = {"e1": wl.describe(stack, "e1-001")}
    if loaded["e1"].rows != E1_ROWS:
        raise RuntimeError(f"E1 has {loaded['e1'].rows} rows, expected {E1_ROWS}")
    if not args.skip_big:
        loaded["big"] = wl.describe(stack, "big-001")
    for name, w in loaded.items():
        _progress(f"{name}: {w.asset_id} [{wl.iso(w.start)}, {wl.iso(w.end)}) {w.rows:,} rows")
    return loaded


def e1_figures(
    stack: RunningStack, e1: wl.Workload, args: argparse.Namespace, work_dir: Path
) -> dict[str, Figure]:
    """Every E1 figure once per round, so drift (caches, the machine) hits them alike."""
    dsn = stack.admin_dsn() if args.reference_role == "admin" else stack.role_dsn("mlplane_query")
    token = _token(stack)
    window = Window.of(e1)
    csv_out = work_dir / "e1.csv"
    target, url = stack.gateway_target, stack.gateway_url
    plan: list[tuple[str, str, Callable[[], Run]]] = [
        ("e1.psql", "E1 psql \\copy -> CSV file", lambda: refs.psql_copy(dsn, e1, csv_out)),
        ("e1.adbc", "E1 ADBC -> pandas", lambda: refs.adbc_to_pandas(dsn, e1)),
        ("e1.read_sql", "E1 pandas.read_sql (psycopg2)", lambda: refs.read_sql_to_pandas(dsn, e1)),
        (
            "e1.csv",
            "E1 CSV via Envoy (curl)",
            lambda: ours.curl_csv(url, token, window, csv_out, e1.rows),
        ),
        (
            "e1.arrow",
            "E1 Arrow gRPC -> pandas (sync)",
            lambda: ours.grpc_arrow_to_pandas(target, token, window, e1.rows),
        ),
        (
            "e1.arrow_aio",
            "E1 Arrow gRPC -> pandas (aio)",
            lambda: ours.grpc_aio_arrow_to_pandas(target, token, window, e1.rows),
        ),
    ]
    figures = {key: Figure(key, label) for key, label, _ in plan}
    cpu = CpuMeter(stack.info["pids"])
    for round_no in range(args.warmup + args.runs):
        warm = round_no < args.warmup
        times = []
        for key, _, measure in plan:
            gc.collect()  # the previous DataFrame must not be freed inside the next timing
            with cpu.measure() as usage:
                run = measure()
            run.extra.update(usage)
            (figures[key].warmup if warm else figures[key].runs).append(run)
            times.append(f"{key.removeprefix('e1.')} {run.seconds:.2f}s")
        label = "warm-up" if warm else f"run {round_no - args.warmup + 1}/{args.runs}"
        _progress(f"E1 {label}: " + ", ".join(times))
    return figures


def small_figures(
    stack: RunningStack, e1: wl.Workload, args: argparse.Namespace
) -> dict[str, Figure]:
    window = Window.of(e1).small(e1.tags[0])
    token = _token(stack)
    warmup = max(10, args.small_requests // 10)
    cpu = CpuMeter(stack.info["pids"])
    gateway = {"rest": stack.gateway_url, "grpc": stack.gateway_target}
    plan: list[tuple[str, str, str, Callable[..., list[float]]]] = [
        ("small.rest_json", "small query REST JSON (1 tag, 1 h)", "rest", ours.rest_json_latencies),
        ("small.grpc_rows", "small query gRPC rows (1 tag, 1 h)", "grpc", ours.grpc_rows_latencies),
        # Not a target: shows how much of the small query's time is the row encoding.
        ("small.grpc_arrow", "small query gRPC Arrow (info)", "grpc", ours.grpc_arrow_latencies),
    ]
    figures: dict[str, Figure] = {}
    for key, label, api, measure in plan:
        with cpu.measure() as usage:
            latencies = measure(
                gateway[api], token, window, requests=args.small_requests, warmup=warmup
            )
        requests = args.small_requests + warmup
        figures[key] = Figure(
            key,
            label,
            runs=[Run(s) for s in latencies],
            cpu_per_run={k: v / requests for k, v in usage.items()},
        )
        s = figures[key].stats
        _progress(f"{label}: P50 {s.median * 1000:.1f} ms, P95 {s.p95 * 1000:.1f} ms")
    return figures


def memory_results(stack: RunningStack, big: wl.Workload) -> dict[str, MemoryResult]:
    pids = stack.info["pids"]
    cpu = CpuMeter(pids)
    window = Window.of(big)
    results: dict[str, MemoryResult] = {}
    plan: list[tuple[str, str, Callable[[str], Run]]] = [
        (
            "big.csv",
            "CSV via Envoy (curl > /dev/null)",
            lambda t: ours.curl_csv(stack.gateway_url, t, window, None, big.rows),
        ),
        (
            "big.arrow",
            "Arrow gRPC (batches discarded)",
            lambda t: ours.grpc_arrow_discard(stack.gateway_target, t, window, big.rows),
        ),
    ]
    for key, label, export in plan:
        token = _token(stack)
        gc.collect()
        rss = RssSampler({"query": pids["query"], "envoy": pids["envoy"]})
        with rss, cpu.measure() as usage:
            run = export(token)
        run.extra.update(usage)
        results[key] = MemoryResult(
            label=label,
            rows=big.rows,
            seconds=run.seconds,
            baseline=rss.baseline,
            peak=rss.peak,
            samples=rss.samples,
            extra=run.extra,
        )
        _progress(f"big {label}: {run.seconds:.2f}s, query RSS +{results[key].growth_mb():.1f} MB")
    return results


# --- the run -------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    curl = subprocess.run(
        [ours.curl_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    found["curl"] = curl.stdout.split("\n", 1)[0]
    return found


def _meta(
    args: argparse.Namespace, loaded: dict[str, wl.Workload], load_at_start: tuple[float, ...]
) -> dict[str, Any]:
    return {
        "bench": "export",
        "time": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "machine": machine(load_at_start),
        "versions": _versions(),
        "workloads": {k: asdict(w) for k, w in loaded.items()},
        "notes": {
            "reference_role": args.reference_role,
            "analyzed": "ANALYZE tag_data, tags, assets ran after loading",
            "p95": "numpy linear interpolation; with 5 runs it lies between the two slowest",
            "aio_timing": "grpc.aio is timed inside the event loop (loop start-up excluded)",
        },
    }


def run(
    args: argparse.Namespace, stack: RunningStack, work_dir: Path, load_at_start: tuple[float, ...]
) -> Path:
    loaded = load_workloads(stack, args)
    figures = e1_figures(stack, loaded["e1"], args, work_dir)
    figures.update(small_figures(stack, loaded["e1"], args))
    memory = {} if args.skip_big else memory_results(stack, loaded["big"])
    found = targets(figures, memory)
    print("\n" + figures_table(figures))
    print("\n" + breakdown_table(figures))
    if memory:
        print("\n" + memory_table(memory))
    print("\n" + targets_table(found) + "\n")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"export-{stamp}.json"
    write_json(path, results_document(_meta(args, loaded, load_at_start), figures, memory, found))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="mlplane-bench-"))
    work_dir = Path(tempfile.mkdtemp(prefix="mlplane-bench-out-"))
    stack: RunningStack | None = None
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    if load_at_start[0] > _BUSY_LOAD:
        # Two cores: anything else running shows up directly in the wall times.
        _progress(f"warning: load average {load_at_start[0]:.2f}; the figures will be noisy")
    try:
        _progress(f"starting the stack in {state_dir}")
        # No demo plant: the bench loads only its own tenant.
        # The small-query load comes from one subject: no per-client limit here.
        stack = start_stack(
            state_dir, MLPLANE_DEMO_PLANT="false", MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0"
        )
        path = run(args, stack, work_dir, load_at_start)
        _progress(f"wrote {path} ({time.perf_counter() - started:.0f}s in all)")
        return 0
    except KeyboardInterrupt:
        _progress("interrupted; stopping the stack")
        return 130
    finally:
        # Ctrl-C during the clean-up must not leave the stack running either.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack is not None:
            survivors = stop_stack(stack)
            if survivors:
                _progress(f"killed processes left behind: {[p.pid for p in survivors]}")
        stop_leftover_children()
        shutil.rmtree(work_dir, ignore_errors=True)
        if args.keep_state:
            _progress(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
