"""The validation worker's faults (issue #16), against a real stack of its own.

Versions are uploaded through the gateway (REST multipart); an in-process `Worker` on the
stack's database and folder store validates them (`run_once`), and the report is read back
through the gateway. The stack runs no worker of its own (MLPLANE_VALIDATION_WORKER=false):
nothing competes with the tests' workers for jobs. Every test drains the queue, so none
depends on another's leftovers, and checks that nothing was left behind: no job still
PENDING or RUNNING, no sandboxed child, no scratch folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score  # type: ignore[import-untyped]

from services.common.db import create_engine
from services.common.settings import Settings
from services.models.object_store import ObjectStore, open_store, store_unavailable
from services.models.repository import RegistryRepository
from services.validation import worker as worker_module
from services.validation.queue import WORKER_ACTOR, JobQueue
from services.validation.runtime_check import RuntimeCheckReport, run_runtime_check
from services.validation.sandbox import GiB, SandboxLimits
from services.validation.worker import Worker
from tests.admin_sql import admin_fetch
from tests.conftest import starts_servers
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack, stack_in_tmp
from tests.validation import models, sandbox_targets

EVALUATION_LIMIT = 64 * 1024 * 1024  # services.models.evaluation_upload.MAX_EVALUATION_SET_BYTES
DEADLINE = 20.0


# --- the stack, its database and its store ---------------------------------------------------


@pytest.fixture(scope="module")
@starts_servers
def vstack() -> Iterator[RunningStack]:
    with stack_in_tmp(
        "mlplane-vworker-", MLPLANE_VALIDATION_WORKER="false", MLPLANE_DEMO_PLANT="false"
    ) as running:
        yield running


@pytest.fixture(scope="module")
async def http(vstack: RunningStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=vstack.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
async def repo(vstack: RunningStack) -> AsyncIterator[RegistryRepository]:
    repository = _repository(vstack)
    try:
        yield repository
    finally:
        await repository.close()


@pytest.fixture(scope="module")
async def store(vstack: RunningStack) -> AsyncIterator[ObjectStore]:
    opened = await open_store(vstack.settings)
    try:
        yield opened
    finally:
        await opened.close()


def _repository(stack: RunningStack) -> RegistryRepository:
    return RegistryRepository(create_engine(stack.role_dsn("mlplane_registry"), stack.settings))


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children()}


def _new_processes(before: set[int]) -> list[psutil.Process]:
    """Children of this process started since `before` (`_children()`), and theirs. Not
    the descendants of the stacks already running (PostgreSQL forks a backend for each new
    connection, and autovacuum workers, at will: those are the stacks' business)."""
    found: list[psutil.Process] = []
    for child in psutil.Process().children():
        if child.pid not in before:
            found.append(child)
            with contextlib.suppress(psutil.Error):
                found += child.children(recursive=True)
    return found


def _entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture
def scratch(vstack: RunningStack, tmp_path: Path) -> Iterator[Path]:
    """The workers' scratch root: empty again after the test, and no sandboxed child left
    (tests/validation/leftovers.py, minus the stack's own processes)."""
    root = tmp_path / "scratch"
    root.mkdir()
    before = _children()
    yield root
    left = _entries(root)
    assert not left, f"scratch left behind: {left}"
    assert not _new_processes(before), "processes left behind"


def _settings(stack: RunningStack, **update: Any) -> Settings:
    return stack.settings.model_copy(
        update={
            "validation_wall_seconds": 15.0,
            "validation_cpu_seconds": 15,
            "validation_memory_bytes": 1 * GiB,
            "validation_store_retries": 1,
            **update,
        }
    )


def _worker(
    stack: RunningStack,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
    *,
    owner: str | None = None,
    lease: float = 30.0,
    **update: Any,
) -> Worker:
    queue = JobQueue(repo, owner or f"test-{uuid.uuid4().hex[:8]}", lease)
    return Worker(queue, store, _settings(stack, **update), scratch_root=scratch)


async def _drain(worker: Worker) -> int:
    """Run jobs until the queue has none claimable; how many were run."""
    count = 0
    while await worker.run_once():
        count += 1
    return count


# --- the gateway -----------------------------------------------------------------------------


def _scientist(stack: RunningStack) -> dict[str, str]:
    return stack.tokens.headers("data_scientist", subject="dana")


def _name() -> str:
    return f"vw-{uuid.uuid4().hex[:10]}"


async def _post_model(
    stack: RunningStack,
    http: httpx.AsyncClient,
    model: bytes,
    *,
    name: str | None = None,
    metrics: dict[str, float] | None = None,
    evaluation: bytes | None = None,
    evaluation_after_file: bool = False,
) -> httpx.Response:
    fields = {"name": name or _name()}
    if metrics is not None:
        fields["metrics"] = json.dumps(metrics)
    files = [("file", ("model.onnx", model, "application/octet-stream"))]
    if evaluation is not None:
        part = ("evaluationSet", ("evaluation.parquet", evaluation, "application/octet-stream"))
        files = [*files, part] if evaluation_after_file else [part, *files]
    return await http.post("/api/v1/models", data=fields, files=files, headers=_scientist(stack))


async def _upload(
    stack: RunningStack, http: httpx.AsyncClient, model: bytes, **kwargs: Any
) -> tuple[str, int]:
    response = await _post_model(stack, http, model, **kwargs)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["validationState"] == "PENDING"
    assert body["hasEvaluationSet"] is (kwargs.get("evaluation") is not None)
    return body["modelId"], int(body["version"])


async def _report(
    stack: RunningStack, http: httpx.AsyncClient, model_id: str, version: int
) -> dict[str, Any]:
    response = await http.get(
        f"/api/v1/models/{model_id}/versions/{version}/validation", headers=_scientist(stack)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["modelId"], int(body["version"])) == (model_id, version)
    return body


async def _version(
    stack: RunningStack, http: httpx.AsyncClient, model_id: str, version: int
) -> dict[str, Any]:
    response = await http.get(
        f"/api/v1/models/{model_id}/versions/{version}", headers=_scientist(stack)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _reasons(response: httpx.Response) -> list[str]:
    return [str(detail.get("reason")) for detail in response.json().get("details", [])]


# --- what must hold after every job ----------------------------------------------------------


async def _job(stack: RunningStack, model_id: str, version: int) -> asyncpg.Record:
    rows = await admin_fetch(
        stack,
        "SELECT state, attempts, lease_owner, lease_expires, start_time, reason"
        " FROM validation_jobs WHERE model_id = $1::uuid AND version = $2",
        model_id,
        version,
    )
    assert len(rows) == 1
    return rows[0]


async def _assert_done(stack: RunningStack, model_id: str, version: int) -> asyncpg.Record:
    job = await _job(stack, model_id, version)
    assert job["state"] in {"PASSED", "FAILED"}, dict(job)
    assert job["lease_owner"] is None, dict(job)
    assert job["lease_expires"] is None, dict(job)
    return job


async def _events(stack: RunningStack, model_id: str, version: int) -> list[dict[str, Any]]:
    rows = await admin_fetch(
        stack,
        "SELECT payload FROM outbox_events WHERE model_id = $1::uuid"
        " AND event_type = 'validation.completed' AND (payload->>'version')::bigint = $2"
        " ORDER BY event_pk",
        model_id,
        version,
    )
    return [json.loads(row["payload"]) for row in rows]


async def _audits(stack: RunningStack, model_id: str, version: int) -> list[asyncpg.Record]:
    return await admin_fetch(
        stack,
        "SELECT tenant_id, subject, outcome, detail FROM audit_log"
        " WHERE action = 'validation.complete' AND resource = $1 ORDER BY 1",
        f"model/{model_id}/version/{version}",
    )


async def _assert_failed(
    stack: RunningStack, http: httpx.AsyncClient, model_id: str, version: int, reason: str
) -> dict[str, Any]:
    report = await _report(stack, http, model_id, version)
    assert (report["state"], report["reason"]) == ("FAILED", reason), report
    assert report["message"]
    await _assert_done(stack, model_id, version)
    events = await _events(stack, model_id, version)
    assert [(e["state"], e["reason"]) for e in events] == [("FAILED", reason)]
    assert (await _version(stack, http, model_id, version))["validationState"] == "FAILED"
    return report


# --- 1. a good model -------------------------------------------------------------------------


async def test_a_good_model_passes(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    model_id, version = await _upload(vstack, http, linear_model(4))
    pending = await _report(vstack, http, model_id, version)
    assert (pending["state"], pending["attempts"]) == ("PENDING", 0)

    worker = _worker(vstack, repo, store, scratch, owner="good-worker")
    assert await _drain(worker) >= 1

    report = await _report(vstack, http, model_id, version)
    assert (report["state"], report["reason"], report["attempts"]) == ("PASSED", "", 1), report
    assert report["startTime"]
    assert report["completeTime"]
    runtime = report["runtime"]
    assert (runtime["passed"], runtime["reason"]) == (True, "")
    assert runtime["onnxruntimeVersion"]
    assert runtime["loadSeconds"] > 0
    assert 0 < runtime["latencyP50Ms"] <= runtime["latencyP95Ms"]
    assert runtime["timedRuns"] > 0
    assert int(runtime["peakMemoryBytes"]) > 0
    assert [(o["name"], o["type"]) for o in runtime["outputs"]] == [("Y", "tensor(float)")]
    assert int(runtime["limits"]["memoryBytes"]) == 1 * GiB
    assert runtime["networkIsolation"]
    assert report["compatibility"]["verdict"] == "NO_APPROVED_VERSION"
    assert "metrics" not in report  # no evaluation set

    assert (await _version(vstack, http, model_id, version))["validationState"] == "PASSED"
    job = await _assert_done(vstack, model_id, version)
    assert job["state"] == "PASSED"
    events = await _events(vstack, model_id, version)
    assert len(events) == 1
    assert events[0]["type"] == "validation.completed"
    assert (events[0]["state"], events[0]["reason"], events[0]["verdict"]) == (
        "PASSED",
        "",
        "NO_APPROVED_VERSION",
    )
    audits = await _audits(vstack, model_id, version)
    assert [(a["subject"], a["outcome"]) for a in audits] == [(WORKER_ACTOR, "PASSED")]
    detail = json.loads(audits[0]["detail"])
    assert (detail["worker"], detail["attempts"]) == ("good-worker", 1)


# --- 2-5. models that fail in the sandbox ----------------------------------------------------


async def test_a_model_onnx_runtime_cannot_load_fails_and_cannot_be_approved(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    model_id, version = await _upload(vstack, http, models.custom_op_model())
    await _drain(_worker(vstack, repo, store, scratch))
    report = await _assert_failed(vstack, http, model_id, version, "ORT_LOAD_FAILED")
    assert report["runtime"]["passed"] is False
    assert report["runtime"]["reason"] == "ORT_LOAD_FAILED"
    assert "Mystery" in report["message"]

    submitted = await http.post(
        f"/api/v1/models/{model_id}/approvals",
        json={"version": str(version), "comment": "please"},
        headers=_scientist(vstack),
    )
    assert submitted.status_code == 202, submitted.text
    approval_id = submitted.json()["approvalId"]
    approved = await http.post(
        f"/api/v1/approvals/{approval_id}:approve",
        json={"comment": "fine by me"},
        headers=vstack.tokens.headers("model_approver", subject="bob"),
    )
    assert approved.status_code == 400, approved.text
    assert "VALIDATION_NOT_PASSED" in _reasons(approved)
    info = next(d for d in approved.json()["details"] if d.get("reason") == "VALIDATION_NOT_PASSED")
    assert info["metadata"] == {"validationState": "FAILED", "validationReason": "ORT_LOAD_FAILED"}
    assert (await _version(vstack, http, model_id, version))["status"] == "IN_REVIEW"


async def test_a_model_past_the_memory_limit(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    model_id, version = await _upload(vstack, http, models.memory_hog_model())
    await _drain(_worker(vstack, repo, store, scratch, validation_memory_bytes=1 * GiB))
    report = await _assert_failed(vstack, http, model_id, version, "MEMORY_LIMIT")
    assert report["runtime"]["reason"] == "MEMORY_LIMIT"
    assert "1024 MiB" in report["message"]
    assert int(report["runtime"]["peakMemoryBytes"]) < 1 * GiB


async def test_inference_past_the_wall_clock_limit(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    model_id, version = await _upload(vstack, http, models.endless_loop_model())
    worker = _worker(
        vstack, repo, store, scratch, validation_wall_seconds=3.0, validation_cpu_seconds=60
    )
    started = time.monotonic()
    await _drain(worker)
    assert time.monotonic() - started < 15
    report = await _assert_failed(vstack, http, model_id, version, "TIME_LIMIT")
    assert report["runtime"]["limits"]["wallSeconds"] == 3.0
    assert "3.0 s" in report["message"]


async def test_a_child_killed_by_a_signal(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `sandbox_targets.kill_self` reads the signal from its payload, which the runtime check
    # writes itself (batch size, runs, threads): `segfault` is the target that dies as a
    # crashing ONNX Runtime would, whatever its payload.
    def crashing(
        model: bytes | Path, limits: SandboxLimits | None = None, **kwargs: Any
    ) -> RuntimeCheckReport:
        return run_runtime_check(model, limits, target=sandbox_targets.segfault, **kwargs)

    monkeypatch.setattr(worker_module, "run_runtime_check", crashing)
    model_id, version = await _upload(vstack, http, linear_model(4))
    await _drain(_worker(vstack, repo, store, scratch))
    report = await _assert_failed(vstack, http, model_id, version, "CRASHED_SIGNAL_11")
    assert report["runtime"]["reason"] == "CRASHED_SIGNAL_11"
    assert "SIGSEGV" in report["message"]


# --- 6. workers that die, leases that run out ------------------------------------------------


async def _claim_as_dead_worker(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> tuple[JobQueue, Any, str, int]:
    """A version whose job a worker claimed (lease 1 s) and will never finish."""
    await _drain(_worker(vstack, repo, store, scratch))  # the oldest job is the next one
    model_id, version = await _upload(vstack, http, linear_model(4))
    dead = JobQueue(repo, f"dead-{uuid.uuid4().hex[:8]}", 1.0)
    job = await dead.claim()
    assert job is not None
    assert (job.model_id, job.version, job.attempts) == (model_id, version, 1)
    running = await _report(vstack, http, model_id, version)
    assert (running["state"], running["attempts"]) == ("RUNNING", 1)
    return dead, job, model_id, version


async def _run_once_when_claimable(worker: Worker) -> None:
    """run_once until it takes a job (once the dead worker's lease ran out)."""
    deadline = time.monotonic() + DEADLINE
    while not await worker.run_once():
        assert time.monotonic() < deadline, "the expired lease's job was never taken again"
        await asyncio.sleep(0.1)


async def test_a_dead_workers_job_is_taken_again_after_its_lease(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    dead, job, model_id, version = await _claim_as_dead_worker(vstack, http, repo, store, scratch)
    first_claim = (await _job(vstack, model_id, version))["start_time"]
    worker = _worker(vstack, repo, store, scratch, owner="second-worker")
    await _run_once_when_claimable(worker)
    second_claim = (await _job(vstack, model_id, version))["start_time"]
    assert second_claim - first_claim >= timedelta(seconds=1)  # not before the lease ran out

    report = await _report(vstack, http, model_id, version)
    assert (report["state"], report["attempts"]) == ("PASSED", 2), report
    # The dead worker comes back: its lease was taken over, it writes nothing.
    assert not await dead.renew(job)
    assert not await dead.finish(job, state="FAILED", reason="LATE", message="late", report={})
    after = await _report(vstack, http, model_id, version)
    assert (after["state"], after["reason"], after["attempts"]) == ("PASSED", "", 2)
    await _assert_done(vstack, model_id, version)
    assert [e["state"] for e in await _events(vstack, model_id, version)] == ["PASSED"]
    audits = await _audits(vstack, model_id, version)
    assert [json.loads(a["detail"])["worker"] for a in audits] == ["second-worker"]
    await _drain(worker)


async def test_a_lease_taken_over_cannot_be_finished(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    dead, job, model_id, version = await _claim_as_dead_worker(vstack, http, repo, store, scratch)
    other = JobQueue(repo, f"other-{uuid.uuid4().hex[:8]}", 30.0)
    deadline = time.monotonic() + DEADLINE
    while (taken := await other.claim()) is None:
        assert time.monotonic() < deadline, "the expired lease's job was never taken again"
        await asyncio.sleep(0.1)
    assert (taken.model_id, taken.version, taken.attempts) == (model_id, version, 2)

    assert not await dead.renew(job)
    assert not await dead.finish(job, state="PASSED", reason="", message="", report={})
    row = await _job(vstack, model_id, version)
    assert (row["state"], row["lease_owner"]) == ("RUNNING", other.owner)
    assert await _events(vstack, model_id, version) == []
    assert await _audits(vstack, model_id, version) == []

    # The new owner gives it back (it is stopping); a worker then validates it.
    await other.release(taken)
    await _drain(_worker(vstack, repo, store, scratch))
    report = await _report(vstack, http, model_id, version)
    assert (report["state"], report["attempts"]) == ("PASSED", 2), report
    await _assert_done(vstack, model_id, version)
    assert len(await _events(vstack, model_id, version)) == 1


async def test_a_job_claimed_too_often_fails_as_worker_lost(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    _dead, _claimed, model_id, version = await _claim_as_dead_worker(
        vstack, http, repo, store, scratch
    )
    worker = _worker(vstack, repo, store, scratch, validation_max_attempts=1)
    await _run_once_when_claimable(worker)
    report = await _assert_failed(vstack, http, model_id, version, "WORKER_LOST")
    assert report["attempts"] == 2
    assert "runtime" not in report  # the model was not run again
    await _drain(worker)


# --- 7. evaluation sets ----------------------------------------------------------------------


def _parquet(columns: dict[str, Any]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


def _classifier_evaluation(rows: int = 400) -> tuple[bytes, bytes, dict[str, float]]:
    """The classifier, an evaluation set for it (4 feature columns and `label`), and the
    true ROC AUC and accuracy on it (onnxruntime and scikit-learn, here)."""
    model = models.classifier_model(4)
    rng = np.random.default_rng(16)
    features = rng.standard_normal((rows, 4)).astype(np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    probability = session.run(["probability"], {"X": features})[0][:, 0]
    labels = (rng.random(rows) < probability).astype(np.int64)
    columns: dict[str, Any] = {f"f{i}": features[:, i] for i in range(4)}
    columns["label"] = labels
    truth = {
        "roc_auc": float(roc_auc_score(labels, probability)),
        "accuracy": float(accuracy_score(labels, probability >= 0.5)),
    }
    assert 0.65 < truth["roc_auc"] < 0.95  # a model worth the name, with room below
    return model, _parquet(columns), truth


@pytest.fixture(scope="module")
async def evaluated(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
) -> dict[str, tuple[str, int, dict[str, float]]]:
    """Three classifiers uploaded with evaluation sets (claims that hold, a claim 0.2 off,
    a set with the wrong columns), validated by two workers at once: each evaluation's
    child spends seconds importing scikit-learn, so they overlap. Each test reads one."""
    model, evaluation, truth = _classifier_evaluation()
    off = {"roc_auc": truth["roc_auc"] - 0.2, "accuracy": truth["accuracy"]}
    # Two feature columns for a model of four inputs.
    wrong = _parquet({"a": [0.1, 0.2, 0.3], "b": [1.0, 2.0, 3.0], "label": [0, 1, 1]})
    cases = {"match": (truth, evaluation), "mismatch": (off, evaluation), "columns": (truth, wrong)}
    uploaded = {
        case: (*await _upload(vstack, http, model, metrics=claims, evaluation=data), claims)
        for case, (claims, data) in cases.items()
    }
    root = Path(tempfile.mkdtemp(prefix="mlplane-vworker-eval-"))
    before = _children()
    try:
        await asyncio.gather(
            _drain(_worker(vstack, repo, store, root)),
            _drain(_worker(vstack, repo, store, root)),
        )
        assert not _entries(root), "scratch left behind"
        assert not _new_processes(before), "processes left behind"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return uploaded


async def test_claimed_metrics_reproduced_on_the_evaluation_set(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    evaluated: dict[str, tuple[str, int, dict[str, float]]],
) -> None:
    model_id, version, truth = evaluated["match"]
    report = await _report(vstack, http, model_id, version)
    assert (report["state"], report["reason"], report["attempts"]) == ("PASSED", "", 1), report
    assert report["runtime"]["passed"] is True
    metrics = report["metrics"]
    assert (metrics["passed"], metrics["reason"]) == (True, "")
    assert (int(metrics["rows"]), metrics["labelColumn"]) == (400, "label")
    checks = {check["name"]: check for check in metrics["checks"]}
    assert set(checks) == {"roc_auc", "accuracy"}
    for name, check in checks.items():
        assert (check["metric"], check["status"]) == (name, "MATCH"), check
        assert abs(check["verified"] - truth[name]) < 1e-6
    await _assert_done(vstack, model_id, version)
    version_body = await _version(vstack, http, model_id, version)
    assert (version_body["validationState"], version_body["hasEvaluationSet"]) == ("PASSED", True)
    assert [e["state"] for e in await _events(vstack, model_id, version)] == ["PASSED"]


async def test_a_claim_the_evaluation_set_does_not_bear_out(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    evaluated: dict[str, tuple[str, int, dict[str, float]]],
) -> None:
    model_id, version, _claims = evaluated["mismatch"]
    report = await _assert_failed(vstack, http, model_id, version, "METRICS_MISMATCH")
    assert report["runtime"]["passed"] is True
    assert "roc_auc" in report["message"]
    metrics = report["metrics"]
    assert (metrics["passed"], metrics["reason"]) == (False, "METRICS_MISMATCH")
    checks = {check["name"]: check for check in metrics["checks"]}
    assert checks["roc_auc"]["status"] == "MISMATCH"
    assert abs(checks["roc_auc"]["difference"] - 0.2) < 1e-6
    assert checks["accuracy"]["status"] == "MATCH"


async def test_an_evaluation_set_with_the_wrong_columns(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    evaluated: dict[str, tuple[str, int, dict[str, float]]],
) -> None:
    model_id, version, _claims = evaluated["columns"]
    report = await _assert_failed(vstack, http, model_id, version, "EVAL_COLUMNS_MISMATCH")
    assert report["runtime"]["passed"] is True
    assert report["metrics"]["reason"] == "EVAL_COLUMNS_MISMATCH"
    assert report["metrics"]["checks"] == []


def _files_under(folder: Path) -> set[str]:
    """Every file under `folder`, temporary ones (.incoming) included."""
    if not folder.is_dir():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("not_parquet", 400, "EVALUATION_SET_NOT_PARQUET"),
        ("too_large", 413, "EVALUATION_SET_TOO_LARGE"),
        ("after_file", 400, "EVALUATION_SET_AFTER_FILE"),
    ],
)
async def test_evaluation_sets_refused_at_upload_leave_nothing(
    vstack: RunningStack, http: httpx.AsyncClient, case: str, status: int, reason: str
) -> None:
    objects, spool = vstack.settings.object_store_dir, vstack.settings.spool_dir
    objects_before, spool_before = _files_under(objects), _files_under(spool)
    good = _classifier_evaluation(rows=50)[1]
    evaluation = {
        "not_parquet": b"label,f0\n1,0.5\n0,0.25\n" * 4,
        "too_large": b"PAR1" + b"\0" * (EVALUATION_LIMIT - 8 + 1024) + b"PAR1",
        "after_file": good,
    }[case]
    name = _name()
    response = await _post_model(
        vstack,
        http,
        models.classifier_model(4),
        name=name,
        evaluation=evaluation,
        evaluation_after_file=case == "after_file",
    )
    assert response.status_code == status, response.text

    rows = await admin_fetch(
        vstack,
        "SELECT v.version FROM model_versions v JOIN models m USING (model_id) WHERE m.name = $1",
        name,
    )
    assert rows == []
    assert await admin_fetch(vstack, "SELECT 1 FROM models WHERE name = $1", name) == []
    assert _files_under(objects) == objects_before, "an object or temporary file was left"
    assert _files_under(spool) == spool_before, "a spool file was left"
    # Last, so that a wrong reason does not hide what was left behind.
    assert reason in _reasons(response), response.json()


# --- 8. the object store down ----------------------------------------------------------------


class FlakyStore:
    """The stack's folder store, whose `read` fails its first `failures` calls."""

    def __init__(self, real: ObjectStore, failures: int, error: Exception) -> None:
        self._real = real
        self._failures = failures
        self._error = error
        self.reads = 0

    async def read(self, key: str) -> AsyncIterator[bytes]:
        self.reads += 1
        if self.reads <= self._failures:
            raise self._error
        async for piece in self._real.read(key):
            yield piece

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize(
    "error", [store_unavailable(), OSError("connection reset")], ids=["service_error", "os_error"]
)
async def test_a_store_down_during_the_download(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
    error: Exception,
) -> None:
    await _drain(_worker(vstack, repo, store, scratch))
    model_id, version = await _upload(vstack, http, linear_model(4))
    down = FlakyStore(store, failures=10**6, error=error)
    worker = _worker(vstack, repo, down, scratch, validation_store_retries=1)
    assert await worker.run_once()
    assert down.reads == 2  # the first try and one retry
    report = await _assert_failed(vstack, http, model_id, version, "STORE_UNAVAILABLE")
    assert "runtime" not in report
    assert report["compatibility"]["verdict"] == "NO_APPROVED_VERSION"


async def test_a_store_that_fails_once_is_retried(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    await _drain(_worker(vstack, repo, store, scratch))
    model_id, version = await _upload(vstack, http, linear_model(4))
    flaky = FlakyStore(store, failures=1, error=store_unavailable())
    worker = _worker(vstack, repo, flaky, scratch, validation_store_retries=1)
    assert await worker.run_once()
    assert flaky.reads == 2
    report = await _report(vstack, http, model_id, version)
    assert (report["state"], report["attempts"]) == ("PASSED", 1), report
    await _assert_done(vstack, model_id, version)


# --- 9. two workers, one queue ---------------------------------------------------------------


async def test_two_workers_validate_each_job_exactly_once(
    vstack: RunningStack,
    http: httpx.AsyncClient,
    repo: RegistryRepository,
    store: ObjectStore,
    scratch: Path,
) -> None:
    versions = [await _upload(vstack, http, linear_model(4, seed=seed)) for seed in range(4)]
    other_repo = _repository(vstack)  # a second process would have its own pool
    try:
        first = _worker(vstack, repo, store, scratch, owner="worker-one")
        second = _worker(vstack, other_repo, store, scratch, owner="worker-two")
        counts = await asyncio.gather(_drain(first), _drain(second))
    finally:
        await other_repo.close()
    assert sum(counts) >= len(versions)
    workers = set()
    for model_id, version in versions:
        report = await _report(vstack, http, model_id, version)
        assert (report["state"], report["attempts"]) == ("PASSED", 1), report
        await _assert_done(vstack, model_id, version)
        assert len(await _events(vstack, model_id, version)) == 1
        audits = await _audits(vstack, model_id, version)
        assert len(audits) == 1
        workers.add(json.loads(audits[0]["detail"])["worker"])
    assert workers == {"worker-one", "worker-two"}
