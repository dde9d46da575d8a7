"""Sizing figures for the Helm chart's requests and limits (deploy/README.md, "Sizing").

    .venv/bin/python -m bench.sizing [--upload-mib 1024] [--getmodel-seconds 10]

One real stack (`mlplane up`: embedded PostgreSQL, folder store, both services, Envoy), the
processes the chart runs as pods, each watched while it works: resident memory (VmRSS every
50 ms) and CPU (cores = CPU seconds per wall second, on average over the phase and in its busiest
second), per phase:

  idle              after start, before any request (imports, pools, Envoy's config)
  getmodel          GET /api/v1/models/{id} through Envoy, 16 connections (wrk; Python
                    threads when wrk is missing), the registry's hot read
  upload            one ~1 GiB ONNX model, REST multipart through Envoy (curl -F): Envoy
                    streams it to the ModelRegistry, which spools, validates and stores it
                    (folder store)
  uploads_parallel  two of them at once
  export            E1 (one asset, 24 h, 10 tags at 1 Hz = 864,000 rows) as Arrow over gRPC
                    and as CSV over REST (curl), both through Envoy, read to the end; 3 times
  exports_parallel  four E1 Arrow exports at once (query.exportsPerUser)
  after             idle again once everything ran (glibc keeps some of what loads took)

and one-shot processes, measured from start to exit (peak RSS from VmHWM, CPU seconds from
wait4): the gateway pod's init container (`mlplane gateway render --out-dir …`, with the web
app when it is built) and the migration Job (`python -m services.db.setup`) on an empty
database and again at head. PostgreSQL is shown for information (CPU only; external on
Kubernetes). On a 2-core machine the load generators (wrk, curl, this script) share the cores
with the stack: CPU figures under load are what the stack got, bounded by the two cores, not
what it could use; run it on a quiet machine (it warns when the load average is above 0.5).

Prints a table and writes bench/results/sizing-<UTC>.json. About 1.5 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from sqlalchemy.engine import make_url

from bench import gateway_clients as exports
from bench import upload_clients as uploads
from bench import workload as wl
from bench.gateway_clients import Window
from bench.measure import MIB, machine, process_cpu, raise_interrupt, stop_leftover_children
from bench.upload_load import rest_threads, tool_path, wrk_load
from bench.upload_measure import ComponentCpu
from bench.upload_models import ModelFile, write_matmul_model
from tests.stack_runner import ROOT, RunningStack, stack_env, start_stack, stop_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
E1_ROWS = 864_000
WATCHED = ("query", "models", "envoy")  # the chart's long-running containers
INFO_ONLY = ("postgres",)  # CPU with its backends; external on Kubernetes
_RSS_INTERVAL = 0.05
_CPU_INTERVAL = 0.25
_IDLE_SECONDS = 3.0
_BUSY_LOAD = 0.5  # 1-minute load average above which the machine is not quiet
_CLIENTS = 16
_FRESH_DATABASE = "mlplane_sizing_fresh"
_EXPORT_ROUNDS = 3  # E1 as Arrow, then as CSV, three times
_PARALLEL_UPLOADS = 2
_PARALLEL_EXPORTS = 4  # query.exportsPerUser


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --- watching the processes ------------------------------------------------------------------
@dataclass
class ProcessFigures:
    cpu_seconds: float
    cores_mean: float
    cores_peak_1s: float
    rss_start_mib: float | None = None  # None: not watched (PostgreSQL)
    rss_peak_mib: float | None = None
    rss_end_mib: float | None = None

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.__dict__.items() if v is not None}


@dataclass
class Phase:
    name: str
    label: str
    seconds: float = 0.0
    processes: dict[str, ProcessFigures] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seconds": round(self.seconds, 3),
            "processes": {n: p.to_json() for n, p in self.processes.items()},
            "detail": self.detail,
        }


class Watch:
    """RSS every 50 ms and CPU every 250 ms of each process, in a thread, while a block runs."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._processes = {name: psutil.Process(pids[name]) for name in (*WATCHED, *INFO_ONLY)}
        self._stop = threading.Event()
        self._rss: dict[str, list[int]] = {name: [] for name in WATCHED}
        self._cpu: list[tuple[float, dict[str, float]]] = []
        self._thread = threading.Thread(target=self._loop, name="sizing-watch", daemon=True)

    def _cpu_now(self) -> tuple[float, dict[str, float]]:
        return time.monotonic(), {
            name: process_cpu(p, with_children=name in INFO_ONLY)
            for name, p in self._processes.items()
        }

    def _rss_now(self) -> None:
        for name in WATCHED:
            with contextlib.suppress(psutil.NoSuchProcess):
                self._rss[name].append(self._processes[name].memory_info().rss)

    def _loop(self) -> None:
        next_cpu = time.monotonic() + _CPU_INTERVAL
        while not self._stop.wait(_RSS_INTERVAL):
            self._rss_now()
            if time.monotonic() >= next_cpu:
                self._cpu.append(self._cpu_now())
                next_cpu += _CPU_INTERVAL

    def __enter__(self) -> Watch:
        self._rss_now()
        self._cpu.append(self._cpu_now())
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._rss_now()
        self._cpu.append(self._cpu_now())

    def figures(self) -> tuple[float, dict[str, ProcessFigures]]:
        (t0, first), (t1, last) = self._cpu[0], self._cpu[-1]
        wall = max(t1 - t0, 1e-9)
        found = {}
        for name in (*WATCHED, *INFO_ONLY):
            peak = 0.0
            # The busiest second: CPU over each window of four 250 ms ticks.
            for i in range(len(self._cpu)):
                j = i
                while j + 1 < len(self._cpu) and self._cpu[j][0] - self._cpu[i][0] < 1.0:
                    j += 1
                span = self._cpu[j][0] - self._cpu[i][0]
                if span >= 0.9:
                    peak = max(peak, (self._cpu[j][1][name] - self._cpu[i][1][name]) / span)
            cpu = last[name] - first[name]
            found[name] = ProcessFigures(cpu, cpu / wall, max(peak, cpu / wall))
            if rss := self._rss.get(name):
                found[name].rss_start_mib = rss[0] / MIB
                found[name].rss_peak_mib = max(rss) / MIB
                found[name].rss_end_mib = rss[-1] / MIB
        return wall, found


def watched(
    stack: RunningStack, name: str, label: str, work: Callable[[], dict[str, Any]]
) -> Phase:
    phase = Phase(name, label)
    watch = Watch(stack.info["pids"])
    with watch:
        phase.detail = work()
    phase.seconds, phase.processes = watch.figures()
    query, models, envoy = (phase.processes[n] for n in WATCHED)
    _progress(
        f"{label}: {phase.seconds:.1f}s; peak RSS query {query.rss_peak_mib:.0f}, models "
        f"{models.rss_peak_mib:.0f}, envoy {envoy.rss_peak_mib:.0f} MiB; cores query "
        f"{query.cores_mean:.2f}, models {models.cores_mean:.2f}, envoy {envoy.cores_mean:.2f}"
    )
    return phase


# --- one-shot processes (init container, migration Job) -----------------------------------
@dataclass
class OneShot:
    label: str
    command: str
    seconds: float
    peak_rss_mib: float
    cpu_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "command": self.command,
            "seconds": round(self.seconds, 3),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "cpu_seconds": round(self.cpu_seconds, 3),
        }


def _vm_hwm(pid: int) -> int:
    """The process's peak resident set (VmHWM, bytes) so far; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def one_shot(label: str, argv: list[str], env: dict[str, str], shown: str) -> OneShot:
    """Run a process to its end: its peak RSS (VmHWM, read every 20 ms until it exits: the
    kernel's ru_maxrss would count the forking parent's memory too) and its CPU (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _vm_hwm(proc.pid))
            done.wait(0.02)

    poller = threading.Thread(target=poll, name="vmhwm", daemon=True)
    poller.start()
    err = proc.stderr.read()  # until it closes: the process is exiting
    peak = max(peak, _vm_hwm(proc.pid))  # a zombie-to-be may still answer
    _pid, status, usage = os.wait4(proc.pid, 0)
    done.set()
    poller.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{shown} failed ({proc.returncode}): {err.decode()[-2000:]}")
    figure = OneShot(label, shown, seconds, peak / MIB, usage.ru_utime + usage.ru_stime)
    _progress(
        f"{label}: {seconds:.1f}s, peak RSS {figure.peak_rss_mib:.0f} MiB, "
        f"{figure.cpu_seconds:.2f} CPU-s"
    )
    return figure


def one_shots(stack: RunningStack, work_dir: Path) -> list[OneShot]:
    env = stack_env(stack.state_dir)
    out_dir = work_dir / "gateway-bundle"
    web = ROOT / "web" / "dist"
    render = [
        sys.executable,
        *("-m", "services.cli", "gateway", "render", "--out-dir", str(out_dir)),
        *("--listen", "0.0.0.0:8080", "--admin-port", "9901"),
        *("--query-address", "mlplane-query.mlplane.svc.cluster.local:50051"),
        *("--models-address", "mlplane-models.mlplane.svc.cluster.local:50052"),
        *(("--web-dist", str(web)) if (web / "index.html").is_file() else ("--no-web",)),
    ]
    # A database of its own, empty: the Job's first install migrates from nothing. The roles
    # are the cluster's, set again with the passwords they have.
    with contextlib.closing(psycopg2.connect(stack.admin_dsn())) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {_FRESH_DATABASE}")
    fresh = make_url(stack.admin_dsn()).set(database=_FRESH_DATABASE)

    def fresh_dsn(dsn: str) -> str:
        url = make_url(dsn).set(database=_FRESH_DATABASE)
        return url.render_as_string(hide_password=False)

    setup_env = {
        **env,
        "MLPLANE_DATABASE_URL": fresh.render_as_string(hide_password=False),
        "MLPLANE_QUERY_DATABASE_URL": fresh_dsn(stack.role_dsn("mlplane_query")),
        "MLPLANE_REGISTRY_DATABASE_URL": fresh_dsn(stack.role_dsn("mlplane_registry")),
    }
    return [
        one_shot(
            "gateway render-config (init container)",
            render,
            env,
            "mlplane gateway render --out-dir … (web app: "
            + ("yes" if (web / "index.html").is_file() else "not built")
            + ")",
        ),
        one_shot(
            "migration Job, first install (empty database)",
            [sys.executable, "-m", "services.db.setup"],
            setup_env,
            "python -m services.db.setup",
        ),
        one_shot(
            "migration Job, upgrade (schema at head)",
            [sys.executable, "-m", "services.db.setup"],
            setup_env,
            "python -m services.db.setup",
        ),
    ]


# --- the loads --------------------------------------------------------------------------------
def getmodel_load(stack: RunningStack, model_id: str, token: str, seconds: int) -> dict[str, Any]:
    cpu = ComponentCpu({n: stack.info["pids"][n] for n in ("models", "envoy")})
    url = f"{stack.gateway_url}/api/v1/models/{model_id}"
    if tool_path("wrk") is not None:
        result = wrk_load(url, token, clients=_CLIENTS, seconds=seconds, cpu=cpu)
    else:
        result = rest_threads(
            stack.gateway_url,
            token,
            model_id,
            clients=_CLIENTS,
            requests=_CLIENTS * 200,
            warmup=_CLIENTS * 5,
            cpu=cpu,
        )
    if result.errors:
        raise RuntimeError(f"GetModel: {result.errors} errors")
    return {
        "tool": result.tool,
        "clients": result.clients,
        "requests": result.requests,
        "rps": round(result.rps, 1),
        "p50_ms": round(result.p50 * 1000, 2),
        "p95_ms": round(result.p95 * 1000, 2),
    }


def upload_load(
    stack: RunningStack, token: str, model: Path, work_dir: Path, *, parallel: int = 1
) -> dict[str, Any]:
    """`parallel` REST uploads of the model at once, each from its own curl."""
    info = json.loads((work_dir / "model.json").read_text())
    file = ModelFile(model, info["size"], info["sha256"], info["weight_bytes"])
    done: list[uploads.Uploaded] = []
    failures: list[BaseException] = []

    def one(index: int) -> None:
        try:
            done.append(
                uploads.rest_curl_upload(
                    stack.gateway_url, token, file, f"sizing-{index}", work_dir
                )
            )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return {
        "client": "curl -F (REST multipart)",
        "parallel": parallel,
        "bytes_each": info["size"],
        "upload_seconds": [round(d.run.seconds, 3) for d in done],
        "mb_per_s_each": [round(info["size"] / d.run.seconds / 1e6, 1) for d in done],
    }


def export_load(stack: RunningStack, token: str, e1: wl.Workload) -> dict[str, Any]:
    window = Window.of(e1)
    arrow, csv = [], []
    for _ in range(_EXPORT_ROUNDS):
        arrow.append(exports.grpc_arrow_discard(stack.gateway_target, token, window, e1.rows))
        csv.append(exports.curl_csv(stack.gateway_url, token, window, None, e1.rows))
    return {
        "rows": e1.rows,
        "rounds": _EXPORT_ROUNDS,
        "arrow_grpc_seconds": [round(r.seconds, 3) for r in arrow],
        "arrow_bytes": int(arrow[0].extra["bytes"]),
        "csv_rest_seconds": [round(r.seconds, 3) for r in csv],
        "csv_bytes": int(csv[0].extra["bytes"]),
    }


def parallel_exports(stack: RunningStack, token: str, e1: wl.Workload) -> dict[str, Any]:
    """`query.exportsPerUser` (4) Arrow exports of E1 at once, each on its own channel."""
    window = Window.of(e1)
    seconds: list[float] = []
    failures: list[BaseException] = []

    def one() -> None:
        try:
            run = exports.grpc_arrow_discard(stack.gateway_target, token, window, e1.rows)
            seconds.append(run.seconds)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(_PARALLEL_EXPORTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return {"rows_each": e1.rows, "arrow_grpc_seconds": [round(s, 3) for s in seconds]}


def _idle(seconds: float) -> Callable[[], dict[str, Any]]:
    def work() -> dict[str, Any]:
        time.sleep(seconds)
        return {}

    return work


# --- the report ---------------------------------------------------------------------------
def table(phases: list[Phase], shots: list[OneShot]) -> str:
    lines = [
        "| phase | seconds | "
        + " | ".join(f"{n} RSS peak (MiB) | {n} cores mean / busiest s" for n in WATCHED)
        + " | postgres cores mean |",
        "|---|---:|" + "---:|---:|" * len(WATCHED) + "---:|",
    ]
    for phase in phases:
        cells = [phase.label, f"{phase.seconds:.1f}"]
        for name in WATCHED:
            p = phase.processes[name]
            cells += [f"{p.rss_peak_mib:.0f}", f"{p.cores_mean:.2f} / {p.cores_peak_1s:.2f}"]
        cells.append(f"{phase.processes['postgres'].cores_mean:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| one-shot process | seconds | peak RSS (MiB) | CPU-s |", "|---|---:|---:|---:|"]
    for shot in shots:
        lines.append(
            f"| {shot.label} | {shot.seconds:.1f} | {shot.peak_rss_mib:.0f} | "
            f"{shot.cpu_seconds:.2f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__)
    parser.add_argument("--upload-mib", type=int, default=1024, help="upload size (default 1024)")
    parser.add_argument(
        "--getmodel-seconds", type=int, default=10, help="GetModel load duration (default 10)"
    )
    parser.add_argument("--keep-state", action="store_true", help="keep the stack's state dir")
    args = parser.parse_args(argv)
    if not 16 <= args.upload_mib <= 1400 or not 3 <= args.getmodel_seconds <= 120:
        parser.error("--upload-mib must be 16-1400 and --getmodel-seconds 3-120")
    return args


def _write_model(path: Path, mib: int, work_dir: Path) -> None:
    model = write_matmul_model(path, mib * MIB, seed=11)
    info = {"size": model.size, "sha256": model.sha256, "weight_bytes": model.weight_bytes}
    (work_dir / "model.json").write_text(json.dumps(info))


@contextlib.contextmanager
def _stack(args: argparse.Namespace, state_dir: Path) -> Iterator[RunningStack]:
    stack = start_stack(
        state_dir,
        MLPLANE_DEMO_PLANT="false",
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",  # one subject drives the GetModel load
        MLPLANE_MAX_MODEL_BYTES=str(1536 * MIB),
    )
    try:
        yield stack
    finally:
        survivors = stop_stack(stack)
        if survivors:
            _progress(f"killed processes left behind: {[p.pid for p in survivors]}")


def run(args: argparse.Namespace, state_dir: Path, work_dir: Path) -> Path:
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    if load_at_start[0] > _BUSY_LOAD:
        # Two cores: anything else running takes CPU from the stack and its clients.
        _progress(f"warning: load average {load_at_start[0]:.2f}; the CPU figures will be low")
    model_path = work_dir / "model.onnx"
    # Written while the stack starts (its idle figures come after both).
    writer = threading.Thread(target=_write_model, args=(model_path, args.upload_mib, work_dir))
    writer.start()
    _progress(f"starting the stack in {state_dir}; writing a {args.upload_mib} MiB model")
    with _stack(args, state_dir) as stack:
        writer.join()
        phases = [watched(stack, "idle", "idle after start", _idle(_IDLE_SECONDS))]
        _progress("loading E1: " + wl.load(stack, prefix="e1", days=1))
        wl.analyze(stack)
        e1 = wl.describe(stack, "e1-001")
        if e1.rows != E1_ROWS:
            raise RuntimeError(f"E1 has {e1.rows} rows, expected {E1_ROWS}")
        token = stack.tokens.valid(wl.ROLE, tenant=wl.TENANT)
        small = write_matmul_model(work_dir / "small.onnx", 64 * 1024, seed=7)
        model_id = uploads.grpc_upload(stack.gateway_target, token, small, "sizing-small").model_id
        phases.append(
            watched(
                stack,
                "getmodel",
                f"GetModel, {_CLIENTS} clients",
                lambda: getmodel_load(stack, model_id, token, args.getmodel_seconds),
            )
        )
        phases.append(
            watched(
                stack,
                "upload",
                f"{args.upload_mib} MiB upload (REST)",
                lambda: upload_load(stack, token, model_path, work_dir),
            )
        )
        phases.append(
            watched(
                stack,
                "uploads_parallel",
                f"{_PARALLEL_UPLOADS} x {args.upload_mib} MiB uploads at once",
                lambda: upload_load(stack, token, model_path, work_dir, parallel=_PARALLEL_UPLOADS),
            )
        )
        phases.append(
            watched(
                stack,
                "export",
                f"E1 export (Arrow gRPC, CSV REST) x {_EXPORT_ROUNDS}",
                lambda: export_load(stack, token, e1),
            )
        )
        phases.append(
            watched(
                stack,
                "exports_parallel",
                f"{_PARALLEL_EXPORTS} E1 Arrow exports at once",
                lambda: parallel_exports(stack, token, e1),
            )
        )
        phases.append(watched(stack, "after", "idle after the loads", _idle(_IDLE_SECONDS)))
        shots = one_shots(stack, work_dir)
    print("\n" + table(phases, shots) + "\n")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"sizing-{stamp}.json"
    document = {
        "bench": "sizing",
        "time": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "machine": machine(load_at_start),
        "notes": {
            "rss": "VmRSS every 50 ms; MiB",
            "cores": "CPU seconds per wall second: mean over the phase, and the busiest 1 s",
            "postgres": "CPU of the postmaster and its backends; for information",
            "one_shots": "peak RSS (VmHWM, read every 20 ms) and CPU seconds (wait4)",
            "store": "folder store (MLPLANE_STORE=folder)",
        },
        "phases": {p.name: p.to_json() for p in phases},
        "one_shots": [s.to_json() for s in shots],
        "seconds_in_all": round(time.perf_counter() - started, 1),
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="mlplane-sizing-"))
    work_dir = Path(tempfile.mkdtemp(prefix="mlplane-sizing-out-"))
    started = time.perf_counter()
    try:
        path = run(args, state_dir, work_dir)
        _progress(f"wrote {path} ({time.perf_counter() - started:.0f}s in all)")
        return 0
    except KeyboardInterrupt:
        _progress("interrupted; the stack is stopped")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_leftover_children()
        shutil.rmtree(work_dir, ignore_errors=True)
        if args.keep_state:
            _progress(f"state kept in {state_dir}")
        else:
            shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
