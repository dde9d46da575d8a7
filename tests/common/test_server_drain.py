"""A service leaving rotation: on SIGTERM its health turns NOT_SERVING at once (readiness
probes and the gateway's health checks see it first), it keeps answering calls for
MLPLANE_SHUTDOWN_DRAIN_SECONDS, then stops within the grace; SIGINT (how `mlplane up` stops
a whole stack, its gateway already gone) stops it without the drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.envoy_config import (
    HEALTH_CHECK_INTERVAL_SECONDS,
    HEALTH_CHECK_UNHEALTHY_THRESHOLD,
)
from services.common.devkeys import ensure_dev_keys
from services.common.settings import Settings

DRAIN = 2.0
SERVICE_NAME = "mlplane.v1.QueryService"
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_the_default_drain_outlasts_the_gateway_noticing() -> None:
    # Envoy takes a NOT_SERVING replica out after at most interval x threshold seconds.
    noticed = HEALTH_CHECK_INTERVAL_SECONDS * HEALTH_CHECK_UNHEALTHY_THRESHOLD
    assert Settings().shutdown_drain_seconds > noticed


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    ensure_dev_keys(Settings(state_dir=tmp_path))
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    env |= {
        "MLPLANE_STATE_DIR": str(tmp_path),
        "MLPLANE_QUERY_LISTEN": "127.0.0.1:0",
        "MLPLANE_QUERY_METRICS_PORT": "0",
        "MLPLANE_QUERY_DATABASE_URL": f"postgresql://nobody:x@/none?host={tmp_path}/no-db",
        "MLPLANE_SHUTDOWN_DRAIN_SECONDS": str(DRAIN),
        "MLPLANE_SHUTDOWN_GRACE_SECONDS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "query", "--ready-file", str(ready)],
        env=env,
        stderr=(tmp_path / "query.log").open("wb"),
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, (tmp_path / "query.log").read_text()
        assert time.monotonic() < deadline, "service not ready in 30s"
        time.sleep(0.05)
    return proc, int(json.loads(ready.read_text())["grpc_port"])


def _status(channel: grpc.Channel, service: str) -> int:
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=2
    )
    return int(response.status)


@pytest.mark.stack
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_sigterm_turns_readiness_off_and_drains_sigint_stops_at_once(
    tmp_path: Path, sig: signal.Signals
) -> None:
    proc, port = _start(tmp_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert _status(channel, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING
            signalled = time.monotonic()
            proc.send_signal(sig)
            if sig == signal.SIGTERM:
                # Readiness off first: both names the probes ask for, within a moment.
                deadline = signalled + 1.0
                while _status(channel, SERVICE_NAME) != NOT_SERVING:
                    assert time.monotonic() < deadline, "still SERVING after SIGTERM"
                    time.sleep(0.02)
                assert _status(channel, "") == NOT_SERVING
                # ... while calls are still answered, on the open channel and on a new one.
                time.sleep(DRAIN / 2)
                assert proc.poll() is None, "stopped before its drain was over"
                with grpc.insecure_channel(f"127.0.0.1:{port}") as fresh:
                    assert _status(fresh, SERVICE_NAME) == NOT_SERVING
        assert proc.wait(DRAIN + 10) == 0
        took = time.monotonic() - signalled
        log = (tmp_path / "query.log").read_text()
        assert '"message": "stopped"' in log
        if sig == signal.SIGTERM:
            assert DRAIN <= took < DRAIN + 5, took
        else:
            assert took < DRAIN, took
        print(f"{sig.name} to exit: {took:.2f}s (drain {DRAIN}s)")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
