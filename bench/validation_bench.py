"""Validation worker benchmark (issue #16) against a real stack of its own.

    .venv/bin/python -m bench.validation_bench [--runs 10] [--rows 400] [--big-mib 200]
        [--big-runs 2] [--count 20] [--upload-clients 4] [--poll-ms 30]

The stack (`tests.stack_runner.start_stack`: embedded PostgreSQL, both services, Envoy and the
validation worker, every port 0, no demo plant, rate limit off) runs the worker with its
default settings: one job at a time, each check in a sandboxed child (services/validation/).
The model is like the example notebook's (examples/predictive_maintenance.py): a scikit-learn
RandomForestClassifier (100 trees, depth 8) on 15 numeric features, converted with skl2onnx
(`zipmap=False`), its claimed metrics (ROC AUC, average precision, F1, and baselines the worker
does not know) computed on a held-out set that goes with the upload as the evaluation set
(Parquet, `--rows` rows). The data are synthetic: the demo plant is not needed.

1. **Upload -> PASSED**: REST multipart upload (fields, `evaluationSet`, then `file`), then the
   report (`GET .../validation`) polled every `--poll-ms` until it reads PASSED; `--runs`
   sequential runs (after `--warmup`), each also without an evaluation set. Split by the
   report's own times (send -> createTime -> startTime -> completeTime -> seen) and the runtime
   child's wall time from the stored report. References in the same rounds: the upload's 201
   alone, and the cold start of `python -I -c "import onnxruntime, sklearn.metrics"` (and of
   `python -I -c pass`).
2. **Worker memory with a `--big-mib` model** (one MatMul with a float32 initializer,
   bench.upload_models): the worker's VmRSS and every sandboxed child's VmRSS/VmHWM every 20 ms
   from before the upload until the report is done, and the report's runtime.peakMemoryBytes.
   References: the model's size on disk, and the VmHWM of a bare `onnxruntime.InferenceSession`
   of the same file in a fresh process.
3. **Validations per minute** one worker sustains: `--count` versions uploaded
   `--upload-clients` at a time (without, then with the evaluation set), from the first job's
   create_time to the last job's complete_time (`validation_jobs`, admin DSN), and for the jobs
   started once every upload was answered. Reference: the same count of bare sandbox runs in a
   loop in this process (`run_runtime_check`, plus `run_evaluation` with the set) on the same
   files, half before and half after: the ratio is what the queue, the download and the
   database cost, and the uploads' share of the two cores.

Prints the figures; writes bench/results/validation-<UTC>.json. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg2  # type: ignore[import-untyped,unused-ignore]
import pyarrow as pa
import pyarrow.parquet as pq

from bench.measure import (
    MIB,
    Stats,
    machine,
    process_cpu,
    raise_interrupt,
    read_rss,
    stop_leftover_children,
)
from bench.report import Target, targets_table, text_table, write_json
from bench.upload_bench import other_activity
from bench.upload_models import write_matmul_model
from services.validation.evaluation_run import run_evaluation
from services.validation.runtime_check import run_runtime_check
from services.validation.sandbox import SandboxLimits
from tests.stack_runner import RunningStack, start_stack, stop_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PASSED_P95_TARGET_S = 5.0
TAGS = ["vibration_rms", "bearing_temp", "discharge_pressure", "flow", "motor_current"]
FEATURES = [f"{tag}_{stat}" for tag in TAGS for stat in ("median_6h", "median_24h", "std_1h")]
TRAIN_ROWS = 3000
_TIMEOUT = 120.0
_DONE = ("PASSED", "FAILED")
_PACKAGES = ("onnxruntime", "onnx", "scikit-learn", "skl2onnx", "pyarrow", "numpy", "httpx")

COLD_EMPTY = "pass"
COLD_IMPORTS = "import onnxruntime, sklearn.metrics"
COLD_ORT = "import onnxruntime"  # what the runtime check's child imports (numpy with it)
# A bare session of the model in a fresh interpreter: load time, then VmRSS and VmHWM.
BARE_SESSION = """\
import json, sys, time
started = time.perf_counter()
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
loaded = time.perf_counter() - started
found = {"load_seconds": loaded}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    if key in ("VmRSS", "VmHWM"):
        found[key] = int(value.split()[0]) * 1024
print(json.dumps(found))
"""


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# --- the example-like model ----------------------------------------------------------------------
@dataclass(frozen=True)
class ExampleModel:
    model: Path
    evaluation: Path
    metrics: dict[str, float]
    model_bytes: int
    evaluation_bytes: int
    rows: int
    positives: int


def make_example_model(work_dir: Path, rows: int, seed: int = 0) -> ExampleModel:
    """A RandomForest on 15 pump-like features, as the notebook trains and converts it."""
    from skl2onnx import to_onnx  # type: ignore[import-untyped]
    from sklearn.dummy import DummyClassifier  # type: ignore[import-untyped]
    from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]
    from sklearn.metrics import (  # type: ignore[import-untyped]
        average_precision_score,
        f1_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(seed)
    n = TRAIN_ROWS + rows
    x = rng.standard_normal((n, len(FEATURES))).astype(np.float32)
    # Failing pumps: vibration and bearing temperature creep up, pressure and flow sag.
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    weights[[0, 1, 3, 4, 6, 9]] = [1.2, 0.8, 1.0, 0.6, -0.7, -0.5]
    logits = x @ weights + 0.8 * x[:, 2] * x[:, 5] - 2.6 + rng.normal(0, 0.8, n)
    y = logits > 0
    x_train, y_train = x[:TRAIN_ROWS], y[:TRAIN_ROWS]
    x_test, y_test = x[TRAIN_ROWS:], y[TRAIN_ROWS:]
    model = RandomForestClassifier(
        n_estimators=100,
        max_depth=8,
        min_samples_leaf=5,
        class_weight="balanced",
        random_state=0,
        n_jobs=1,
    ).fit(x_train, y_train)
    baseline = DummyClassifier(strategy="prior").fit(x_train, y_train)
    p_model = model.predict_proba(x_test)[:, 1]
    p_base = baseline.predict_proba(x_test)[:, 1]
    metrics = {
        "roc_auc": float(roc_auc_score(y_test, p_model)),
        "average_precision": float(average_precision_score(y_test, p_model)),
        "f1": float(f1_score(y_test, p_model >= 0.5)),
        "baseline_roc_auc": float(roc_auc_score(y_test, p_base)),
        "baseline_average_precision": float(average_precision_score(y_test, p_base)),
        "baseline_f1": float(f1_score(y_test, np.ones_like(y_test))),
    }
    onnx_model = to_onnx(model, x_train[:1], options={id(model): {"zipmap": False}})
    model_path = work_dir / "pump_failure_48h.onnx"
    model_path.write_bytes(onnx_model.SerializeToString())
    table = pa.table({**{name: x_test[:, i] for i, name in enumerate(FEATURES)}, "label": y_test})
    evaluation_path = work_dir / "holdout.parquet"
    pq.write_table(table, evaluation_path)
    return ExampleModel(
        model=model_path,
        evaluation=evaluation_path,
        metrics=metrics,
        model_bytes=model_path.stat().st_size,
        evaluation_bytes=evaluation_path.stat().st_size,
        rows=rows,
        positives=int(y_test.sum()),
    )


# --- the stack: REST and the database ------------------------------------------------------------
class Api:
    """REST through the gateway as a data scientist, one keep-alive connection."""

    def __init__(self, stack: RunningStack) -> None:
        token = stack.tokens.valid("data_scientist", subject="vbench")
        self.client = httpx.Client(
            base_url=stack.gateway_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=_TIMEOUT,
        )

    def close(self) -> None:
        self.client.close()

    def upload(
        self, name: str, model: Path, metrics: dict[str, float], evaluation: Path | None
    ) -> tuple[str, int]:
        fields = {"name": name, "description": "validation bench", "metrics": json.dumps(metrics)}
        with contextlib.ExitStack() as files_open:
            files: list[tuple[str, tuple[str, Any, str]]] = []
            if evaluation is not None:
                handle = files_open.enter_context(evaluation.open("rb"))
                files.append(("evaluationSet", (evaluation.name, handle, "application/x-parquet")))
            handle = files_open.enter_context(model.open("rb"))
            files.append(("file", (model.name, handle, "application/octet-stream")))
            answer = self.client.post("/api/v1/models", data=fields, files=files)
        if answer.status_code != 201:
            raise RuntimeError(f"upload of {name}: HTTP {answer.status_code} {answer.text[:500]}")
        body = answer.json()
        return str(body["modelId"]), int(body["version"])

    def report(self, model_id: str, version: int) -> dict[str, Any]:
        answer = self.client.get(f"/api/v1/models/{model_id}/versions/{version}/validation")
        if answer.status_code != 200:
            raise RuntimeError(f"report: HTTP {answer.status_code} {answer.text[:500]}")
        found: dict[str, Any] = answer.json()
        return found

    def wait_done(
        self, model_id: str, version: int, poll: float, timeout: float = 300.0
    ) -> tuple[dict[str, Any], float, int]:
        """Poll the report until PASSED/FAILED: (report, perf_counter when seen, polls)."""
        deadline = time.perf_counter() + timeout
        polls = 0
        while True:
            report = self.report(model_id, version)
            polls += 1
            if report.get("state") in _DONE:
                return report, time.perf_counter(), polls
            if time.perf_counter() > deadline:
                raise TimeoutError(f"validation of {model_id} v{version}: {report.get('state')}")
            time.sleep(poll)


@dataclass(frozen=True)
class JobRow:
    version: int
    state: str
    create: float  # epoch seconds
    start: float | None
    complete: float | None
    attempts: int
    report: dict[str, Any]


class Database:
    def __init__(self, stack: RunningStack) -> None:
        self.conn = psycopg2.connect(stack.admin_dsn())
        self.conn.autocommit = True

    def close(self) -> None:
        self.conn.close()

    def jobs(self, model_id: str) -> list[JobRow]:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT version, state, create_time, start_time, complete_time, attempts, report"
                " FROM validation_jobs WHERE model_id = %s::uuid ORDER BY version",
                (model_id,),
            )
            rows = cur.fetchall()

        def epoch(value: datetime | None) -> float | None:
            return value.timestamp() if value is not None else None

        return [
            JobRow(
                version=int(r[0]),
                state=str(r[1]),
                create=float(r[2].timestamp()),
                start=epoch(r[3]),
                complete=epoch(r[4]),
                attempts=int(r[5]),
                report=r[6] if isinstance(r[6], dict) else json.loads(r[6] or "{}"),
            )
            for r in rows
        ]

    def job(self, model_id: str, version: int) -> JobRow:
        return next(j for j in self.jobs(model_id) if j.version == version)

    def signature(self, model_id: str, version: int) -> dict[str, Any]:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT signature FROM model_versions WHERE model_id = %s::uuid AND version = %s",
                (model_id, version),
            )
            value = cur.fetchone()[0]
        found: dict[str, Any] = value if isinstance(value, dict) else json.loads(value)
        return found

    def wait_all_done(self, model_id: str, count: int, timeout: float) -> list[JobRow]:
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs(model_id)
            if len(jobs) >= count and all(j.state in _DONE for j in jobs):
                return jobs
            if time.monotonic() > deadline:
                states = [j.state for j in jobs]
                raise TimeoutError(f"{model_id}: not done within {timeout:.0f} s: {states}")
            time.sleep(0.1)


# --- references ----------------------------------------------------------------------------------
def cold_start(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-c", code], check=True, timeout=120)
    return time.perf_counter() - started


def bare_session(model: Path) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-I", "-c", BARE_SESSION, str(model)],
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    found: dict[str, float] = json.loads(done.stdout)
    found["wall_seconds"] = time.perf_counter() - started
    return found


# --- sampling the worker and its children --------------------------------------------------------
def _status(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; zeros once the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class TreeSampler:
    """The worker's VmRSS and its children's VmRSS / VmHWM every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = 0
        self.worker_peak = 0
        self.tree_peak = 0  # worker + live children, same sample
        self.children: dict[int, int] = {}  # pid -> peak (max of VmRSS, VmHWM seen)
        self.samples = 0
        self.timeline: list[tuple[float, int, int]] = []  # (s, worker RSS, children RSS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._started = 0.0

    def _sample(self) -> None:
        worker = read_rss(self.pid)
        try:
            kids = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        children_rss = 0
        for kid in kids:
            rss, hwm = _status(kid.pid)
            children_rss += rss
            self.children[kid.pid] = max(self.children.get(kid.pid, 0), rss, hwm)
        self.worker_peak = max(self.worker_peak, worker)
        self.tree_peak = max(self.tree_peak, worker + children_rss)
        self.samples += 1
        self.timeline.append((time.perf_counter() - self._started, worker, children_rss))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        quiet = []
        for _ in range(5):
            quiet.append(read_rss(self.pid))
            time.sleep(self.interval)
        self.baseline = int(statistics.median(quiet))
        self.worker_peak = self.baseline
        self._started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def child_peak(self) -> int:
        return max(self.children.values(), default=0)


# --- 1. upload -> PASSED ---------------------------------------------------------------------
@dataclass
class LatencyRun:
    evaluation: bool
    upload_s: float  # send -> 201
    passed_s: float  # send -> report seen PASSED
    send_to_create_s: float
    create_to_start_s: float  # queued: commit, NOTIFY, claim
    start_to_complete_s: float  # download, sandboxed child(ren), report written
    complete_to_seen_s: float  # commit + polling
    runtime_child_wall_s: float
    runtime_child_cpu_s: float
    runtime_load_s: float
    peak_memory_bytes: int
    polls: int
    state: str


def one_latency_run(
    api: Api, db: Database, example: ExampleModel, name: str, evaluation: bool, poll: float
) -> tuple[LatencyRun, dict[str, Any]]:
    sent_epoch = time.time()
    sent = time.perf_counter()
    model_id, version = api.upload(
        name, example.model, example.metrics, example.evaluation if evaluation else None
    )
    acknowledged = time.perf_counter()
    report, seen, polls = api.wait_done(model_id, version, poll)
    seen_epoch = sent_epoch + (seen - sent)
    job = db.job(model_id, version)
    if job.start is None or job.complete is None:
        raise RuntimeError(f"{model_id} v{version}: report without start/complete times")
    runtime = job.report.get("runtime") or {}
    return (
        LatencyRun(
            evaluation=evaluation,
            upload_s=acknowledged - sent,
            passed_s=seen - sent,
            send_to_create_s=job.create - sent_epoch,
            create_to_start_s=job.start - job.create,
            start_to_complete_s=job.complete - job.start,
            complete_to_seen_s=seen_epoch - job.complete,
            runtime_child_wall_s=float(runtime.get("wall_seconds") or 0.0),
            runtime_child_cpu_s=float(runtime.get("cpu_seconds") or 0.0),
            runtime_load_s=float(runtime.get("load_seconds") or 0.0),
            peak_memory_bytes=int((report.get("runtime") or {}).get("peakMemoryBytes") or 0),
            polls=polls,
            state=str(report.get("state")),
        ),
        report,
    )


@dataclass
class LatencyResult:
    runs: list[LatencyRun] = field(default_factory=list)
    warmup: list[LatencyRun] = field(default_factory=list)
    cold_pass: list[float] = field(default_factory=list)
    cold_imports: list[float] = field(default_factory=list)
    cold_ort: list[float] = field(default_factory=list)
    sample_report: dict[str, Any] = field(default_factory=dict)
    model_id: str = ""


def latency_phase(
    api: Api, db: Database, example: ExampleModel, args: argparse.Namespace
) -> LatencyResult:
    result = LatencyResult()
    tag = uuid.uuid4().hex[:6]
    poll = args.poll_ms / 1000
    for round_ in range(args.warmup + args.runs):
        measured = round_ >= args.warmup
        # The references first in each round, so drift hits both alike.
        cold_pass = cold_start(COLD_EMPTY)
        cold_imports = cold_start(COLD_IMPORTS)
        cold_ort = cold_start(COLD_ORT)
        with_set, report = one_latency_run(api, db, example, f"vb-latency-{tag}", True, poll)
        without, _ = one_latency_run(api, db, example, f"vb-latency-noeval-{tag}", False, poll)
        if with_set.state != "PASSED" or without.state != "PASSED":
            raise RuntimeError(f"validation did not pass: {json.dumps(report)[:2000]}")
        if measured:
            result.runs += [with_set, without]
            result.cold_pass.append(cold_pass)
            result.cold_imports.append(cold_imports)
            result.cold_ort.append(cold_ort)
            result.sample_report = report
            result.model_id = report["modelId"]
        else:
            result.warmup += [with_set, without]
        _progress(
            f"{'run' if measured else 'warm-up'} {round_ + 1}: upload->PASSED "
            f"{with_set.passed_s * 1000:.0f} ms with the set, {without.passed_s * 1000:.0f} ms "
            f"without (201 in {with_set.upload_s * 1000:.0f} ms); cold start of the imports "
            f"{cold_imports * 1000:.0f} ms; load {_load()}"
        )
    return result


def _stats(values: list[float]) -> Stats:
    return Stats.of(values)


def _ms(value: float) -> str:
    return f"{value * 1000:,.0f}"


def latency_tables(result: LatencyResult) -> str:
    rows = []
    for evaluation in (True, False):
        runs = [r for r in result.runs if r.evaluation is evaluation]
        what = "with the evaluation set" if evaluation else "without"
        for label, values in [
            (f"upload -> PASSED seen, {what}", [r.passed_s for r in runs]),
            (f"  upload alone (201), {what}", [r.upload_s for r in runs]),
        ]:
            s = _stats(values)
            rows.append([label, _ms(s.median), _ms(s.p95), _ms(s.min), _ms(s.max), str(s.n)])
    for label, values in [
        (f"python -I -c '{COLD_IMPORTS}'", result.cold_imports),
        (f"python -I -c '{COLD_ORT}'", result.cold_ort),
        (f"python -I -c '{COLD_EMPTY}'", result.cold_pass),
    ]:
        s = _stats(values)
        rows.append([label, _ms(s.median), _ms(s.p95), _ms(s.min), _ms(s.max), str(s.n)])
    first = text_table(["figure (ms)", "median", "P95", "min", "max", "n"], rows)
    split = []
    for evaluation in (True, False):
        runs = [r for r in result.runs if r.evaluation is evaluation]

        def med(values: list[float]) -> str:
            return _ms(statistics.median(values))

        split.append(
            [
                "with the set" if evaluation else "without",
                med([r.passed_s for r in runs]),
                med([r.send_to_create_s for r in runs]),
                med([r.create_to_start_s for r in runs]),
                med([r.start_to_complete_s for r in runs]),
                med([r.runtime_child_wall_s for r in runs]),
                med([r.start_to_complete_s - r.runtime_child_wall_s for r in runs]),
                med([r.complete_to_seen_s for r in runs]),
            ]
        )
    header = [
        "medians (ms)",
        "total",
        "send->create",
        "queued",
        "start->complete",
        "runtime child",
        "rest of it",
        "complete->seen",
    ]
    return first + "\n\n" + text_table(header, split)


# --- 2. memory with a big model ----------------------------------------------------------------
@dataclass
class MemoryRun:
    model_bytes: int
    upload_s: float
    passed_s: float
    validation_s: float  # startTime -> completeTime
    runtime_child_wall_s: float
    runtime_load_s: float
    worker_before: int
    worker_peak: int
    worker_after: int
    child_peak: int  # max VmHWM/VmRSS of any child sampled
    children: int
    tree_peak: int
    report_peak: int  # runtime.peakMemoryBytes
    samples: int
    bare_session: dict[str, float]
    state: str
    timeline: list[tuple[float, int, int]]


def memory_phase(
    stack: RunningStack, api: Api, db: Database, work_dir: Path, args: argparse.Namespace
) -> list[MemoryRun]:
    big = write_matmul_model(work_dir / f"big-{args.big_mib}mib.onnx", args.big_mib * MIB, seed=7)
    _progress(f"{big.size / MIB:.0f} MiB model written ({big.path.name})")
    worker_pid = stack.pids()["validation"]
    runs: list[MemoryRun] = []
    name = f"vb-big-{uuid.uuid4().hex[:6]}"
    try:
        for index in range(args.big_runs):
            bare = bare_session(big.path)
            _progress(
                f"bare InferenceSession: VmHWM {bare['VmHWM'] / MIB:.0f} MiB, VmRSS "
                f"{bare['VmRSS'] / MIB:.0f} MiB, load {bare['load_seconds']:.2f} s"
            )
            with TreeSampler(worker_pid) as sampler:
                sent = time.perf_counter()
                model_id, version = api.upload(name, big.path, {}, None)
                acknowledged = time.perf_counter()
                report, seen, _ = api.wait_done(model_id, version, 0.05)
            time.sleep(0.5)
            after = read_rss(worker_pid)
            job = db.job(model_id, version)
            runtime = job.report.get("runtime") or {}
            run = MemoryRun(
                model_bytes=big.size,
                upload_s=acknowledged - sent,
                passed_s=seen - sent,
                validation_s=(job.complete or 0.0) - (job.start or 0.0),
                runtime_child_wall_s=float(runtime.get("wall_seconds") or 0.0),
                runtime_load_s=float(runtime.get("load_seconds") or 0.0),
                worker_before=sampler.baseline,
                worker_peak=sampler.worker_peak,
                worker_after=after,
                child_peak=sampler.child_peak,
                children=len(sampler.children),
                tree_peak=sampler.tree_peak,
                report_peak=int((report.get("runtime") or {}).get("peakMemoryBytes") or 0),
                samples=sampler.samples,
                bare_session=bare,
                state=str(report.get("state")),
                timeline=sampler.timeline[:: max(1, len(sampler.timeline) // 400)],
            )
            runs.append(run)
            _progress(
                f"big model {index + 1}: {run.state} in {run.passed_s:.2f} s after the send "
                f"(validation {run.validation_s:.2f} s); worker RSS {run.worker_before / MIB:.0f}"
                f" -> peak {run.worker_peak / MIB:.0f} MiB; child peak {run.child_peak / MIB:.0f}"
                f" MiB (report {run.report_peak / MIB:.0f}); load {_load()}"
            )
    finally:
        big.path.unlink(missing_ok=True)
    return runs


def memory_table(runs: list[MemoryRun]) -> str:
    rows = []
    for i, r in enumerate(runs, 1):
        rows.append(
            [
                str(i),
                f"{r.model_bytes / MIB:.0f}",
                f"{r.worker_before / MIB:.0f} -> {r.worker_peak / MIB:.0f} -> "
                f"{r.worker_after / MIB:.0f}",
                f"{(r.worker_peak - r.worker_before) / MIB:.1f}",
                f"{r.child_peak / MIB:.0f} ({r.children})",
                f"{r.report_peak / MIB:.0f}",
                f"{r.child_peak / r.model_bytes:.2f}",
                f"{r.bare_session['VmHWM'] / MIB:.0f}",
                f"{r.child_peak / r.bare_session['VmHWM']:.2f}",
                f"{r.upload_s:.2f}",
                f"{r.validation_s:.2f}",
                f"{r.runtime_child_wall_s:.2f}",
                f"{r.runtime_load_s:.2f}",
            ]
        )
    header = [
        "run",
        "model MiB",
        "worker RSS before->peak->after",
        "growth",
        "child peak (children)",
        "report peak",
        "/ model",
        "bare session HWM",
        "child / bare",
        "upload s",
        "validation s",
        "child s",
        "ORT load s",
    ]
    return text_table(header, rows) + "\n(MiB; child peak: max VmHWM of the sandboxed children)"


# --- 3. validations per minute -----------------------------------------------------------------
@dataclass
class BareRuns:
    """Sandboxed runs in a loop in this process: wall seconds of each call, CPU in all."""

    checks: list[float] = field(default_factory=list)
    evaluations: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def seconds(self) -> float:
        return sum(self.checks) + sum(self.evaluations)


@dataclass
class ThroughputResult:
    evaluation: bool
    count: int
    upload_s: float  # all uploads, `--upload-clients` at a time
    window_s: float  # first create_time -> last complete_time
    drain_s: float  # first start_time -> last complete_time
    per_minute: float  # count / window
    # The jobs started once every upload was answered, alone: first start -> last complete.
    steady_jobs: int
    steady_per_minute: float
    validation_median_s: float  # start -> complete, per job
    queue_wait_max_s: float
    states: dict[str, int]
    cpu: dict[str, float]  # CPU seconds of each process during the phase
    bare: BareRuns  # the same count, half before and half after the worker's phase
    # Each job, in seconds from the first job's create_time: created, started, completed, and
    # the runtime child's wall time.
    jobs: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def bare_per_minute(self) -> float:
        return self.count / self.bare.seconds * 60 if self.bare.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.per_minute / self.bare_per_minute if self.bare_per_minute else 0.0

    @property
    def steady_ratio(self) -> float:
        return self.steady_per_minute / self.bare_per_minute if self.bare_per_minute else 0.0


def _cpu(stack: RunningStack) -> dict[str, float]:
    pids = stack.pids()
    return {
        "worker_and_children": process_cpu(psutil.Process(pids["validation"]), with_children=True),
        "models": process_cpu(psutil.Process(pids["models"]), with_children=False),
        "envoy": process_cpu(psutil.Process(pids["envoy"]), with_children=False),
        "postgres": process_cpu(psutil.Process(pids["postgres"]), with_children=True),
    }


def _own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bare_loop(
    example: ExampleModel, count: int, evaluation: bool, signature: dict[str, Any], into: BareRuns
) -> None:
    """`count` sandboxed checks (and evaluations) in a loop here, as the worker runs them."""
    limits = SandboxLimits()  # the worker's defaults (MLPLANE_VALIDATION_* unset)
    cpu_before = _own_cpu()
    for _ in range(count):
        started = time.perf_counter()
        check = run_runtime_check(example.model, limits)
        into.checks.append(time.perf_counter() - started)
        if not check.passed:
            raise RuntimeError(f"bare runtime check failed: {check.reason} {check.message}")
        if evaluation:
            started = time.perf_counter()
            found = run_evaluation(
                example.model,
                example.evaluation,
                signature=signature,
                claimed=example.metrics,
                label_column="label",
                limits=limits,
            )
            into.evaluations.append(time.perf_counter() - started)
            if found.get("reason"):
                raise RuntimeError(f"bare evaluation failed: {found}")
    into.cpu_s += _own_cpu() - cpu_before


def upload_many(
    stack: RunningStack,
    example: ExampleModel,
    name: str,
    count: int,
    evaluation: bool,
    clients: int,
) -> tuple[str, float]:
    """`count` versions of `name`, `clients` uploads at a time: (model id, seconds)."""
    first = Api(stack)
    try:  # the first version alone: it creates the model
        model_id, _ = first.upload(
            name, example.model, example.metrics, example.evaluation if evaluation else None
        )
    finally:
        first.close()
    left = list(range(count - 1))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client() -> None:
        api = Api(stack)
        try:
            while True:
                with lock:
                    if not left or errors:
                        return
                    left.pop()
                api.upload(
                    name, example.model, example.metrics, example.evaluation if evaluation else None
                )
        except BaseException as exc:  # handed to the caller below
            with lock:
                errors.append(exc)
        finally:
            api.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(max(1, clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return model_id, time.perf_counter() - started


def throughput_phase(
    stack: RunningStack,
    db: Database,
    example: ExampleModel,
    signature: dict[str, Any],
    args: argparse.Namespace,
) -> list[ThroughputResult]:
    results = []
    for evaluation in (False, True):
        what = "with the evaluation set" if evaluation else "without an evaluation set"
        bare = BareRuns()
        # The reference in two halves around the worker's phase, so drift hits both alike.
        bare_loop(example, args.count // 2, evaluation, signature, bare)
        name = f"vb-rate-{'eval' if evaluation else 'plain'}-{uuid.uuid4().hex[:6]}"
        cpu_before = _cpu(stack)
        model_id, uploaded = upload_many(
            stack, example, name, args.count, evaluation, args.upload_clients
        )
        uploads_done = time.time()
        jobs = db.wait_all_done(model_id, args.count, timeout=60 + 30 * args.count)
        cpu_after = _cpu(stack)
        bare_loop(example, args.count - args.count // 2, evaluation, signature, bare)
        first = min(j.create for j in jobs)
        last = max(j.complete or 0.0 for j in jobs)
        window = last - first
        states: dict[str, int] = {}
        for job in jobs:
            states[job.state] = states.get(job.state, 0) + 1
        steady = [j for j in jobs if (j.start or 0.0) >= uploads_done]
        steady_s = (
            max((j.complete or 0.0) for j in steady) - min((j.start or 0.0) for j in steady)
            if steady
            else 0.0
        )
        result = ThroughputResult(
            evaluation=evaluation,
            count=len(jobs),
            upload_s=uploaded,
            window_s=window,
            drain_s=last - min(j.start or 0.0 for j in jobs),
            per_minute=len(jobs) / window * 60 if window > 0 else 0.0,
            steady_jobs=len(steady),
            steady_per_minute=len(steady) / steady_s * 60 if steady_s > 0 else 0.0,
            validation_median_s=statistics.median(
                (j.complete or 0.0) - (j.start or 0.0) for j in jobs
            ),
            queue_wait_max_s=max((j.start or 0.0) - j.create for j in jobs),
            states=states,
            cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_before},
            bare=bare,
            jobs=[
                (
                    round(j.create - first, 4),
                    round((j.start or 0.0) - first, 4),
                    round((j.complete or 0.0) - first, 4),
                    float((j.report.get("runtime") or {}).get("wall_seconds") or 0.0),
                )
                for j in jobs
            ],
        )
        results.append(result)
        _progress(
            f"{len(jobs)} versions {what}: worker {result.per_minute:.0f}/min, bare loop "
            f"{result.bare_per_minute:.0f}/min ({result.ratio:.2f}x); uploads took "
            f"{uploaded:.1f} s; after them {result.steady_per_minute:.0f}/min "
            f"({result.steady_jobs} jobs); {states}; load {_load()}"
        )
    return results


def throughput_table(results: list[ThroughputResult]) -> str:
    rows = []
    for r in results:
        median_check = statistics.median(r.bare.checks)
        median_eval = statistics.median(r.bare.evaluations) if r.bare.evaluations else 0.0
        rows.append(
            [
                "with the set" if r.evaluation else "without",
                str(r.count),
                f"{r.upload_s:.1f}",
                f"{r.window_s:.1f} ({r.drain_s:.1f})",
                f"{r.per_minute:.0f}",
                f"{r.steady_per_minute:.0f} ({r.steady_jobs})",
                f"{r.bare.seconds:.1f}",
                f"{r.bare_per_minute:.0f}",
                f"{r.ratio:.2f}",
                f"{r.steady_ratio:.2f}",
                f"{r.validation_median_s * 1000:.0f}",
                f"{median_check * 1000:.0f} + {median_eval * 1000:.0f}",
                f"{r.cpu['worker_and_children'] / r.count * 1000:.0f}",
                f"{r.bare.cpu_s / r.count * 1000:.0f}",
                f"{r.cpu['models'] / r.count * 1000:.0f}"
                f" / {r.cpu['postgres'] / r.count * 1000:.0f}",
            ]
        )
    header = [
        "versions",
        "n",
        "uploads s",
        "window (drain) s",
        "per min",
        "after uploads (n)",
        "bare s",
        "bare per min",
        "ratio",
        "after / bare",
        "worker ms/job",
        "bare ms: check + eval",
        "worker CPU ms/job",
        "bare CPU ms",
        "models / pg CPU ms/job",
    ]
    return text_table(header, rows) + (
        "\n(window: first create_time -> last complete_time, drain: from the first start_time;"
        " after uploads: the jobs started once every upload was answered, first start -> last"
        " complete;"
        " worker ms/job: start -> complete, median; worker CPU includes its sandboxed children;"
        " bare: the same count in a loop here, half before and half after)"
    )


# --- the run -------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def _latency_json(result: LatencyResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runs": [vars(r) for r in result.runs],
        "warmup": [vars(r) for r in result.warmup],
        "cold_start_seconds": {
            COLD_EMPTY: result.cold_pass,
            COLD_IMPORTS: result.cold_imports,
            COLD_ORT: result.cold_ort,
        },
        "sample_report": result.sample_report,
    }
    for evaluation in (True, False):
        key = "with_evaluation_set" if evaluation else "without_evaluation_set"
        runs = [r for r in result.runs if r.evaluation is evaluation]
        out[key] = {
            "passed_seconds": vars(_stats([r.passed_s for r in runs])),
            "upload_seconds": vars(_stats([r.upload_s for r in runs])),
        }
    out["cold_start_stats"] = {
        COLD_EMPTY: vars(_stats(result.cold_pass)),
        COLD_IMPORTS: vars(_stats(result.cold_imports)),
        COLD_ORT: vars(_stats(result.cold_ort)),
    }
    return out


def targets(latency: LatencyResult | None) -> list[Target]:
    found: list[Target] = []
    if latency is not None:
        runs = [r.passed_s for r in latency.runs if r.evaluation]
        found.append(
            Target(
                "upload -> PASSED with the evaluation set, P95",
                _stats(runs).p95,
                "<",
                PASSED_P95_TARGET_S,
                "s",
            )
        )
    return found


def ratios(latency: LatencyResult) -> dict[str, float]:
    """The latency against the same run's references (medians)."""
    with_set = statistics.median(r.passed_s for r in latency.runs if r.evaluation)
    without = statistics.median(r.passed_s for r in latency.runs if not r.evaluation)
    upload = statistics.median(r.upload_s for r in latency.runs if r.evaluation)
    upload_without = statistics.median(r.upload_s for r in latency.runs if not r.evaluation)
    cold = statistics.median(latency.cold_imports)
    cold_ort = statistics.median(latency.cold_ort)
    return {
        "passed_with_set_over_upload": with_set / upload,
        "passed_with_set_over_cold_imports": with_set / cold,
        # What the two fresh interpreters must import (the check: onnxruntime; the evaluation:
        # onnxruntime and scikit-learn) after the upload: this design's floor, the work itself
        # (queue, downloads, inference, scoring, report, polling) left out.
        "passed_with_set_over_upload_plus_cold_starts": with_set / (upload + cold_ort + cold),
        "passed_without_over_upload_plus_cold_start": without / (upload_without + cold_ort),
    }


@dataclass
class Measured:
    document: dict[str, Any]
    latency: LatencyResult | None = None
    memory: list[MemoryRun] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)


def run(args: argparse.Namespace, work_dir: Path, state_dir: Path) -> Measured:
    document: dict[str, Any] = {"bench": "validation", "args": vars(args)}
    measured = Measured(document)
    example = make_example_model(work_dir, args.rows)
    _progress(
        f"example-like model: {example.model_bytes / 1024:.0f} KiB ONNX, evaluation set "
        f"{example.rows} rows ({example.positives} positive), {example.evaluation_bytes / 1024:.0f}"
        f" KiB Parquet; claimed ROC AUC {example.metrics['roc_auc']:.3f}"
    )
    document["model"] = {
        "model_bytes": example.model_bytes,
        "evaluation_bytes": example.evaluation_bytes,
        "rows": example.rows,
        "positives": example.positives,
        "features": len(FEATURES),
        "metrics": example.metrics,
    }
    _progress(f"starting a stack in {state_dir}; load {_load()}")
    stack = start_stack(
        state_dir,
        MLPLANE_DEMO_PLANT="false",
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",
        MLPLANE_MAX_MODEL_BYTES=str(max(1024, 2 * args.big_mib) * MIB),
    )
    api: Api | None = None
    db: Database | None = None
    try:
        if "validation" not in stack.pids():
            raise RuntimeError("the stack runs no validation worker")
        api, db = Api(stack), Database(stack)
        latency = measured.latency = latency_phase(api, db, example, args)
        document["latency"] = _latency_json(latency)
        document["ratios"] = ratios(latency)
        if not args.skip_big:
            measured.memory = memory_phase(stack, api, db, work_dir, args)
            document["memory"] = [vars(r) for r in measured.memory]
        if not args.skip_throughput:
            signature = db.signature(latency.model_id, 1)
            measured.throughput = throughput_phase(stack, db, example, signature, args)
            document["throughput"] = [
                {
                    **vars(r),
                    "bare": vars(r.bare),
                    "bare_per_minute": r.bare_per_minute,
                    "ratio": r.ratio,
                    "steady_ratio": r.steady_ratio,
                }
                for r in measured.throughput
            ]
    finally:
        if api is not None:
            api.close()
        if db is not None:
            db.close()
        survivors = stop_stack(stack)
        if survivors:
            _progress(f"killed processes left behind: {[p.pid for p in survivors]}")
    document["targets"] = [{**vars(t), "met": t.met} for t in targets(measured.latency)]
    return measured


def summary(measured: Measured) -> None:
    document, latency = measured.document, measured.latency
    print()
    if latency is not None:
        print(latency_tables(latency))
        r = document["ratios"]
        print(
            "\nratios (medians): upload->PASSED with the set / upload alone "
            f"{r['passed_with_set_over_upload']:.1f}x; / cold start of onnxruntime + sklearn "
            f"{r['passed_with_set_over_cold_imports']:.1f}x; / (upload + both children's cold "
            f"starts: onnxruntime, onnxruntime + sklearn) "
            f"{r['passed_with_set_over_upload_plus_cold_starts']:.2f}x; without the set / (upload"
            f" + cold start of onnxruntime) {r['passed_without_over_upload_plus_cold_start']:.2f}x"
        )
    if measured.memory:
        print("\n" + memory_table(measured.memory))
    if measured.throughput:
        print("\n" + throughput_table(measured.throughput))
    found_targets = targets(latency)
    if found_targets:
        print("\n" + targets_table(found_targets))
    m = document["machine"]
    print(
        f"\nload average at start {m['load_average_at_start']}, at end "
        f"{tuple(round(x, 2) for x in m['load_average_at_end'])}; "
        f"{m['cpus']} CPUs; other activity at start: {len(document['other_activity']['at_start'])}"
        " processes"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.validation_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--runs", type=int, default=10, help="measured upload->PASSED rounds (10)")
    add("--warmup", type=int, default=1, help="unmeasured rounds first (1)")
    add("--rows", type=int, default=400, help="rows of the evaluation set (400)")
    add("--poll-ms", type=float, default=30.0, help="report polling interval (30 ms)")
    add("--big-mib", type=int, default=200, help="size of the big model (200 MiB)")
    add("--big-runs", type=int, default=2, help="validations of the big model (2)")
    add("--count", type=int, default=20, help="versions per throughput phase (20)")
    add("--upload-clients", type=int, default=4, help="uploads at a time in it (4)")
    add("--skip-big", action="store_true", help="leave out the big model")
    add("--skip-throughput", action="store_true", help="leave out validations per minute")
    add("--wait-quiet", type=int, default=0, help="wait up to N s for other benches/tests")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.count < 1 or args.big_runs < 1 or not 20 <= args.rows <= 100_000:
        parser.error("--runs, --count and --big-runs must be >= 1, --rows 20-100000")
    if not 1 <= args.big_mib <= 1000:
        parser.error("--big-mib must be 1-1000")
    return args


def _wait_quiet(seconds: int) -> list[str]:
    deadline = time.monotonic() + seconds
    while (busy := other_activity()) and time.monotonic() < deadline:
        time.sleep(5)
    if busy:
        _progress(f"WARNING: not alone on this machine ({len(busy)} processes): figures are noisy")
    return busy


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    work_dir = Path(tempfile.mkdtemp(prefix="mlplane-validation-bench-"))
    state_dir = Path(tempfile.mkdtemp(prefix="mlplane-validation-bench-state-"))
    started = datetime.now(UTC)
    try:
        busy = _wait_quiet(args.wait_quiet)
        load_at_start = os.getloadavg()
        _progress(f"load average {_load()}")
        measured = run(args, work_dir, state_dir)
        document = measured.document
        document["time"] = started.isoformat()
        document["machine"] = machine(load_at_start)
        document["versions"] = _versions()
        document["other_activity"] = {"at_start": busy, "at_end": other_activity()}
        document["seconds"] = (datetime.now(UTC) - started).total_seconds()
        summary(measured)
        path = RESULTS_DIR / f"validation-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        write_json(path, document)
        _progress(f"wrote {path} ({document['seconds']:.0f} s in all)")
        return 0
    except KeyboardInterrupt:
        _progress("interrupted; stopping everything")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_leftover_children()
        shutil.rmtree(work_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
