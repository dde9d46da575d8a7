"""The chart's workloads run as their pods would run them (command and environment from
`helm template`, the Secrets' keys filled in, the emptyDirs as folders) against a real PostgreSQL
(the embedded one):

* the migration Job, install then upgrade: the schema reaches head, the two roles log in with
  the passwords of the DSNs in the Secret (the services use those), no password reaches its log;
* then QueryService, ModelRegistry and the validation worker with the chart's settings: each
  serves, its health service says SERVING for the names the probes ask for, /metrics answers,
  SIGTERM ends it cleanly (the worker without a drain, as its container sets it).

What differs from the pods: loopback addresses and free ports, and an S3 endpoint on loopback
(the processes do not call S3 to start, and the worker's queue is empty here).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.db.setup import QUERY_ROLE, REGISTRY_ROLE, role_dsn
from services.stack.postgres import EmbeddedPostgres
from tests.conftest import private_tmp
from tests.deploy.chart import (
    RELEASE,
    ROOT,
    by_kind,
    config_env,
    one,
    pod_spec,
    render_set,
    values_of,
)

pytestmark = pytest.mark.stack


@dataclass
class Database:
    server: EmbeddedPostgres
    secret: dict[str, str]  # the database Secret's keys
    passwords: tuple[str, ...]


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    root = private_tmp("mlplane-workloads-")
    server = EmbeddedPostgres(root / "state")
    try:
        server.ensure_initialized()
        server.start()
        admin = server.dsn()
        query_password = secrets.token_urlsafe(24)
        registry_password = secrets.token_urlsafe(24)
        yield Database(
            server=server,
            secret={
                "adminUrl": admin,
                "queryUrl": role_dsn(admin, QUERY_ROLE, query_password),
                "registryUrl": role_dsn(admin, REGISTRY_ROLE, registry_password),
            },
            passwords=(query_password, registry_password, server.superuser_password),
        )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _secret_value(ref: dict[str, str], secrets_by_name: dict[str, dict[str, str]]) -> str:
    return secrets_by_name[ref["name"]][ref["key"]]


def _container_env(
    container: dict[str, Any], config: dict[str, str], secrets_by_name: dict[str, dict[str, str]]
) -> dict[str, str]:
    """A container's environment as Kubernetes would give it: the ConfigMap, then env."""
    env = {"PATH": os.environ.get("PATH", "")}
    if container.get("envFrom"):
        env.update(config)
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            env[variable["name"]] = _secret_value(
                variable["valueFrom"]["secretKeyRef"], secrets_by_name
            )
    return env


def _secrets(database: Database) -> dict[str, dict[str, str]]:
    values = values_of("default")
    return {
        values["database"]["existingSecret"]: database.secret,
        values["pageTokens"]["existingSecret"]: {"secret": secrets.token_urlsafe(32)},
    }


def _job_container() -> dict[str, Any]:
    (job,) = by_kind(render_set("default"), "Job")
    (container,) = pod_spec(job)["containers"]
    return container


def _run_job(
    container: dict[str, Any], secrets_by_name: dict[str, dict[str, str]], state: Path
) -> subprocess.CompletedProcess[str]:
    env = _container_env(container, {}, secrets_by_name)
    # The Job has no state folder (only /tmp, an emptyDir): a state folder here shows that
    # nothing is written to one.
    assert "MLPLANE_STATE_DIR" not in env
    env["MLPLANE_STATE_DIR"] = str(state)
    env["HOME"] = env["TMPDIR"] = str(state.parent)
    command = container["command"]
    assert command[0] == "mlplane"
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *command[1:], *container.get("args", [])],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


async def _can_read_as_roles(query_dsn: str, registry_dsn: str) -> None:
    query = await asyncpg.connect(query_dsn)
    try:
        assert await query.fetchval("SELECT count(*) FROM assets") >= 0
        assert await query.fetchval("SHOW default_transaction_read_only") == "on"
    finally:
        await query.close()
    registry = await asyncpg.connect(registry_dsn)
    try:
        assert await registry.fetchval("SELECT count(*) FROM model_versions") >= 0
    finally:
        await registry.close()


def test_the_migration_job_migrates_and_keeps_the_secrets_passwords(
    database: Database, tmp_path: Path
) -> None:
    container = _job_container()
    state = tmp_path / "state"
    secrets_by_name = _secrets(database)
    database_secret = secrets_by_name["mlplane-database"]
    rotated = secrets.token_urlsafe(24)
    for attempt in ("install", "upgrade", "upgrade with a rotated password"):
        if attempt.endswith("rotated password"):
            # The operator changes the query DSN's password in the Secret and upgrades.
            database_secret = secrets_by_name["mlplane-database"] = {
                **database_secret,
                "queryUrl": role_dsn(database_secret["adminUrl"], QUERY_ROLE, rotated),
            }
        result = _run_job(container, secrets_by_name, state)
        assert result.returncode == 0, (attempt, result.stderr[-3000:])
        log = result.stdout + result.stderr
        assert "schema at head" in result.stdout
        for password in (*database.passwords, rotated):
            assert password not in log, attempt
        # The role DSNs it used, masked.
        assert "MLPLANE_QUERY_DATABASE_URL=postgresql://mlplane_query:***@" in result.stdout
        assert "MLPLANE_REGISTRY_DATABASE_URL=postgresql://mlplane_registry:***@" in result.stdout
        assert not state.exists()
        asyncio.run(_can_read_as_roles(database_secret["queryUrl"], database_secret["registryUrl"]))
    # The old password no longer logs in.
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(_can_read_as_roles(database.secret["queryUrl"], database.secret["registryUrl"]))


def test_the_migration_job_refuses_a_dsn_for_another_role(tmp_path: Path) -> None:
    secret = {
        "adminUrl": "postgresql://postgres:x@db.invalid/mlplane",
        "queryUrl": "postgresql://someone:pw-that-is-long-enough@db.invalid/mlplane",
        "registryUrl": "postgresql://mlplane_registry:pw-that-is-long-enough@db.invalid/mlplane",
    }
    result = _run_job(_job_container(), {"mlplane-database": secret}, tmp_path / "state")
    assert result.returncode != 0
    assert "MLPLANE_QUERY_DATABASE_URL must connect as mlplane_query" in result.stderr
    assert "pw-that-is-long-enough" not in result.stdout + result.stderr


def _health(port: int, service: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5
        )
    status: int = response.status
    return status


def test_the_services_and_the_worker_serve_with_the_charts_settings(
    database: Database, tmp_path: Path
) -> None:
    # The schema first, as the hook does before any pod starts.
    migrated = _run_job(_job_container(), _secrets(database), tmp_path / "job-state")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    manifests = render_set("default")
    config = config_env(manifests)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for part in ("query", "models", "validation"):
            (container,) = pod_spec(one(manifests, "Deployment", f"{RELEASE}-{part}"))["containers"]
            env = _container_env(container, config, _secrets(database))
            # The pod's emptyDirs and the JWKS Secret's mount, as folders here.
            state = tmp_path / part / "state"
            (state / "keys").mkdir(parents=True)
            (state / "keys" / "jwks.json").write_text('{"keys": []}')
            env["MLPLANE_STATE_DIR"] = str(state)
            env["MLPLANE_UPLOAD_SPOOL_DIR"] = str(state / "spool")
            env["HOME"] = env["TMPDIR"] = str(tmp_path / part)
            # Loopback and free ports here; 0.0.0.0 and fixed ports in the pod.
            assert env[f"MLPLANE_{part.upper()}_LISTEN"].startswith("0.0.0.0:")
            assert env["MLPLANE_METRICS_ADDRESS"] == "0.0.0.0"  # noqa: S104 - the pod's
            env[f"MLPLANE_{part.upper()}_LISTEN"] = "127.0.0.1:0"
            env[f"MLPLANE_{part.upper()}_METRICS_PORT"] = "0"
            env["MLPLANE_METRICS_ADDRESS"] = "127.0.0.1"
            env["MLPLANE_S3_ENDPOINT_URL"] = "http://127.0.0.1:9"  # never called here
            ready = tmp_path / part / "ready.json"
            assert container["command"][0] == "mlplane"
            processes[part] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.cli",
                    *container["command"][1:],
                    "--ready-file",
                    str(ready),
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=(tmp_path / f"{part}.log").open("wb"),
            )
        for part, process in processes.items():
            ready = tmp_path / part / "ready.json"
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert process.poll() is None, (tmp_path / f"{part}.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"{part} did not start"
                time.sleep(0.05)
            ports = json.loads(ready.read_text())
            (container,) = pod_spec(one(manifests, "Deployment", f"{RELEASE}-{part}"))["containers"]
            probes = {
                name: container[name]["grpc"].get("service", "")
                for name in ("startupProbe", "readinessProbe", "livenessProbe")
            }
            for service in probes.values():
                assert (
                    _health(ports["grpc_port"], service) == health_pb2.HealthCheckResponse.SERVING
                )
            with urllib.request.urlopen(
                f"http://127.0.0.1:{ports['metrics_port']}/metrics", timeout=5
            ) as response:
                assert b"grpc_server" in response.read()
        # All at once: each service drains (MLPLANE_SHUTDOWN_DRAIN_SECONDS, as the chart sets
        # it) before it stops; the worker, which nothing routes to, stops at once.
        stopping = time.monotonic()
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        worker = processes["validation"]
        assert worker.wait(timeout=30) == 0, (tmp_path / "validation.log").read_text()[-3000:]
        assert time.monotonic() - stopping < float(config["MLPLANE_SHUTDOWN_DRAIN_SECONDS"])
        for part, process in processes.items():
            assert process.wait(timeout=30) == 0, (tmp_path / f"{part}.log").read_text()[-3000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
