"""Prometheus metrics of one service process, served on a side port (docs/metrics.md).

The gRPC server metrics carry the names, labels and label values of go-grpc-prometheus
(grpc-ecosystem), so the dashboards and alerts written for it work unchanged: `grpc_code` is
the status as Go spells it (`Canceled`, `InvalidArgument`), `grpc_type` the streaming kind.
Every method of the services a server hosts is initialised at start with every code, as
go-grpc-prometheus's `InitializeMetrics` does, so rates and ratios exist before traffic.

The domain metrics are small objects (`UploadMetrics`, `ExportMetrics`, …) that each
service's wiring creates on its server's registry and hands to its domain classes, as the
one settings object is handed around: no module-level registry. Built without a registry,
they count into a private one, so domain code runs and tests without any of this.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Export and upload streams legitimately take minutes; unary calls take ms. 0.2 s is a
# bucket bound because it is the seed's latency budget: a P95 above it is then exact.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# grpc.StatusCode name -> the name Go's codes.Code.String() gives (grpc-go codes/code_string.go),
# which go-grpc-prometheus puts in `grpc_code`.
GRPC_CODES: dict[str, str] = {
    "OK": "OK",
    "CANCELLED": "Canceled",
    "UNKNOWN": "Unknown",
    "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded",
    "NOT_FOUND": "NotFound",
    "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied",
    "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition",
    "ABORTED": "Aborted",
    "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented",
    "INTERNAL": "Internal",
    "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss",
    "UNAUTHENTICATED": "Unauthenticated",
}
assert set(GRPC_CODES) == {code.name for code in grpc.StatusCode}

_METHOD_LABELS = ("grpc_type", "grpc_service", "grpc_method")


def grpc_type(request_streaming: bool, response_streaming: bool) -> str:
    """go-grpc-prometheus's `grpc_type` of a method."""
    if request_streaming:
        return "bidi_stream" if response_streaming else "client_stream"
    return "server_stream" if response_streaming else "unary"


def split_method(full_method: str) -> tuple[str, str]:
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"


class MethodMetrics:
    """The series of one method, resolved once: a call only increments and observes."""

    __slots__ = ("_handled", "received", "seconds", "sent", "started")

    def __init__(self, metrics: ServerMetrics, labels: tuple[str, str, str]) -> None:
        self.started = metrics.started.labels(*labels)
        self.received = metrics.msg_received.labels(*labels)
        self.sent = metrics.msg_sent.labels(*labels)
        self.seconds = metrics.handling_seconds.labels(*labels)
        self._handled = {
            name: metrics.handled.labels(*labels, go_name) for name, go_name in GRPC_CODES.items()
        }

    def handled(self, code: str, seconds: float) -> None:
        """The call ended with `code` (a grpc.StatusCode name, e.g. "INVALID_ARGUMENT")."""
        self._handled.get(code, self._handled["UNKNOWN"]).inc()
        self.seconds.observe(seconds)


class ServerMetrics:
    """The registry of one server process and its gRPC server metrics."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            _METHOD_LABELS,
            registry=r,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*_METHOD_LABELS, "grpc_code"),
            registry=r,
        )
        self.msg_received = Counter(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            _METHOD_LABELS,
            registry=r,
        )
        self.msg_sent = Counter(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            _METHOD_LABELS,
            registry=r,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            _METHOD_LABELS,
            buckets=BUCKETS,
            registry=r,
        )
        self.pools = PoolCollector()
        r.register(self.pools)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._methods: dict[str, MethodMetrics] = {}
        self._lock = threading.Lock()

    def method(
        self, full_method: str, request_streaming: bool, response_streaming: bool
    ) -> MethodMetrics:
        found = self._methods.get(full_method)
        if found is None:
            with self._lock:
                found = self._methods.get(full_method)
                if found is None:
                    labels = (
                        grpc_type(request_streaming, response_streaming),
                        *split_method(full_method),
                    )
                    found = self._methods[full_method] = MethodMetrics(self, labels)
        return found

    def initialize(self, service_names: Iterable[str]) -> None:
        """Every method of these services (from the protobuf descriptors loaded in this
        process) with a zero for every series, as go-grpc-prometheus's InitializeMetrics."""
        pool = descriptor_pool.Default()
        for name in service_names:
            service = pool.FindServiceByName(name)
            for method in service.methods:
                self.method(
                    f"/{service.full_name}/{method.name}",
                    method.client_streaming,
                    method.server_streaming,
                )

    def serve(self, port: int, address: str = "127.0.0.1") -> WSGIServer:
        # No `*_created` series beside every counter and histogram (a process-wide switch
        # of prometheus_client): go-grpc-prometheus has none, and they double a scrape.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server


# --- database pools ------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolUsage:
    in_use: int  # connections handed out
    idle: int  # open connections waiting in the pool
    max: int  # the most the pool will open


# How long a scrape waits for the event loop to read the pools; a loop busy for longer
# than this gives a scrape without the pool gauges, never a stuck scrape.
POOL_SAMPLE_TIMEOUT_SECONDS = 1.0


class PoolCollector(Collector):
    """`mlplane_db_pool_*`, read at scrape time. The pools (asyncpg's, SQLAlchemy's async
    queue pool) belong to the event loop while /metrics is served from a thread, so the
    scrape asks the loop to read them and waits (at most POOL_SAMPLE_TIMEOUT_SECONDS)."""

    def __init__(self) -> None:
        self._pools: dict[str, Callable[[], PoolUsage]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, name: str, usage: Callable[[], PoolUsage]) -> None:
        """Report the pool `name`; call from the event loop that owns it."""
        self._loop = asyncio.get_running_loop()
        self._pools[name] = usage

    def describe(self) -> Iterable[Metric]:
        return self._families({})

    def collect(self) -> Iterable[Metric]:
        return self._families(self._sample())

    def _sample(self) -> dict[str, PoolUsage]:
        loop, pools = self._loop, dict(self._pools)
        if loop is None or not pools:
            return {}

        def read() -> dict[str, PoolUsage]:
            return {name: usage() for name, usage in pools.items()}

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        done: concurrent.futures.Future[dict[str, PoolUsage]] = concurrent.futures.Future()

        def on_loop() -> None:
            try:
                done.set_result(read())
            except Exception as error:
                done.set_exception(error)

        try:
            if running is loop:  # asked on the loop itself (a test reading its registry)
                return read()
            loop.call_soon_threadsafe(on_loop)
            return done.result(timeout=POOL_SAMPLE_TIMEOUT_SECONDS)
        except Exception:  # the loop is closed or busy, or a pool failed: leave them out
            return {}

    @staticmethod
    def _families(usage: dict[str, PoolUsage]) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "mlplane_db_pool_connections",
            "Connections of a database pool, by state (in_use: handed out; idle: open, "
            "waiting in the pool).",
            labels=["pool", "state"],
        )
        maximum = GaugeMetricFamily(
            "mlplane_db_pool_max_connections",
            "The most connections a database pool opens.",
            labels=["pool"],
        )
        for name, u in sorted(usage.items()):
            connections.add_metric([name, "in_use"], u.in_use)
            connections.add_metric([name, "idle"], u.idle)
            maximum.add_metric([name], u.max)
        yield connections
        yield maximum


# --- domain metrics ------------------------------------------------------------------------

OK = "ok"


class UploadMetrics:
    """Model uploads (ModelRegistry): how many ended how, and the file bytes they brought."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self._uploads = Counter(
            "mlplane_model_uploads",
            "Model uploads that ended, by outcome: ok, or the reason of the refusal "
            "(e.g. MODEL_TOO_LARGE, NOT_ONNX), cancelled, error.",
            ["outcome"],
            registry=r,
        )
        self._bytes = Counter(
            "mlplane_model_upload_bytes",
            "File bytes received by model uploads that ended, by outcome.",
            ["outcome"],
            registry=r,
        )
        self._uploads.labels(OK)
        self._bytes.labels(OK)

    def finished(self, outcome: str, received_bytes: int) -> None:
        self._uploads.labels(outcome).inc()
        self._bytes.labels(outcome).inc(received_bytes)


EXPORT_ENCODINGS = ("rows", "arrow", "csv")
EXPORT_OUTCOMES = ("completed", "failed", "cancelled")


class ExportMetrics:
    """History exports (QueryService) that streamed: how many ended how, and their rows."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self._exports = Counter(
            "mlplane_exports",
            "History exports that ended, by encoding (rows, arrow, csv) and outcome "
            "(completed, failed, cancelled).",
            ["encoding", "outcome"],
            registry=r,
        )
        self._rows = Counter(
            "mlplane_export_rows",
            "Rows sent by history exports, counted when the export ends, by encoding and outcome.",
            ["encoding", "outcome"],
            registry=r,
        )
        for encoding in EXPORT_ENCODINGS:
            for outcome in EXPORT_OUTCOMES:
                self._exports.labels(encoding, outcome)
                self._rows.labels(encoding, outcome)

    def finished(self, encoding: str, outcome: str, rows: int) -> None:
        self._exports.labels(encoding, outcome).inc()
        self._rows.labels(encoding, outcome).inc(rows)


APPROVAL_ACTIONS = ("submit", "approve", "reject", "archive")


class ApprovalMetrics:
    """The approval workflow (ModelRegistry): submissions, decisions, archivals."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self._actions = Counter(
            "mlplane_approval_actions",
            "Approval workflow actions (submit, approve, reject, archive) by outcome: ok, or "
            "the reason of the refusal (e.g. ALREADY_DECIDED, SEPARATION_OF_DUTIES).",
            ["action", "outcome"],
            registry=r,
        )
        for action in APPROVAL_ACTIONS:
            self._actions.labels(action, OK)

    def recorded(self, action: str, outcome: str) -> None:
        self._actions.labels(action, outcome).inc()


class OutboxMetrics:
    """The outbox of approval events, as the relay last measured it (ModelRegistry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self._pending = Gauge(
            "mlplane_outbox_pending_events",
            "Approval events not yet delivered to the webhooks (0 when no webhook is "
            "configured: nothing is waiting for delivery then).",
            registry=r,
        )
        self._oldest = Gauge(
            "mlplane_outbox_oldest_pending_event_age_seconds",
            "Age of the oldest approval event not yet delivered (0 when there is none).",
            registry=r,
        )

    def measured(self, pending: int, oldest_age_seconds: float) -> None:
        self._pending.set(pending)
        self._oldest.set(oldest_age_seconds if pending else 0.0)
