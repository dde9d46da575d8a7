"""Approval workflow benchmark against a real stack (embedded PostgreSQL, ModelRegistry, Envoy).

    .venv/bin/python -m bench.approval_bench [--clients 16] [--per-client 25]

Measures, through Envoy with ``--clients`` concurrent clients (each its own connection):
  * SubmitForApproval (`POST /api/v1/models/{id}/approvals`, and gRPC), every call a distinct
    version moving PENDING_APPROVAL -> IN_REVIEW with its status history, audit row and outbox
    event in one transaction;
  * ApproveModelVersion (`POST /api/v1/approvals/{id}:approve`, and gRPC) by another subject,
    with the separation-of-duties check, the decision, history, audit and outbox event.
Each client works on its own model (`bench-approval-<n>`), so the figures are the plane's,
not one row lock's. Prints P50/P95/P99 and requests/s; writes bench/results/approval-*.json.
The seed's target: submit P95 < 200 ms.

A version can be approved only once its validation report has PASSED (issue #16), so after
each transport's uploads the bench waits, outside the timed phases, until the stack's
validation worker has passed every uploaded version (read from `validation_jobs` with the
admin DSN); the worker is idle while submits and approvals are timed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import psycopg2  # type: ignore[import-untyped,unused-ignore]
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from bench.measure import raise_interrupt, stop_leftover_children
from bench.report import text_table, write_json
from bench.upload_load import LoadResult, thread_load
from bench.upload_measure import ComponentCpu
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack, start_stack, stop_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUBMIT_P95_TARGET_MS = 200.0
_TIMEOUT = 30.0
# Waiting for the validation worker (setup): at most this long, plus this much per version.
_VALIDATION_WAIT_SECONDS = 300.0
_VALIDATION_WAIT_PER_VERSION = 2.0
SCIENTIST, APPROVER = "alice", "bob"


def _progress(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def upload_versions(stack: RunningStack, name: str, count: int) -> tuple[str, list[int]]:
    """`count` versions of model `name`, uploaded over gRPC (setup, not measured)."""
    token = stack.tokens.valid("data_scientist", subject=SCIENTIST)
    body = linear_model()
    with grpc.insecure_channel(stack.gateway_target) as channel:
        stub = pb_grpc.ModelRegistryStub(channel)
        versions, model_id = [], ""
        for _ in range(count):
            messages = [
                pb.UploadModelRequest(
                    metadata=pb.UploadModelMetadata(name=name, description="approval bench")
                ),
                pb.UploadModelRequest(chunk=body),
            ]
            version = stub.UploadModel(iter(messages), metadata=_metadata(token), timeout=_TIMEOUT)
            model_id = version.model_id
            versions.append(version.version)
    return model_id, versions


def wait_validated(stack: RunningStack, model_ids: list[str], versions: int) -> float:
    """Wait until the validation worker has finished every version of `model_ids` (setup, not
    measured); raise if one did not pass (it could not be approved). Returns the seconds
    waited."""
    started = time.monotonic()
    deadline = started + _VALIDATION_WAIT_SECONDS + _VALIDATION_WAIT_PER_VERSION * versions
    query = (
        "SELECT state, count(*) FROM validation_jobs"
        " WHERE model_id = ANY(%s::uuid[]) GROUP BY state"
    )
    reported = 0.0
    with contextlib.closing(psycopg2.connect(stack.admin_dsn())) as conn:
        conn.autocommit = True
        while True:
            with conn.cursor() as cur:
                cur.execute(query, (model_ids,))
                states = {str(state): int(n) for state, n in cur.fetchall()}
            open_jobs = states.get("PENDING", 0) + states.get("RUNNING", 0)
            done = sum(states.values()) - open_jobs
            if states.get("FAILED"):
                raise RuntimeError(f"validation failed for some versions: {states}")
            if sum(states.values()) >= versions and not open_jobs:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise TimeoutError(f"validation not finished in time: {states}")
            if time.monotonic() - reported >= 15:
                reported = time.monotonic()
                _progress(f"waiting for validation (setup): {done} of {versions} reports done")
            time.sleep(0.25)


Work = list[tuple[str, int]]  # (model id, version) or (approval id, 0)
Call = Callable[[str, int], str | None]  # one request; the approval id (or "ok"), None if wrong


def run_phase(
    label: str,
    work: list[Work],
    make_call: Callable[[], tuple[Call, Callable[[], None]]],
    warmup: int,
    cpu: ComponentCpu,
) -> tuple[LoadResult, list[list[str]]]:
    """`bench.upload_load.thread_load` with one client per work list: each thread works
    through its own items (the first `warmup` unmeasured); the answers come back per client."""
    unclaimed = list(enumerate(work))
    claim = threading.Lock()
    answers: list[list[str]] = [[] for _ in work]

    def make_client() -> tuple[Callable[[], bool], Callable[[], None]]:
        with claim:
            index, items = unclaimed.pop()
        call, close = make_call()
        pending = iter(items)

        def one() -> bool:
            answer = call(*next(pending))
            if answer is not None:
                answers[index].append(answer)
            return answer is not None

        return one, close

    clients, per_client = len(work), min(len(items) for items in work) - warmup
    result = thread_load(
        label,
        "python",
        make_client,
        clients=clients,
        requests=clients * per_client,
        warmup=clients * warmup,
        cpu=cpu,
    )
    return result, answers


def rest_submit(stack: RunningStack) -> tuple[Call, Callable[[], None]]:
    client = httpx.Client(
        base_url=stack.gateway_url,
        headers={"Authorization": f"Bearer {stack.tokens.valid(subject=SCIENTIST)}"},
        timeout=_TIMEOUT,
    )

    def call(model_id: str, version: int) -> str | None:
        response = client.post(
            f"/api/v1/models/{model_id}/approvals", json={"version": version, "comment": "bench"}
        )
        return str(response.json()["approvalId"]) if response.status_code == 202 else None

    return call, client.close


def rest_approve(stack: RunningStack) -> tuple[Call, Callable[[], None]]:
    token = stack.tokens.valid("model_approver", subject=APPROVER)
    client = httpx.Client(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT
    )

    def call(approval_id: str, _: int) -> str | None:
        response = client.post(f"/api/v1/approvals/{approval_id}:approve", json={"comment": "ok"})
        return "ok" if response.status_code == 200 else None

    return call, client.close


def _grpc_client(stack: RunningStack) -> tuple[grpc.Channel, pb_grpc.ModelRegistryStub]:
    # A local subchannel pool: otherwise every client's channel shares one connection.
    channel = grpc.insecure_channel(
        stack.gateway_target, options=[("grpc.use_local_subchannel_pool", 1)]
    )
    return channel, pb_grpc.ModelRegistryStub(channel)


def grpc_submit(stack: RunningStack) -> tuple[Call, Callable[[], None]]:
    channel, stub = _grpc_client(stack)
    metadata = _metadata(stack.tokens.valid(subject=SCIENTIST))

    def call(model_id: str, version: int) -> str | None:
        request = pb.SubmitForApprovalRequest(model_id=model_id, version=version, comment="bench")
        try:
            return stub.SubmitForApproval(request, metadata=metadata, timeout=_TIMEOUT).approval_id
        except grpc.RpcError:
            return None

    return call, channel.close


def grpc_approve(stack: RunningStack) -> tuple[Call, Callable[[], None]]:
    channel, stub = _grpc_client(stack)
    metadata = _metadata(stack.tokens.valid("model_approver", subject=APPROVER))

    def call(approval_id: str, _: int) -> str | None:
        request = pb.ApproveModelVersionRequest(approval_id=approval_id, comment="ok")
        try:
            stub.ApproveModelVersion(request, metadata=metadata, timeout=_TIMEOUT)
        except grpc.RpcError:
            return None
        return "ok"

    return call, channel.close


def measure(
    stack: RunningStack, args: argparse.Namespace, waited: dict[str, float]
) -> list[LoadResult]:
    pids = stack.info["pids"]
    cpu = ComponentCpu({n: pids[n] for n in ("models", "envoy", "postgres")})
    each = args.per_client + args.warmup
    phases: list[LoadResult] = []
    for transport, submit, approve in [
        ("REST", rest_submit, rest_approve),
        ("gRPC", grpc_submit, grpc_approve),
    ]:
        _progress(f"{transport}: uploading {args.clients} x {each} versions (setup)")
        uploads = [
            upload_versions(stack, f"bench-approval-{transport.lower()}-{n}", each)
            for n in range(args.clients)
        ]
        work = [[(model_id, v) for v in versions] for model_id, versions in uploads]
        # Approval needs a PASSED validation report; wait for the worker before the timed
        # phases (so it is idle while they run).
        waited[transport] = wait_validated(
            stack, [model_id for model_id, _ in uploads], args.clients * each
        )
        _progress(f"{transport}: every version validated (waited {waited[transport]:.1f} s)")
        phase, approval_ids = run_phase(
            f"SubmitForApproval {transport}, {args.clients} clients",
            work,
            functools.partial(submit, stack),
            args.warmup,
            cpu,
        )
        phases.append(phase)
        _report_phase(phase)
        # Every submission (warm-up ones too) is decided; each client's first `warmup`
        # decisions are unmeasured.
        decisions = [[(aid, 0) for aid in ids] for ids in approval_ids]
        phase, _ = run_phase(
            f"ApproveModelVersion {transport}, {args.clients} clients",
            decisions,
            functools.partial(approve, stack),
            args.warmup,
            cpu,
        )
        phases.append(phase)
        _report_phase(phase)
    return phases


def _report_phase(phase: LoadResult) -> None:
    found = phase.to_json()
    _progress(
        f"{phase.label}: {found['rps']:.0f} requests/s, P50 {found['p50_ms']:.1f} ms, "
        f"P95 {found['p95_ms']:.1f} ms, {phase.errors} errors"
    )


def table(phases: list[LoadResult]) -> str:
    rows = []
    for phase in phases:
        found = phase.to_json()
        cpu = phase.cpu
        rows.append(
            [
                phase.label,
                str(found["requests"]),
                str(phase.errors),
                f"{found['rps']:.0f}",
                f"{found['p50_ms']:.1f}",
                f"{found['p95_ms']:.1f}",
                f"{found['p99_ms']:.1f}",
                " / ".join(
                    f"{1000 * cpu.get(f'cpu_{n}', 0.0) / max(1, found['requests']):.2f}"
                    for n in ("models", "envoy", "postgres")
                ),
            ]
        )
    header = ["call", "n", "errors", "req/s", "P50 ms", "P95 ms", "P99 ms", "CPU ms/call m/e/pg"]
    return text_table(header, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.approval_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--per-client", type=int, default=25, help="measured calls each (25)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured calls each first (3)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)
    state_dir = Path(tempfile.mkdtemp(prefix="mlplane-approval-bench-"))
    stack: RunningStack | None = None
    started = datetime.now(UTC)
    waited: dict[str, float] = {}
    try:
        _progress(f"starting a stack in {state_dir}")
        stack = start_stack(
            state_dir,
            MLPLANE_DEMO_PLANT="false",
            # 16 clients of one subject are a burst by design here.
            MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",
            # Two validations at a time: the setup's ~900 versions are validated sooner; the
            # worker is idle during the timed phases either way.
            MLPLANE_VALIDATION_CONCURRENCY="2",
        )
        phases = measure(stack, args, waited)
    finally:
        if stack is not None:
            survivors = stop_stack(stack)
            if survivors:
                _progress(f"killed processes left behind: {[p.pid for p in survivors]}")
        stop_leftover_children()
        shutil.rmtree(state_dir, ignore_errors=True)
    print()
    print(table(phases))
    submit_p95 = max(p.to_json()["p95_ms"] for p in phases if p.label.startswith("Submit"))
    met = submit_p95 < SUBMIT_P95_TARGET_MS and not any(p.errors for p in phases)
    print(
        f"\nsubmit P95 (worst transport) {submit_p95:.1f} ms, target < {SUBMIT_P95_TARGET_MS:.0f}"
        f" ms: {'met' if met else 'NOT MET'}"
    )
    path = RESULTS_DIR / f"approval-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    write_json(
        path,
        {
            "bench": "approval",
            "time": started.isoformat(),
            "args": vars(args),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "phases": [p.to_json() for p in phases],
            "validation_wait_seconds": waited,
            "targets": [
                {"name": "submit P95 ms", "measured": submit_p95, "limit": SUBMIT_P95_TARGET_MS}
            ],
        },
    )
    _progress(f"wrote {path}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
