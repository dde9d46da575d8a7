"""The metrics objects on their own: go-grpc-prometheus's names and values, the pools read
on their event loop from /metrics' thread, and the domain counters."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health
from mlplane.v1 import model_registry_pb2
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.common import metrics as metrics_module
from services.common.metrics import (
    GRPC_CODES,
    ApprovalMetrics,
    ExportMetrics,
    OutboxMetrics,
    PoolUsage,
    ServerMetrics,
    UploadMetrics,
    grpc_type,
)

# grpc-go codes/code_string.go: what go-grpc-prometheus writes into grpc_code.
GO_CODE_NAMES = {
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
}
REGISTRY = model_registry_pb2.DESCRIPTOR.services_by_name["ModelRegistry"].full_name


def test_codes_are_spelled_as_go_spells_them() -> None:
    assert set(GRPC_CODES) == {code.name for code in grpc.StatusCode}
    assert set(GRPC_CODES.values()) == GO_CODE_NAMES
    assert GRPC_CODES["CANCELLED"] == "Canceled"


def test_grpc_types() -> None:
    assert grpc_type(False, False) == "unary"
    assert grpc_type(True, False) == "client_stream"
    assert grpc_type(False, True) == "server_stream"
    assert grpc_type(True, True) == "bidi_stream"


def test_initialize_gives_every_method_every_code() -> None:
    metrics = ServerMetrics()
    metrics.initialize((REGISTRY, health.SERVICE_NAME))
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
    }

    def value(name: str, method: str, kind: str, **extra: str) -> float | None:
        service = health.SERVICE_NAME if method in ("Check", "Watch") else REGISTRY
        labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": method, **extra}
        return values.get((name, tuple(sorted(labels.items()))))

    for method, kind in (
        ("UploadModel", "client_stream"),
        ("GetModel", "unary"),
        ("DownloadModelVersion", "server_stream"),
        ("Watch", "server_stream"),
    ):
        assert value("grpc_server_started_total", method, kind) == 0
        assert value("grpc_server_msg_received_total", method, kind) == 0
        assert value("grpc_server_msg_sent_total", method, kind) == 0
        assert value("grpc_server_handling_seconds_count", method, kind) == 0
        assert value("grpc_server_handling_seconds_bucket", method, kind, le="0.2") == 0
        for code in GO_CODE_NAMES:
            assert value("grpc_server_handled_total", method, kind, grpc_code=code) == 0


def test_handled_counts_and_observes() -> None:
    metrics = ServerMetrics()
    method = metrics.method(f"/{REGISTRY}/GetModel", False, False)
    assert metrics.method(f"/{REGISTRY}/GetModel", False, False) is method
    method.handled("CANCELLED", 0.15)
    method.handled("NOT_A_CODE", 0.3)  # never happens; counted as Unknown, not lost

    def get(name: str, **labels: str) -> float | None:
        base = {"grpc_type": "unary", "grpc_service": REGISTRY, "grpc_method": "GetModel"}
        return metrics.registry.get_sample_value(name, base | labels)

    assert get("grpc_server_handled_total", grpc_code="Canceled") == 1
    assert get("grpc_server_handled_total", grpc_code="Unknown") == 1
    assert get("grpc_server_handling_seconds_bucket", le="0.2") == 1
    assert get("grpc_server_handling_seconds_bucket", le="0.5") == 2


def test_domain_metrics_exist_before_use_and_count() -> None:
    metrics = ServerMetrics()
    uploads, exports = UploadMetrics(metrics.registry), ExportMetrics(metrics.registry)
    approvals, outbox = ApprovalMetrics(metrics.registry), OutboxMetrics(metrics.registry)
    get = metrics.registry.get_sample_value
    assert get("mlplane_model_uploads_total", {"outcome": "ok"}) == 0
    assert get("mlplane_export_rows_total", {"encoding": "arrow", "outcome": "completed"}) == 0
    assert get("mlplane_approval_actions_total", {"action": "approve", "outcome": "ok"}) == 0
    assert get("mlplane_outbox_pending_events") == 0
    uploads.finished("ok", 1000)
    uploads.finished("MODEL_TOO_LARGE", 5000)
    exports.finished("csv", "completed", 86_400)
    approvals.recorded("reject", "SEPARATION_OF_DUTIES")
    outbox.measured(3, 42.5)
    assert get("mlplane_model_upload_bytes_total", {"outcome": "ok"}) == 1000
    assert get("mlplane_model_uploads_total", {"outcome": "MODEL_TOO_LARGE"}) == 1
    assert get("mlplane_export_rows_total", {"encoding": "csv", "outcome": "completed"}) == 86_400
    assert get("mlplane_exports_total", {"encoding": "csv", "outcome": "completed"}) == 1
    assert (
        get(
            "mlplane_approval_actions_total",
            {"action": "reject", "outcome": "SEPARATION_OF_DUTIES"},
        )
        == 1
    )
    assert get("mlplane_outbox_pending_events") == 3
    assert get("mlplane_outbox_oldest_pending_event_age_seconds") == 42.5
    outbox.measured(0, 0)
    assert get("mlplane_outbox_oldest_pending_event_age_seconds") == 0


def test_domain_metrics_work_without_a_registry() -> None:
    # What domain code gets when no server wires it (its own tests): counting still works.
    UploadMetrics().finished("ok", 1)
    ExportMetrics().finished("rows", "failed", 0)
    ApprovalMetrics().recorded("submit", "ok")
    OutboxMetrics().measured(1, 1.0)


class _Pool:
    def __init__(self) -> None:
        self.read_on: int | None = None

    def usage(self) -> PoolUsage:
        self.read_on = threading.get_ident()
        return PoolUsage(in_use=2, idle=3, max=10)


def _pool_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("mlplane_db_pool")
        for s in family.samples
    }


async def test_pools_are_read_on_their_loop_when_scraped() -> None:
    metrics = ServerMetrics()
    pool = _Pool()
    metrics.pools.watch("registry", pool.usage)
    server = metrics.serve(0)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        async with httpx.AsyncClient() as client:
            text = (await client.get(url, timeout=5)).text
    finally:
        server.shutdown()
    assert pool.read_on == threading.get_ident()  # this test's loop, not the HTTP thread
    assert _pool_samples(text) == {
        ("mlplane_db_pool_connections", (("pool", "registry"), ("state", "in_use"))): 2,
        ("mlplane_db_pool_connections", (("pool", "registry"), ("state", "idle"))): 3,
        ("mlplane_db_pool_max_connections", (("pool", "registry"),)): 10,
    }
    # Read on the loop itself (a test's registry), the pools are read directly.
    assert metrics.registry.get_sample_value(
        "mlplane_db_pool_max_connections", {"pool": "registry"}
    )


async def test_a_blocked_loop_leaves_the_pools_out_instead_of_hanging_the_scrape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "POOL_SAMPLE_TIMEOUT_SECONDS", 0.2)
    metrics = ServerMetrics()
    metrics.pools.watch("query", _Pool().usage)
    scraped: list[str] = []

    def scrape() -> None:
        scraped.append(generate_latest(metrics.registry).decode())

    thread = threading.Thread(target=scrape)
    thread.start()
    # Block the loop on purpose: the scrape must give up on the pools meanwhile.
    time.sleep(0.5)  # noqa: ASYNC251
    thread.join(5)
    await asyncio.sleep(0)  # the abandoned read runs now, harmlessly
    assert scraped, "the scrape hung"
    assert not _pool_samples(scraped[0])
    assert "process_resident_memory_bytes" in scraped[0]
