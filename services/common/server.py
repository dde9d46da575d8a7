"""Run one gRPC service: interceptors, health, reflection, metrics, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.auth import TokenVerifier
from services.common.interceptors import (
    AuthInterceptor,
    ObservabilityInterceptor,
    ValidationInterceptor,
)
from services.common.metrics import ServerMetrics
from services.common.settings import Settings, split_hostport
from services.common.validation import RequestValidator

log = logging.getLogger("mlplane.server")

# Uploads arrive as <= 1 MiB chunks (Envoy splits HttpBody at 1 MiB); leave room.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
RECEIVE_WINDOW_BYTES = 16 * 1024 * 1024
# Request metadata (headers) accepted: more than the gateway's max_request_headers_kb
# (60 KiB, gateway/limits.py), so whatever the gateway forwards, plus the headers it adds,
# fits. gRPC's own default (8 KiB soft, 16 KiB hard) refused a 16 KB token the gateway had
# verified with RESOURCE_EXHAUSTED, a 429 that told the client to retry.
MAX_METADATA_BYTES = 96 * 1024


@dataclass
class ServiceSpec:
    """What differs between the two services."""

    name: str  # fully qualified, e.g. mlplane.v1.QueryService
    register: Callable[[aio.Server, ServerMetrics], Awaitable[Callable[[], Awaitable[None]]]]
    # register adds the servicer and returns an async cleanup (pools, clients); it puts
    # its domain metrics and database pools on the server's metrics
    # False for a process with no gRPC service of its own (the validation worker): it serves
    # health checks under `name`, and nothing in the descriptors.
    grpc_service: bool = True


@dataclass
class RunningServer:
    server: aio.Server
    health: health.aio.HealthServicer
    grpc_port: int
    metrics_port: int
    cleanup: Callable[[], Awaitable[None]]
    metrics_server: Any

    async def stop(
        self, grace: float | None, *, drain: float = 0.0, cut_short: asyncio.Event | None = None
    ) -> None:
        """Stop: health turns NOT_SERVING first (for "" and the service's name alike, so
        readiness probes and the gateway's health checks see it); then, for `drain` seconds,
        calls are still served, old and new, while load balancers take this process out of
        rotation (`cut_short` ends that early); then in-flight calls get `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            waiter = cut_short.wait() if cut_short is not None else asyncio.sleep(drain)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, drain)
        await self.server.stop(grace)
        self.metrics_server.shutdown()
        await self.cleanup()


async def start_server(
    settings: Settings, spec: ServiceSpec, *, listen: str, metrics_port: int
) -> RunningServer:
    metrics = ServerMetrics()
    server = aio.server(
        interceptors=[
            ObservabilityInterceptor(metrics),
            AuthInterceptor(TokenVerifier(settings)),
            ValidationInterceptor(RequestValidator()),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Metadata: more than the gateway forwards (its max_request_headers_kb, plus the
            # headers it adds), so every oversized header or token is refused at the gateway
            # with a reason, never here with RESOURCE_EXHAUSTED (a 429 to a REST caller).
            # Soft and hard limit alike: between the two gRPC refuses at random.
            ("grpc.max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
            ("grpc.so_reuseport", 0),
            # A fixed HTTP/2 receive window per stream instead of BDP probing, which
            # grows it as far as it likes: an upload arriving faster than the store
            # takes it then sits in gRPC's buffers (RSS growth swung 20-160 MB for
            # the same 1 GiB upload). 16 MiB keeps loopback uploads at full speed.
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", RECEIVE_WINDOW_BYTES),
        ],
    )
    cleanup = await spec.register(server, metrics)
    served = ((spec.name,) if spec.grpc_service else ()) + (
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    )
    metrics.initialize(served)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(served, server)
    host, port = split_hostport(listen)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {listen}")
    await server.start()
    metrics_server = metrics.serve(metrics_port, settings.metrics_address)
    for name in ("", spec.name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(
        server=server,
        health=health_servicer,
        grpc_port=bound,
        metrics_port=int(metrics_server.server_port),
        cleanup=cleanup,
        metrics_server=metrics_server,
    )


async def run_until_signalled(
    settings: Settings,
    spec: ServiceSpec,
    *,
    listen: str,
    metrics_port: int,
    ready_file: Path | None,
) -> None:
    running = await start_server(settings, spec, listen=listen, metrics_port=metrics_port)
    # Everything allocated while starting (modules, descriptors, pools) lives as
    # long as the process: keep it out of the collector's way, and collect the
    # young generation less often, so a full collection does not land in the
    # middle of a request (it showed up as the small-query latency tail).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    log.info(
        "serving",
        extra={"grpc_port": running.grpc_port, "metrics_port": running.metrics_port},
    )
    if ready_file is not None:
        _write_atomic(
            ready_file,
            {
                "pid": os.getpid(),
                "grpc_port": running.grpc_port,
                "metrics_port": running.metrics_port,
            },
        )
    # SIGTERM (Kubernetes, a rolling restart): drain, then stop. SIGINT (`mlplane up` stopping
    # the whole stack, after its gateway): no one routes here any more, stop at once. A second
    # signal during the drain cuts it short.
    stop = asyncio.Event()
    drained = asyncio.Event()
    signals: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(sig: int) -> None:
        signals.append(sig)
        if stop.is_set() or sig == signal.SIGINT:
            drained.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await stop.wait()
    drain = 0.0 if drained.is_set() else settings.shutdown_drain_seconds
    log.info(
        "stopping",
        extra={
            "signal": signal.Signals(signals[0]).name,
            "drain_seconds": drain,
            "grace_seconds": settings.shutdown_grace_seconds,
        },
    )
    await running.stop(settings.shutdown_grace_seconds, drain=drain, cut_short=drained)
    log.info("stopped")


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


__all__ = ["RunningServer", "ServiceSpec", "grpc", "run_until_signalled", "start_server"]
