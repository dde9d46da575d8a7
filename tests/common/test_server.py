"""A service process on its own: serves, reports its ports, stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.devkeys import ensure_dev_keys
from services.common.settings import Settings

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("service", ["query", "models"])
def test_serve_reports_ports_and_stops_on_sigterm(tmp_path: Path, service: str) -> None:
    ensure_dev_keys(Settings(state_dir=tmp_path))
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    env |= {
        "MLPLANE_STATE_DIR": str(tmp_path),
        f"MLPLANE_{service.upper()}_LISTEN": "127.0.0.1:0",
        f"MLPLANE_{service.upper()}_METRICS_PORT": "0",
        # Nothing listens there: a service must start (and answer 503) while its
        # database is down.
        "MLPLANE_QUERY_DATABASE_URL": f"postgresql://nobody:x@/none?host={tmp_path}/no-db",
        "MLPLANE_REGISTRY_DATABASE_URL": f"postgresql://nobody:x@/none?host={tmp_path}/no-db",
        # The drain is tests/common/test_server_drain.py's subject; not this test's.
        "MLPLANE_SHUTDOWN_DRAIN_SECONDS": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", service, "--ready-file", str(ready)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "service not ready in 30s"
            time.sleep(0.05)
        ports = json.loads(ready.read_text())
        assert ports["pid"] == proc.pid
        with grpc.insecure_channel(f"127.0.0.1:{ports['grpc_port']}") as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        metrics = httpx.get(f"http://127.0.0.1:{ports['metrics_port']}/metrics", timeout=5)
        # Every method initialised before any call, as go-grpc-prometheus does.
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Check",' in metrics.text
        assert "_created" not in metrics.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        assert '"message": "stopped"' in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
