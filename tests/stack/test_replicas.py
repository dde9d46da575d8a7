"""Two replicas of each service behind the gateway (`mlplane up --replicas 2`, wired as the
Helm chart wires pods: one cluster, round robin, gRPC health checks) behave like one.

One stack for the module (CI time): page tokens cross replicas; concurrent uploads,
submissions and decisions spread over both keep their guarantees; both outbox relays deliver
every event once, in order per model; `kill -9` of a replica under a 16-client load loses
nothing and leaves nothing half-stored, and the SDK's reads succeed; a rolling restart
(SIGTERM one replica at a time: readiness off first, calls drained) fails no request.
Timings are printed (`pytest -rP`), not asserted beyond what the design promises."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import model_registry_pb2_grpc as mpb_grpc
from mlplane.v1 import query_service_pb2 as qpb
from mlplane.v1 import query_service_pb2_grpc as qpb_grpc

from mlplane_client import Client, Conflict, MlplaneError, RetryPolicy, Unavailable
from tests.admin_sql import admin_rows
from tests.conftest import private_tmp, starts_servers
from tests.models.onnx_models import linear_model
from tests.polling import poll_until
from tests.stack_runner import RunningStack, stack_in_tmp
from tests.webhooks import WebhookReceiver

SERVICE_NAMES = {"query": "mlplane.v1.QueryService", "models": "mlplane.v1.ModelRegistry"}
DEADLINE = 60.0  # for anything to come back; far above what it takes
LOAD_CAP = 120.0  # a load stops by itself after this long, whatever happens to the test
CLIENTS = 16
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def webhook() -> Iterator[WebhookReceiver]:
    """The outbox relays' webhook: answers 200 to every POST, keeps the events in order."""
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture(scope="module")
@starts_servers
def stack(webhook: WebhookReceiver) -> Iterator[RunningStack]:
    with stack_in_tmp(
        "mlplane-replicas-",
        up_args=("--replicas", "2"),
        MLPLANE_DEMO_PLANT_DAYS="1",
        # One subject sends the whole load: the gateway's per-client limit stays out of it.
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",
        MLPLANE_MAX_MODEL_BYTES=str(4 * 1024 * 1024),
        MLPLANE_WEBHOOK_URLS=json.dumps([webhook.url()]),
        MLPLANE_WEBHOOK_SECRET="replicas-test",
        MLPLANE_WEBHOOK_POLL_SECONDS="0.2",
        MLPLANE_WEBHOOK_BACKOFF_SECONDS="0.2",
        # A drain of 8 s (the default is 5): under this module's own load on two cores (two
        # replicas each, the worker validating every upload) a replica answered no health
        # probe for seconds at a time, and twice in CI the 5 s NOT_SERVING window passed unseen.
        MLPLANE_SHUTDOWN_DRAIN_SECONDS="8",
    ) as running:
        _wait_all_healthy(running)
        yield running


# --- looking at the gateway and the replicas ----------------------------------------------------
def _envoy_hosts(stack: RunningStack) -> dict[tuple[str, int], dict[str, str]]:
    """Envoy's view of each upstream host: {(cluster, port): {stat: value}}."""
    text = httpx.get(f"{stack.info['admin_url']}/clusters", timeout=5).text
    hosts: dict[tuple[str, int], dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("::")
        host, _, port_text = parts[1].rpartition(":") if len(parts) == 4 else ("", "", "")
        if parts[0] in SERVICE_NAMES and host and port_text.isdigit():
            port = int(port_text)
            hosts.setdefault((parts[0], port), {})[parts[2]] = parts[3]
    return hosts


def _requests_per_replica(stack: RunningStack, service: str) -> dict[int, int]:
    hosts = _envoy_hosts(stack)
    return {
        r["grpc_port"]: int(hosts[(service, r["grpc_port"])]["rq_total"])
        for r in stack.replicas(service)
    }


def _healthy_in_envoy(stack: RunningStack, service: str, port: int) -> bool:
    return _envoy_hosts(stack).get((service, port), {}).get("health_flags") == "healthy"


def _wait_all_healthy(stack: RunningStack) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        pending = [
            (service, r["grpc_port"])
            for service in SERVICE_NAMES
            for r in stack.replicas(service)
            if not _healthy_in_envoy(stack, service, r["grpc_port"])
        ]
        if not pending:
            return
        assert time.monotonic() < deadline, f"not healthy in Envoy: {pending}"
        time.sleep(0.1)


def _health(port: int, service: str, channel: grpc.Channel | None = None) -> int | None:
    """The replica's health for `service`, None if it does not answer within 2 s; on
    `channel` if given (connected already: a probe under load then costs no new
    connection, which a busy machine may not make within the timeout)."""
    try:
        with contextlib.ExitStack() as own:
            if channel is None:
                channel = own.enter_context(grpc.insecure_channel(f"127.0.0.1:{port}"))
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
    except grpc.RpcError:
        return None
    return int(answer.status)


def _exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_replaced(stack: RunningStack, service: str, index: int, old_pid: int) -> dict[str, Any]:
    """The replica's new process: recorded, SERVING on its port, healthy in Envoy."""
    deadline = time.monotonic() + DEADLINE
    while True:
        assert stack.proc.poll() is None, f"mlplane up stopped:\n{stack.log()[-3000:]}"
        replica = stack.replicas(service)[index]
        if (
            replica["pid"] != old_pid
            and _health(replica["grpc_port"], SERVICE_NAMES[service]) == SERVING
            and _healthy_in_envoy(stack, service, replica["grpc_port"])
        ):
            return replica
        assert time.monotonic() < deadline, f"{replica['name']} not back:\n{stack.log()[-3000:]}"
        time.sleep(0.1)


def _client(
    stack: RunningStack, subject: str = "alice", role: str = "data_scientist", **kw: Any
) -> Client:
    token = stack.tokens.valid(role, subject=subject)
    return Client(stack.gateway_target, token=token, **kw)


def _upload(client: Client, folder: Path, name: str, seed: int) -> tuple[Any, bytes]:
    data = linear_model(8, seed=seed)
    path = folder / f"{name}-{seed}.onnx"
    path.write_bytes(data)
    try:
        return client.upload_model(path, name, f"seed {seed}", progress=False), data
    finally:
        path.unlink(missing_ok=True)


# --- 1. balancing and page tokens --------------------------------------------------------------
def test_every_replica_is_an_endpoint_and_serves_through_the_gateway(stack: RunningStack) -> None:
    hosts = _envoy_hosts(stack)
    for service in SERVICE_NAMES:
        replicas = stack.replicas(service)
        assert [r["name"] for r in replicas] == [service, f"{service}-2"]
        assert len({r["pid"] for r in replicas}) == 2
        assert {port for cluster, port in hosts if cluster == service} == {
            r["grpc_port"] for r in replicas
        }
    # The first replica keeps the one-replica keys that tools and benches read.
    assert stack.pids()["query"] == stack.replicas("query")[0]["pid"]
    assert stack.info["models_port"] == stack.replicas("models")[0]["grpc_port"]
    before = {s: _requests_per_replica(stack, s) for s in SERVICE_NAMES}
    with _client(stack) as client:
        for _ in range(20):
            client.list_assets()
            client.list_models()
    for service in SERVICE_NAMES:
        after = _requests_per_replica(stack, service)
        served = {port: after[port] - before[service][port] for port in after}
        # Round robin over both (health checks are not counted in rq_total).
        assert all(count >= 5 for count in served.values()), (service, served)


def test_page_tokens_minted_by_one_replica_are_accepted_by_the_other(
    stack: RunningStack, tmp_path: Path
) -> None:
    with _client(stack) as client:
        for seed in range(5):
            _upload(client, tmp_path, f"paged-{seed}", seed)
    auth = stack.tokens.metadata("data_scientist")
    channels = [grpc.insecure_channel(t) for t in stack.replica_targets("models")]
    query_channels = [grpc.insecure_channel(t) for t in stack.replica_targets("query")]
    try:
        names: list[str] = []
        token = ""
        for page in itertools.count():
            stub = mpb_grpc.ModelRegistryStub(channels[page % 2])  # alternate replicas
            answer = stub.ListModels(
                mpb.ListModelsRequest(page_size=2, page_token=token), metadata=auth, timeout=10
            )
            names += [m.name for m in answer.models]
            token = answer.next_page_token
            if not token:
                break
        assert page >= 2  # pages minted on each replica, read on the other
        assert len(names) == len(set(names))
        assert {f"paged-{seed}" for seed in range(5)} <= set(names)
        assets: list[str] = []
        token = ""
        for page in itertools.count():
            query = qpb_grpc.QueryServiceStub(query_channels[page % 2])
            listed = query.ListAssets(
                qpb.ListAssetsRequest(page_size=3, page_token=token), metadata=auth, timeout=10
            )
            assets += [a.asset_id for a in listed.assets]
            token = listed.next_page_token
            if not token:
                break
        assert page >= 2
        with _client(stack) as client:
            assert assets == [a.asset_id for a in client.list_assets()]
    finally:
        for channel in channels + query_channels:
            channel.close()


# --- 2. concurrent writes spread over the replicas --------------------------------------------
@dataclass
class Contest:
    versions: dict[str, list[tuple[str, int]]]  # name -> [(model_id, version)]
    submissions: Counter[str]
    decisions: Counter[str]
    winners: dict[str, str]  # approval id -> "APPROVED" / "REJECTED" as told to the winner
    served: dict[int, int]  # models replica port -> calls it served during the contest
    model_ids: list[str] = field(default_factory=list)


NAMES = [f"contest-{i}" for i in range(4)]
PER_NAME = 6


@pytest.fixture(scope="module")
def contest(stack: RunningStack) -> Iterator[Contest]:
    folder = private_tmp("mlplane-contest-")
    before = _requests_per_replica(stack, "models")
    uploader = _client(stack)
    bob = _client(stack, "bob", "model_approver")
    carol = _client(stack, "carol", "model_approver")
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            # Uploads of the same names at once, from 16 threads.
            jobs = [(name, seed) for seed in range(PER_NAME) for name in NAMES]
            uploaded = list(
                pool.map(lambda job: _upload(uploader, folder, job[0], 100 + job[1])[0], jobs)
            )
            versions: dict[str, list[tuple[str, int]]] = {}
            for mv in uploaded:
                versions.setdefault(mv.name, []).append((mv.model_id, mv.version))
            # Approval needs a passed validation: the stack's worker validates them all
            # first (its events are then older than every submission's).
            model_ids = sorted({mv.model_id for mv in uploaded})
            poll_until(
                lambda: (
                    admin_rows(
                        stack,
                        "SELECT count(*) FROM validation_jobs"
                        " WHERE model_id::text = ANY($1::text[]) AND state = 'PASSED'",
                        model_ids,
                    )[0][0]
                    == len(jobs)
                ),
                "every contest version validated",
                timeout=120,
            )

            # Every version submitted three times at once (one submission is accepted), then
            # its request decided by two approvers at once, one approving, one rejecting (one
            # decision holds). The four models at once; within a model, version after version:
            # its events then follow one another (each transaction begins after the last one
            # committed), which is the order per model the relays must keep. Events written by
            # concurrent transactions have no order to keep (not even with one replica).
            def submit(target: tuple[str, int]) -> tuple[str, str]:
                try:
                    approval = uploader.submit_for_approval(target[0], target[1], "please")
                except Conflict as refused:
                    return "refused", refused.reason
                return "accepted", approval.approval_id

            def decide(job: tuple[str, bool]) -> tuple[str, str, str]:
                approval_id, approving = job
                try:
                    if approving:
                        decided = bob.approve(approval_id, "ok")
                    else:
                        decided = carol.reject(approval_id, "no")
                except Conflict as refused:
                    return approval_id, "refused", refused.reason
                return approval_id, "decided", str(decided.state)

            def review(name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
                submitted: list[tuple[str, str]] = []
                decided: list[tuple[str, str, str]] = []
                with ThreadPoolExecutor(3) as inner:
                    for target in sorted(versions[name], key=lambda t: t[1]):
                        outcomes = list(inner.map(submit, [target] * 3))
                        submitted += outcomes
                        for outcome, approval_id in outcomes:
                            if outcome == "accepted":
                                decided += inner.map(
                                    decide, [(approval_id, True), (approval_id, False)]
                                )
                return submitted, decided

            reviewed = list(pool.map(review, NAMES))
            submitted = [outcome for s, _ in reviewed for outcome in s]
            decided = [outcome for _, d in reviewed for outcome in d]
            submissions = Counter(outcome for outcome, _ in submitted)
        decisions = Counter(outcome for _, outcome, _ in decided)
        winners = {a: state for a, outcome, state in decided if outcome == "decided"}
        after = _requests_per_replica(stack, "models")
        yield Contest(
            versions=versions,
            submissions=submissions,
            decisions=decisions,
            winners=winners,
            served={port: after[port] - before[port] for port in after},
            model_ids=sorted({mid for ts in versions.values() for mid, _ in ts}),
        )
    finally:
        for client in (uploader, bob, carol):
            client.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_concurrent_uploads_submissions_and_decisions_keep_their_guarantees(
    stack: RunningStack, contest: Contest
) -> None:
    print(f"models calls per replica during the contest: {contest.served}")
    # Both replicas took part.
    assert all(count >= 20 for count in contest.served.values()), contest.served
    # Distinct, contiguous versions per name, one model per name.
    for name in NAMES:
        assert len({mid for mid, _ in contest.versions[name]}) == 1, name
        assert sorted(v for _, v in contest.versions[name]) == list(range(1, PER_NAME + 1))
    # Exactly one accepted submission per version, exactly one decision per request.
    total = len(NAMES) * PER_NAME
    assert contest.submissions == Counter({"accepted": total, "refused": 2 * total})
    assert contest.decisions == Counter({"decided": total, "refused": total})
    assert len(contest.winners) == total
    with _client(stack, "bob", "model_approver") as bob:
        for approval_id, state in contest.winners.items():
            approval = bob.get_approval(approval_id)
            assert str(approval.state) == state
            assert approval.decided_by == ("bob" if state == "APPROVED" else "carol")
    counts = admin_rows(
        stack,
        "SELECT model_id::text, version, count(*) FROM approval_requests"
        " WHERE model_id::text = ANY($1::text[]) GROUP BY 1, 2",
        contest.model_ids,
    )
    assert len(counts) == total
    assert {row[2] for row in counts} == {1}


def test_both_outbox_relays_deliver_every_event_once_in_order(
    stack: RunningStack, contest: Contest, webhook: WebhookReceiver
) -> None:
    expected: dict[str, list[str]] = {}
    for model_id, event_id in admin_rows(
        stack,
        "SELECT model_id::text, payload->>'id' FROM outbox_events"
        " WHERE model_id::text = ANY($1::text[]) ORDER BY event_pk",
        contest.model_ids,
    ):
        expected.setdefault(model_id, []).append(event_id)
    wanted = {event for events in expected.values() for event in events}
    # validation.completed, approval.requested and approval.decided, per version
    assert len(wanted) == 3 * len(NAMES) * PER_NAME
    deadline = time.monotonic() + DEADLINE
    while not wanted <= {e["id"] for e in webhook.accepted()}:
        assert time.monotonic() < deadline, "events not delivered"
        time.sleep(0.1)
    time.sleep(1.0)  # a duplicate, if any relay were to post one, has time to arrive
    received = [e for e in webhook.accepted() if e["id"] in wanted]
    duplicates = [k for k, n in Counter(e["id"] for e in received).items() if n > 1]
    assert duplicates == []
    for model_id, events in expected.items():
        assert [e["id"] for e in received if e["modelId"] == model_id] == events, model_id
    undelivered = admin_rows(
        stack,
        "SELECT count(*) FROM outbox_events WHERE model_id::text = ANY($1::text[])"
        " AND (delivered_time IS NULL OR attempts <> 1)",
        contest.model_ids,
    )
    assert undelivered == [(0,)]


# --- 3. a load of 16 clients, for the faults --------------------------------------------------
@dataclass
class Load:
    """12 readers (SDK reads of models and assets) and 4 writers (upload, then submit), through
    the gateway, until `stop` or LOAD_CAP seconds."""

    stack: RunningStack
    folder: Path
    model_ids: list[str]
    retry: RetryPolicy
    stop: threading.Event = field(default_factory=threading.Event)
    reads: Counter[str] = field(default_factory=Counter)
    read_failures: list[str] = field(default_factory=list)
    writes: int = 0
    write_failures: list[MlplaneError] = field(default_factory=list)
    acked: list[tuple[Any, bytes]] = field(default_factory=list)
    submitted: list[tuple[str, int]] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)  # sha256 of every upload body sent
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index in range(CLIENTS):
            target = self._reader if index < 12 else self._writer
            thread = threading.Thread(target=target, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)
        assert not any(t.is_alive() for t in self._threads), "a load thread hangs"

    def _running(self, started: float) -> bool:
        return not self.stop.is_set() and time.monotonic() - started < LOAD_CAP

    def _reader(self, index: int) -> None:
        started = time.monotonic()
        ops: list[tuple[str, Callable[[Client, int], object]]] = [
            ("GetModel", lambda c, i: c.get_model(self.model_ids[i % len(self.model_ids)])),
            ("ListModels", lambda c, i: c.list_models()),
            ("GetModelVersion", lambda c, i: c.get_version(self.model_ids[i % 3], 1)),
            ("ListAssets", lambda c, i: c.list_assets()),
        ]
        with _client(self.stack, retry=self.retry, timeout=15) as client:
            for i in itertools.count(index):
                if not self._running(started):
                    return
                name, op = ops[i % len(ops)]
                try:
                    op(client, i)
                except MlplaneError as error:
                    with self._lock:
                        self.read_failures.append(f"{name}: {error}")
                else:
                    with self._lock:
                        self.reads[name] += 1

    def _writer(self, index: int) -> None:
        started = time.monotonic()
        with _client(self.stack, retry=self.retry, timeout=15) as client:
            for seed in itertools.count(1000 * index):
                if not self._running(started):
                    return
                data = linear_model(8, seed=seed)
                with self._lock:
                    self.sent.add(hashlib.sha256(data).hexdigest())
                path = self.folder / f"w{index}-{seed}.onnx"
                path.write_bytes(data)
                try:
                    version = client.upload_model(path, f"load-{index}", "", progress=False)
                    with self._lock:
                        self.acked.append((version, data))
                    client.submit_for_approval(version.model_id, version.version, "load")
                except MlplaneError as error:
                    with self._lock:
                        self.write_failures.append(error)
                else:
                    with self._lock:
                        self.writes += 1
                        self.submitted.append((version.model_id, version.version))
                finally:
                    path.unlink(missing_ok=True)

    def progress(self) -> int:
        with self._lock:
            return sum(self.reads.values()) + self.writes

    def wait_for_progress(self, calls: int) -> None:
        deadline = time.monotonic() + DEADLINE
        start = self.progress()
        while self.progress() < start + calls:
            assert time.monotonic() < deadline, "the load makes no progress"
            time.sleep(0.05)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path


def _rows(stack: RunningStack) -> dict[tuple[str, int], tuple[str, str, int]]:
    rows = admin_rows(
        stack, "SELECT model_id::text, version, storage_key, sha256, size_bytes FROM model_versions"
    )
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def test_kill_9_of_a_replica_under_load_loses_nothing_and_reads_succeed(
    stack: RunningStack, contest: Contest, work: Path
) -> None:
    objects = stack.state_dir / "objects"
    with Load(stack, work, contest.model_ids, RetryPolicy()) as load:
        load.wait_for_progress(100)
        committed = _rows(stack)
        victims = {s: stack.replicas(s)[1] for s in SERVICE_NAMES}
        for victim in victims.values():
            os.kill(victim["pid"], signal.SIGKILL)
        killed = time.monotonic()
        for service, victim in victims.items():
            _wait_replaced(stack, service, 1, victim["pid"])
        recovered = time.monotonic() - killed
        load.wait_for_progress(100)
    print(
        f"kill -9 of query-2 and models-2 under {CLIENTS} clients: back and healthy in Envoy "
        f"after {recovered:.1f}s; reads {dict(load.reads)}, uploads+submits {load.writes}, "
        f"write failures {len(load.write_failures)}"
    )
    # The SDK's reads (retried by the gateway, then by the SDK) all succeeded.
    assert load.read_failures == []
    assert sum(load.reads.values()) > 200
    # Writes in flight on the killed replica may fail, only as Unavailable (never retried):
    # UNAVAILABLE from the gateway, or STREAM_RESET when the replica died after its answer
    # had begun (an upload's headers go out before its message).
    assert all(isinstance(e, Unavailable) for e in load.write_failures), [
        f"{type(e).__name__} {e.code.name} reason={e.reason!r} request={e.request_id}: {e}"
        for e in load.write_failures
    ]
    assert load.writes > 0
    # Nothing committed is lost; every version names a whole file with its recorded hash.
    rows = _rows(stack)
    assert committed.items() <= rows.items()
    for (model_id, version), (key, sha256, size) in rows.items():
        data = (objects / key).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256), (model_id, version)
    with _client(stack) as client:
        for version, data in load.acked:
            back = client.download_model(
                version.model_id, version.version, work / "back.onnx", progress=False
            )
            assert back.read_bytes() == data
        for model_id, number in load.submitted:
            assert client.get_version(model_id, number).status == "IN_REVIEW"
    # Nothing half-stored: no upload's temporary file is left (the killed replica's are
    # swept by its replacement), and a file no version names (the replica died between
    # storing it and recording it) is a whole upload, never a part of one.
    incoming = objects / ".incoming"
    assert not incoming.exists() or list(incoming.iterdir()) == []
    named = {key for key, _, _ in rows.values()}
    unnamed = [
        p
        for p in objects.rglob("*")
        if p.is_file() and ".incoming" not in p.parts and str(p.relative_to(objects)) not in named
    ]
    for path in unnamed:
        assert hashlib.sha256(path.read_bytes()).hexdigest() in load.sent, path
    print(f"files no version names (whole uploads, invisible): {len(unnamed)}")


def test_rolling_restart_under_load_fails_no_request(
    stack: RunningStack, contest: Contest, work: Path
) -> None:
    timings: list[str] = []

    def roll(service: str, index: int) -> None:
        replica = stack.replicas(service)[index]
        port, pid = replica["grpc_port"], replica["pid"]
        exported: list[int] = []
        export_thread = None
        if service == "query":
            # A call in flight when SIGTERM comes, straight to the replica: its first message
            # read before, the rest slowly after; it must end with every message and OK.
            started = threading.Event()

            def export() -> None:
                request = qpb.ExportHistoryRequest(asset_id=asset.asset_id, format=qpb.Export.ARROW)
                request.start_time.FromDatetime(asset.first_time)
                request.end_time.FromDatetime(asset.last_time)
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    call = qpb_grpc.QueryServiceStub(channel).ExportHistory(
                        request, metadata=stack.tokens.metadata("data_scientist"), timeout=DEADLINE
                    )
                    messages = [next(call)]
                    started.set()
                    for message in call:
                        time.sleep(0.3)
                        messages.append(message)
                    assert call.code() == grpc.StatusCode.OK
                    exported.append(len(messages))

            with _client(stack) as direct:
                asset = direct.list_assets()[0]
            assert asset.first_time is not None
            assert asset.last_time is not None
            export_thread = threading.Thread(target=export)
            export_thread.start()
            assert started.wait(DEADLINE)
        probe = grpc.insecure_channel(f"127.0.0.1:{port}")
        _health(port, SERVICE_NAMES[service], probe)  # connects it (whatever it answers)
        signalled = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        not_serving = out_of_rotation = exited = None
        deadline = signalled + DEADLINE
        while exited is None:  # each moment taken when its check answered
            if not_serving is None and _health(port, SERVICE_NAMES[service], probe) == NOT_SERVING:
                not_serving = time.monotonic()
            if out_of_rotation is None and not _healthy_in_envoy(stack, service, port):
                out_of_rotation = time.monotonic()
            if _exited(pid):
                exited = time.monotonic()
            assert time.monotonic() < deadline, f"{replica['name']} did not stop"
            time.sleep(0.05)
        probe.close()
        # Readiness first, then the gateway takes it out, and only then does it stop.
        # (Moments, not durations: how soon each came depends on the machine's load; the
        # figures are printed below.)
        assert not_serving is not None
        assert out_of_rotation is not None
        assert not_serving <= exited
        assert out_of_rotation < exited
        if export_thread is not None:
            export_thread.join(DEADLINE)
            assert exported, "the export in flight at SIGTERM did not complete"
            assert exported[0] >= 3  # its header, record batches, its manifest
        replaced = _wait_replaced(stack, service, index, pid)
        timings.append(
            f"{replica['name']}: NOT_SERVING {not_serving - signalled:.2f}s, out of Envoy "
            f"{out_of_rotation - signalled:.2f}s, exited {exited - signalled:.2f}s, replaced "
            f"and healthy {time.monotonic() - signalled:.2f}s (pid {pid} -> {replaced['pid']})"
        )

    # No retries anywhere in the client: every failure would show.
    with Load(stack, work, contest.model_ids, RetryPolicy(max_attempts=1)) as load:
        load.wait_for_progress(50)
        for index in (0, 1):  # one replica of each service at a time
            with ThreadPoolExecutor(2) as pool:
                for done in [pool.submit(roll, s, index) for s in SERVICE_NAMES]:
                    done.result()
            load.wait_for_progress(50)
    print("rolling restart under load:\n  " + "\n  ".join(timings))
    print(f"reads {dict(load.reads)}, uploads+submits {load.writes}")
    assert load.read_failures == []
    assert load.write_failures == []
    assert sum(load.reads.values()) > 200
    assert load.writes > 10
