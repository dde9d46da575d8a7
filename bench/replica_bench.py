"""One replica of each service against two (`mlplane up --replicas N`), on this machine.

    .venv/bin/python -m bench.replica_bench [--rounds 4] [--seconds 10] [--runs 6]

Two stacks at once, one with one replica of each service, one with two (no demo plant, rate
limit off, the production drain and grace: MLPLANE_SHUTDOWN_DRAIN_SECONDS 5,
MLPLANE_SHUTDOWN_GRACE_SECONDS 10); every figure alternates between them, round by round, so
the drift of this shared 2-core VM hits both alike (the idle one costs next to nothing: a
health check every 2 s):
  * the idle memory (RSS) of every process, right after the start and again after the load;
  * GetModel through the gateway (REST GET /api/v1/models/{id}) with `wrk -t2 -c16`:
    req/s and P50/P95/P99, median of `--rounds` rounds of `--seconds` s, with the cores each
    process kept busy (PostgreSQL with its backends, wrk as the client);
  * E1 (one asset, 24 h, 10 tags at 1 Hz = 864,000 rows) as Arrow over gRPC into pandas
    through the gateway: one export at a time (`--runs`, median), and two at once;
  * on the two-replica stack: SIGTERM to one replica of each service while wrk and an E1
    export loop run, the time to its exit, and what the clients saw meanwhile (non-2xx,
    failed exports).
Prints a table and writes bench/results/replica-<UTC>.json. Needs `wrk` (Debian package).
Stops everything it starts, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import resource
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import workload as wl
from bench.gateway_clients import Window, grpc_arrow_to_pandas
from bench.measure import (
    MIB,
    machine,
    process_cpu,
    raise_interrupt,
    read_rss,
    stop_leftover_children,
)
from bench.report import text_table, write_json
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack, start_stack, stop_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
E1_ROWS = 864_000
CLIENTS = 16
IDLE_SETTLE_SECONDS = 5.0
DEADLINE = 90.0
# wrk reports P50/P90/P99 only; its Lua `done` hook reads any percentile (microseconds).
WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("MLPLANE %d %d %d %d %d %d %d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="wrk rounds per stack (median)")
    parser.add_argument("--seconds", type=int, default=10, help="length of a wrk round")
    parser.add_argument("--runs", type=int, default=6, help="E1 exports one at a time (median)")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of two E1 exports at once")
    return parser.parse_args(argv)


@dataclass
class Bench:
    """One stack under measurement."""

    replicas: int
    stack: RunningStack
    state_dir: Path
    token: str = ""
    model_url: str = ""
    window: Window | None = None
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.replicas} replica{'s' if self.replicas > 1 else ''}"


# --- processes -------------------------------------------------------------------------------
def _cpu(pid: int, *, tree: bool = False) -> float:
    """CPU seconds of a process, with `tree` also of its children (PostgreSQL's backends)."""
    try:
        return process_cpu(psutil.Process(pid), with_children=tree)
    except psutil.NoSuchProcess:
        return 0.0


def _client_cpu() -> float:
    # wrk, reaped by subprocess.run
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def _processes(stack: RunningStack) -> dict[str, int]:
    """Every process of the stack by name: `mlplane up` itself, each service replica, Envoy,
    the PostgreSQL postmaster."""
    found = {"mlplane up": stack.proc.pid}
    for service in ("query", "models"):
        found.update({r["name"]: int(r["pid"]) for r in stack.replicas(service)})
    pids = stack.pids()
    found["envoy"] = pids["envoy"]
    found["postgres"] = pids["postgres"]
    return found


def _status_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Rss") or name == "VmRSS":
            fields[name] = int(value.split()[0])
    return fields


def _memory(stack: RunningStack) -> dict[str, float]:
    """RSS in MiB per process. PostgreSQL as a whole too: every process's private memory
    (RssAnon) plus the shared buffers and files once (the largest RssShmem, RssFile): summing
    the backends' RSS would count the shared buffers once per backend that touched them."""
    rss = {name: read_rss(pid) / MIB for name, pid in _processes(stack).items()}
    postmaster = psutil.Process(stack.pids()["postgres"])
    parts = [_status_kib(postmaster.pid)]
    for child in postmaster.children(recursive=True):
        with contextlib.suppress(psutil.Error, OSError, ValueError):
            parts.append(_status_kib(child.pid))
    whole = (
        sum(p.get("RssAnon", 0) for p in parts)
        + max(p.get("RssShmem", 0) for p in parts)
        + max(p.get("RssFile", 0) for p in parts)
    )
    rss["postgres, all processes"] = whole / 1024
    return {name: round(value, 1) for name, value in rss.items()}


def _start(replicas: int) -> Bench:
    state_dir = Path(tempfile.mkdtemp(prefix=f"mlplane-replica-bench-{replicas}-"))
    _progress(f"starting a stack with {replicas} replica(s) of each service")
    stack = start_stack(
        state_dir,
        up_args=("--replicas", str(replicas)),
        MLPLANE_DEMO_PLANT="false",
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",
        MLPLANE_SHUTDOWN_GRACE_SECONDS="10",
        MLPLANE_SHUTDOWN_DRAIN_SECONDS="5",
    )
    return Bench(replicas, stack, state_dir)


def _prepare(bench: Bench) -> None:
    stack = bench.stack
    _progress(f"{bench.label}: loading E1: " + wl.load(stack, prefix="e1", days=1).split("\n")[0])
    wl.analyze(stack)
    workload = wl.describe(stack, "e1-001")
    if workload.rows != E1_ROWS:
        raise RuntimeError(f"E1 has {workload.rows} rows, expected {E1_ROWS}")
    bench.token = stack.tokens.valid(wl.ROLE, tenant=wl.TENANT)
    uploaded = httpx.post(
        f"{stack.gateway_url}/api/v1/models",
        data={"name": "bench-model"},
        files={"file": ("m.onnx", linear_model(8))},
        headers={"Authorization": f"Bearer {bench.token}"},
        timeout=30,
    )
    uploaded.raise_for_status()
    bench.model_url = f"{stack.gateway_url}/api/v1/models/{uploaded.json()['modelId']}"
    bench.window = Window.of(workload)


def _alternating(benches: list[Bench], round_no: int) -> list[Bench]:
    return benches if round_no % 2 == 0 else benches[::-1]


# --- GetModel with wrk -----------------------------------------------------------------------
def _wrk_argv(bench: Bench, seconds: int, script: Path) -> list[str]:
    return [
        *("wrk", "-t2", f"-c{CLIENTS}", f"-d{seconds}s", "-s", str(script)),
        *("-H", f"Authorization: Bearer {bench.token}", bench.model_url),
    ]


def _wrk_result(stdout: str) -> dict[str, float]:
    line = next(x for x in stdout.splitlines() if x.startswith("MLPLANE "))
    requests, duration, p50, p95, p99, non2xx, errors = (int(v) for v in line.split()[1:])
    return {
        "requests": requests,
        "rps": requests / (duration / 1e6),
        "p50_ms": p50 / 1000,
        "p95_ms": p95 / 1000,
        "p99_ms": p99 / 1000,
        "non_2xx": non2xx,
        "socket_errors": errors,
    }


def _wrk(bench: Bench, seconds: int, script: Path) -> dict[str, Any]:
    pids = _processes(bench.stack)
    before = {name: _cpu(pid, tree=name == "postgres") for name, pid in pids.items()}
    client = _client_cpu()
    out = subprocess.run(
        _wrk_argv(bench, seconds, script),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    cpu = {name: _cpu(pid, tree=name == "postgres") - before[name] for name, pid in pids.items()}
    cpu["wrk (client)"] = _client_cpu() - client
    result: dict[str, Any] = _wrk_result(out.stdout)
    result["cores_busy"] = {n: round(c / seconds, 2) for n, c in cpu.items() if c >= 0.01}
    return result


def getmodel(benches: list[Bench], args: argparse.Namespace, script: Path) -> None:
    for bench in benches:
        _wrk(bench, 3, script)  # warm-up
        bench.results["getmodel_rounds"] = []
    for round_no in range(args.rounds):
        for bench in _alternating(benches, round_no):
            result = _wrk(bench, args.seconds, script)
            bench.results["getmodel_rounds"].append(result)
            _progress(
                f"GetModel {bench.label}, round {round_no + 1}/{args.rounds}: "
                f"{result['rps']:.0f} req/s, P95 {result['p95_ms']:.2f} ms, "
                f"non-2xx {result['non_2xx']}, cores busy {result['cores_busy']}"
            )
    for bench in benches:
        rounds = bench.results["getmodel_rounds"]
        bench.results["getmodel"] = {
            "median_rps": statistics.median(r["rps"] for r in rounds),
            **{
                f"median_{p}_ms": statistics.median(r[f"{p}_ms"] for r in rounds)
                for p in ("p50", "p95", "p99")
            },
            "non_2xx": sum(r["non_2xx"] + r["socket_errors"] for r in rounds),
            "cores_busy_median": {
                name: statistics.median(r["cores_busy"].get(name, 0.0) for r in rounds)
                for name in {n for r in rounds for n in r["cores_busy"]}
            },
        }


# --- E1 --------------------------------------------------------------------------------------
def _export(bench: Bench) -> float:
    assert bench.window is not None
    return grpc_arrow_to_pandas(
        bench.stack.gateway_target, bench.token, bench.window, E1_ROWS
    ).seconds


def e1(benches: list[Bench], args: argparse.Namespace) -> None:
    for bench in benches:
        _export(bench)  # warm-up
        bench.results["e1_alone"] = []
        bench.results["e1_pairs"] = []
    for run in range(args.runs):
        for bench in _alternating(benches, run):
            gc.collect()
            bench.results["e1_alone"].append(_export(bench))
    with ThreadPoolExecutor(2) as pool:
        for run in range(args.pairs):
            for bench in _alternating(benches, run):
                gc.collect()
                started = time.perf_counter()
                each = list(pool.map(lambda b: _export(b), (bench, bench)))
                bench.results["e1_pairs"].append(
                    {"wall": time.perf_counter() - started, "each": each}
                )
    for bench in benches:
        alone, pairs = bench.results["e1_alone"], bench.results["e1_pairs"]
        bench.results["e1_arrow"] = {
            "alone_median": statistics.median(alone),
            "pair_wall_median": statistics.median(p["wall"] for p in pairs),
        }
        walls = ", ".join(f"{p['wall']:.2f}" for p in pairs)
        _progress(
            f"E1 {bench.label}: alone {', '.join(f'{s:.2f}' for s in alone)} s; "
            f"two at once {walls} s (wall)"
        )


# --- SIGTERM under load ----------------------------------------------------------------------
def _envoy_healthy(stack: RunningStack, service: str, port: int) -> bool:
    text = httpx.get(f"{stack.info['admin_url']}/clusters", timeout=5).text
    return f"{service}::127.0.0.1:{port}::health_flags::healthy" in text


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _terminate_and_wait(stack: RunningStack, service: str) -> dict[str, float]:
    """SIGTERM the second replica of `service`; time its way out and its replacement's back."""
    replica = stack.replicas(service)[1]
    pid, port = int(replica["pid"]), int(replica["grpc_port"])
    signalled = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    out_of_envoy = None
    while not _exited(pid):
        if out_of_envoy is None and not _envoy_healthy(stack, service, port):
            out_of_envoy = time.monotonic() - signalled
        if time.monotonic() - signalled > DEADLINE:
            raise RuntimeError(f"{replica['name']} did not exit")
        time.sleep(0.02)
    exited = time.monotonic() - signalled
    while True:
        now = stack.replicas(service)[1]
        if int(now["pid"]) != pid and _envoy_healthy(stack, service, port):
            break
        if time.monotonic() - signalled > DEADLINE:
            raise RuntimeError(f"{replica['name']} did not come back")
        time.sleep(0.05)
    back = time.monotonic() - signalled
    result = {
        "out_of_envoy_seconds": out_of_envoy if out_of_envoy is not None else float("nan"),
        "exit_seconds": exited,
        "replaced_and_healthy_seconds": back,
    }
    _progress(
        f"SIGTERM {replica['name']}: out of Envoy after {result['out_of_envoy_seconds']:.2f}s, "
        f"exited after {exited:.2f}s, replacement healthy after {back:.2f}s"
    )
    return result


def sigterm_under_load(bench: Bench, script: Path) -> dict[str, Any]:
    stack = bench.stack
    seconds = 45
    wrk = subprocess.Popen(_wrk_argv(bench, seconds, script), stdout=subprocess.PIPE, text=True)
    stop = threading.Event()
    exports = {"ok": 0, "failed": 0}
    failures: list[str] = []

    def export_loop() -> None:
        while not stop.is_set():
            try:
                _export(bench)
            except Exception as error:  # counted and reported, not hidden
                exports["failed"] += 1
                failures.append(repr(error)[:300])
            else:
                exports["ok"] += 1

    exporter = threading.Thread(target=export_loop, daemon=True)
    try:
        exporter.start()
        time.sleep(3)
        results = {s: _terminate_and_wait(stack, s) for s in ("models", "query")}
    finally:
        stop.set()
        exporter.join(120)
        out, _ = wrk.communicate(timeout=seconds + 60)
    seen = _wrk_result(out)
    return {
        "replicas": results,
        "wrk": {
            "requests": seen["requests"],
            "p95_ms": seen["p95_ms"],
            "non_2xx": seen["non_2xx"],
            "errors": seen["socket_errors"],
        },
        "exports": exports,
        "export_failures": failures,
    }


def measure(args: argparse.Namespace, script: Path) -> dict[int, dict[str, Any]]:
    benches: list[Bench] = []
    try:
        for replicas in (1, 2):
            benches.append(_start(replicas))
        time.sleep(IDLE_SETTLE_SECONDS)
        for bench in benches:
            bench.results["idle_rss_mib"] = _memory(bench.stack)
            _progress(f"idle RSS (MiB), {bench.label}: {bench.results['idle_rss_mib']}")
        for bench in benches:
            _prepare(bench)
        getmodel(benches, args, script)
        e1(benches, args)
        time.sleep(IDLE_SETTLE_SECONDS)
        for bench in benches:
            bench.results["rss_after_load_mib"] = _memory(bench.stack)
        benches[1].results["sigterm_under_load"] = sigterm_under_load(benches[1], script)
        return {bench.replicas: bench.results for bench in benches}
    finally:
        for bench in benches:
            survivors = stop_stack(bench.stack)
            if survivors:
                _progress(f"killed processes left behind: {[p.pid for p in survivors]}")
            shutil.rmtree(bench.state_dir, ignore_errors=True)


def report(results: dict[int, dict[str, Any]]) -> str:
    one, two = results[1], results[2]
    rows = [
        [
            "GetModel req/s (16 clients, median)",
            f"{one['getmodel']['median_rps']:.0f}",
            f"{two['getmodel']['median_rps']:.0f}",
        ],
        *(
            [
                f"GetModel {p.upper()} (ms)",
                f"{one['getmodel'][f'median_{p}_ms']:.2f}",
                f"{two['getmodel'][f'median_{p}_ms']:.2f}",
            ]
            for p in ("p50", "p95", "p99")
        ),
        [
            "GetModel non-2xx",
            str(one["getmodel"]["non_2xx"]),
            str(two["getmodel"]["non_2xx"]),
        ],
        [
            "E1 Arrow -> pandas, alone (s, median)",
            f"{one['e1_arrow']['alone_median']:.2f}",
            f"{two['e1_arrow']['alone_median']:.2f}",
        ],
        [
            "E1 two at once: wall (s, median)",
            f"{one['e1_arrow']['pair_wall_median']:.2f}",
            f"{two['e1_arrow']['pair_wall_median']:.2f}",
        ],
    ]
    for name in ("models", "models-2", "envoy", "postgres", "wrk (client)"):
        busy = [r["getmodel"]["cores_busy_median"].get(name) for r in (one, two)]
        rows.append([f"GetModel: cores busy, {name}", *(f"{b:.2f}" if b else "-" for b in busy)])
    table = text_table(["figure", "1 replica", "2 replicas"], rows)
    memory_rows = []
    names = list(two["idle_rss_mib"])
    for name in names:
        memory_rows.append(
            [
                name,
                str(one["idle_rss_mib"].get(name, "-")),
                str(two["idle_rss_mib"][name]),
                str(two["rss_after_load_mib"].get(name, "-")),
            ]
        )
    memory = text_table(
        ["process", "idle RSS MiB, 1 replica", "idle, 2 replicas", "2 replicas after the load"],
        memory_rows,
    )
    sig = two["sigterm_under_load"]
    sig_rows = [
        [
            name,
            f"{r['out_of_envoy_seconds']:.2f}",
            f"{r['exit_seconds']:.2f}",
            f"{r['replaced_and_healthy_seconds']:.2f}",
        ]
        for name, r in sig["replicas"].items()
    ]
    sigterm = text_table(
        ["SIGTERM to replica 2 of", "out of Envoy (s)", "exit (s)", "replaced, healthy (s)"],
        sig_rows,
    )
    clients = (
        f"meanwhile: wrk {sig['wrk']['requests']} GetModel, non-2xx {sig['wrk']['non_2xx']}, "
        f"socket errors {sig['wrk']['errors']}; E1 exports {sig['exports']['ok']} ok, "
        f"{sig['exports']['failed']} failed"
    )
    return "\n\n".join([table, memory, sigterm, clients])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    if shutil.which("wrk") is None:
        print("replica_bench needs wrk (apt-get install wrk)")
        return 2
    script_dir = Path(tempfile.mkdtemp(prefix="mlplane-replica-bench-"))
    script = script_dir / "p95.lua"
    script.write_text(WRK_SCRIPT)
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    try:
        results = measure(args, script)
        text = report(results)
        print("\n" + text + "\n")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"replica-{stamp}.json"
        write_json(
            path,
            {
                "bench": "replica",
                "time": datetime.now(UTC).isoformat(),
                "args": vars(args),
                "machine": machine(load_at_start),
                "results": {f"{n}_replica{'s' if n > 1 else ''}": r for n, r in results.items()},
                "table": text,
            },
        )
        _progress(f"wrote {path} ({time.perf_counter() - started:.0f}s in all)")
        return 0
    except KeyboardInterrupt:
        _progress("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_leftover_children()
        shutil.rmtree(script_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
