"""Prometheus metrics for one gRPC server, served on a loopback side port."""

from __future__ import annotations

from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Export and upload streams legitimately take minutes; unary calls take ms.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.handled = Counter(
            "mlplane_grpc_server_handled",
            "RPCs completed, by method and gRPC status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlplane_grpc_server_handling_seconds",
            "RPC latency from first byte in to status out.",
            ["grpc_service", "grpc_method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mlplane_grpc_server_in_flight",
            "RPCs currently being handled.",
            ["grpc_service", "grpc_method"],
            registry=self.registry,
        )

    def observe(self, full_method: str, code: str, seconds: float) -> None:
        service, method = split_method(full_method)
        self.handled.labels(service, method, code).inc()
        self.latency.labels(service, method).observe(seconds)

    def serve(self, port: int) -> WSGIServer:
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        return server


def split_method(full_method: str) -> tuple[str, str]:
    _, _, rest = full_method.partition("/")
    service, _, method = rest.partition("/")
    return service or "unknown", method or "unknown"
