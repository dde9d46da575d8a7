"""`mlplane up`: the whole stack in the foreground, from one command.

Kept whole (over 400 lines): the start order, how each child is started again after a crash
(the backoff itself is supervisor.py's) and the stop order are one sequence; split, the
reverse order on stop would live apart from the start.

Order: state folder → dev keys → PostgreSQL (embedded unless a DSN is given)
→ migrations and roles → demo plant (loaded, or brought up to now) → QueryService
and ModelRegistry → Envoy → the record of the running stack (so `mlplane token`
finds it from any folder) → the demo plant keeper (appends each new minute).
Ctrl-C or SIGTERM stops them in reverse order; each child also carries
PDEATHSIG so even a killed `mlplane up` leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.envoy_config import render_envoy_config, write_envoy_config
from gateway.envoy_process import EnvoyProcess
from services.common.devkeys import ensure_dev_keys
from services.common.pagination import ensure_page_token_key
from services.common.settings import Settings, split_hostport
from services.db.setup import QUERY_ROLE, REGISTRY_ROLE, RoleCredentials, role_dsn, setup_database
from services.demo.live import PlantKeeper, Prepared, prepare_demo_plant
from services.stack.postgres import EmbeddedPostgres
from services.stack.processes import spawn, stop_process, tail, wait_for_file
from services.stack.registry import forget_stack, record_stack
from services.stack.seaweedfs import SeaweedFS, service_env, start_embedded, wants_embedded
from services.stack.supervisor import Child, Supervisor

log = logging.getLogger("mlplane.up")

DESCRIPTOR = Path(__file__).resolve().parents[2] / "generated" / "mlplane.pb"
SERVICES = ("query", "models")
# One validation worker beside the services (not behind the gateway; any number may share
# the queue, as on Kubernetes, but one is what a laptop needs).
WORKER = "validation"


def replica_name(service: str, index: int) -> str:
    """`query`, `query-2`, …: the first replica keeps the service's own name (its log, ready
    file, PID key and stack.json ports are those of a one-replica stack)."""
    return service if index == 1 else f"{service}-{index}"


def service_of(replica: str) -> str:
    return replica.split("-", 1)[0]


class StackError(RuntimeError):
    pass


@dataclass
class Stack:
    settings: Settings
    postgres: EmbeddedPostgres | None = None
    # Every service process by replica name (`query`, `query-2`, …, `models`, …).
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    envoy: EnvoyProcess | None = None
    keeper: PlantKeeper | None = None
    seaweedfs: SeaweedFS | None = None  # `--store s3` without an endpoint
    info: dict[str, Any] = field(default_factory=dict)
    # What a restarted child needs to come back as it was: the services' environment and
    # every port chosen at the first start (Envoy's clusters point at the services' ports,
    # clients at the gateway's).
    service_env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.settings.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.settings.state_dir / "logs"

    def start(self) -> None:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        s.stack_file.unlink(missing_ok=True)
        if s.dev_issuer_enabled:
            ensure_dev_keys(s)
        admin_dsn = self._start_database()
        # Role DSNs given for the services carry the passwords their roles must have.
        creds = RoleCredentials.for_setup(
            s.state_dir / "db-roles.json",
            query_dsn=s.query_database_url,
            registry_dsn=s.registry_database_url,
        )
        asyncio.run(setup_database(admin_dsn, creds))
        if s.demo_plant:
            prepared = asyncio.run(
                prepare_demo_plant(admin_dsn, days=s.demo_plant_days, seed=s.demo_plant_seed)
            )
            for line in describe_prepared(prepared, s):
                print(line, flush=True)
        ensure_page_token_key(s)
        s.object_store_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # glibc gives each thread (asyncio.to_thread workers) its own malloc arena;
        # two arenas keep a streaming upload's resident memory flat. And glibc
        # raises its mmap threshold to the largest block freed so far (up to
        # 32 MiB): after one 8 MiB S3 part, parts come from the heap, fragment it
        # and stay resident. A fixed threshold keeps the parts mmapped, returned
        # to the kernel as soon as they are sent; the 1 MiB blocks stay on the
        # heap and reuse each other's space.
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(4 * 1024 * 1024))
        env["MLPLANE_STATE_DIR"] = str(s.state_dir.resolve())
        env["MLPLANE_QUERY_DATABASE_URL"] = s.query_database_url or role_dsn(
            admin_dsn, QUERY_ROLE, creds.query_password
        )
        env["MLPLANE_REGISTRY_DATABASE_URL"] = s.registry_database_url or role_dsn(
            admin_dsn, REGISTRY_ROLE, creds.registry_password
        )
        if wants_embedded(s.store, s.s3_endpoint_url):
            self.seaweedfs, s3_env = start_embedded(s.state_dir, self.log_dir, s.s3_bucket)
            env = service_env(env, s3_env)
            print(f"S3 store: embedded SeaweedFS at {self.seaweedfs.endpoint_url}", flush=True)
        self.service_env = env
        # Every replica spawned at once, then each awaited: they import and connect in parallel.
        spawned = {
            replica_name(service, index): self._spawn_service(
                replica_name(service, index), self._replica_env(service, index, env)
            )
            for service in SERVICES
            for index in range(1, s.replicas + 1)
        }
        if s.validation_worker:
            spawned[WORKER] = self._spawn_service(WORKER, env)
        self.ports = {name: self._await_service(name, ready) for name, ready in spawned.items()}
        self._start_gateway(self.ports)
        self._record()
        if s.demo_plant:
            self.keeper = PlantKeeper(admin_dsn, report=_warn)
            self.keeper.start()

    def _replica_env(self, service: str, index: int, env: dict[str, str]) -> dict[str, str]:
        """The first replica listens where configured; the others on free ports (recorded in
        stack.json), on the same host."""
        if index == 1:
            return env
        host, _ = split_hostport(getattr(self.settings, f"{service}_listen"))
        return {
            **env,
            f"MLPLANE_{service.upper()}_LISTEN": f"{host}:0",
            f"MLPLANE_{service.upper()}_METRICS_PORT": "0",
        }

    def replicas(self, service: str) -> list[str]:
        """The service's replica names, in order."""
        return [name for name in self.services if service_of(name) == service]

    def _start_database(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        self.postgres = EmbeddedPostgres(self.settings.state_dir)
        self.postgres.ensure_initialized()
        self.postgres.start()
        return self.postgres.dsn()

    def _record(self) -> None:
        try:
            record_stack(self.settings.state_dir, self.info)
        except OSError as exc:  # only convenience is lost: commands run here still work
            _warn(f"could not record the stack for commands run elsewhere ({exc})")

    def supervised(self) -> list[Child]:
        """Every child `mlplane up` keeps alive, in the order a restart makes sense."""
        children: list[Child] = []
        if self.postgres is not None:
            children.append(Child("postgres", self.postgres.running, self.restart_postgres))
        if self.seaweedfs is not None:  # same data, keys and ports: the services' endpoint
            children.append(Child("seaweedfs", self.seaweedfs.running, self.restart_seaweedfs))
        for name in self.services:  # each replica on its own: one crash restarts one process
            children.append(
                Child(
                    f"{name} service",
                    partial(self._service_running, name),
                    partial(self.restart_service, name),
                )
            )
        if self.envoy is not None:
            children.append(Child("envoy", self._envoy_running, self.restart_envoy))
        return children

    def _service_running(self, name: str) -> bool:
        return self.services[name].poll() is None

    def _envoy_running(self) -> bool:
        return self.envoy is not None and self.envoy.running()

    def restart_postgres(self) -> None:
        assert self.postgres is not None
        self.postgres.stop()  # reaps the dead postmaster
        self.postgres.start()
        self._refresh_pids()

    def restart_seaweedfs(self) -> None:
        assert self.seaweedfs is not None
        self.seaweedfs.restart()
        self._refresh_pids()

    def restart_service(self, name: str) -> None:
        """The replica again, on the ports it had (Envoy's cluster points there)."""
        stop_process(self.services[name], timeout=5)
        service = service_of(name)
        host, _ = split_hostport(getattr(self.settings, f"{service}_listen"))
        env = dict(self.service_env)
        env[f"MLPLANE_{service.upper()}_LISTEN"] = f"{host}:{self.ports[name]['grpc_port']}"
        env[f"MLPLANE_{service.upper()}_METRICS_PORT"] = str(self.ports[name]["metrics_port"])
        self._await_service(name, self._spawn_service(name, env))
        self._refresh_pids()

    def restart_envoy(self) -> None:
        """Envoy again, on the listener and admin ports it had."""
        if self.envoy is not None:
            self.envoy.stop()
        self._start_gateway(
            self.ports,
            listen_port=int(self.info["gateway_port"]),
            admin_port=int(str(self.info["admin_url"]).rsplit(":", 1)[1]),
        )
        self._record()

    def _refresh_pids(self) -> None:
        self.info["pids"] = self.pids()
        self._write_stack_file()
        self._record()

    def _write_stack_file(self) -> None:
        tmp = self.settings.stack_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.info, indent=2))
        tmp.replace(self.settings.stack_file)

    def _spawn_service(self, name: str, env: dict[str, str]) -> Path:
        """Start replica `name` (`query`, `models-2`, …); returns the file it writes when ready."""
        ready = self.run_dir / f"{name}.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "services.cli", "serve", service_of(name)]
        self.services[name] = spawn(
            [*argv, "--ready-file", str(ready)], log_path=self.log_dir / f"{name}.log", env=env
        )
        return ready

    def _await_service(self, name: str, ready: Path) -> dict[str, int]:
        log_path = self.log_dir / f"{name}.log"
        try:
            text = wait_for_file(ready, self.services[name], timeout=60, what=f"{name} service")
        except (RuntimeError, TimeoutError) as exc:
            raise StackError(f"{exc}\n--- {log_path} ---\n{tail(log_path)}") from exc
        data = json.loads(text)
        return {"grpc_port": int(data["grpc_port"]), "metrics_port": int(data["metrics_port"])}

    def _start_gateway(
        self,
        ports: dict[str, dict[str, int]],
        *,
        listen_port: int | None = None,
        admin_port: int | None = None,
    ) -> None:
        s = self.settings
        query_host, _ = split_hostport(s.query_listen)
        models_host, _ = split_hostport(s.models_listen)
        gateway_host, configured_port = split_hostport(s.gateway_listen)
        # One endpoint per replica, in the cluster the chart's render makes of a headless
        # Service's pods: same balancing, same health checks (gateway/clusters.py).
        config = render_envoy_config(
            s,
            query_address=[(query_host, ports[r]["grpc_port"]) for r in self.replicas("query")],
            models_address=[(models_host, ports[r]["grpc_port"]) for r in self.replicas("models")],
            descriptor_path=DESCRIPTOR,
            listen_address=(gateway_host, configured_port if listen_port is None else listen_port),
            admin_port=s.gateway_admin_port if admin_port is None else admin_port,
            stats_port=s.gateway_stats_port,
        )
        config_path = self.run_dir / "envoy.json"
        write_envoy_config(config_path, config)
        self.envoy = EnvoyProcess(config_path, log_path=self.log_dir / "envoy.log")
        self.envoy.start()
        gateway_port = self.envoy.listener_port()
        self.info = {
            "gateway_url": f"http://{gateway_host}:{gateway_port}",
            "gateway_port": gateway_port,
            "admin_url": self.envoy.admin_url,
            "query_port": ports["query"]["grpc_port"],
            "models_port": ports["models"]["grpc_port"],
            "query_metrics_port": ports["query"]["metrics_port"],
            "models_metrics_port": ports["models"]["metrics_port"],
            **(
                {
                    "validation_port": ports[WORKER]["grpc_port"],
                    "validation_metrics_port": ports[WORKER]["metrics_port"],
                }
                if WORKER in ports
                else {}
            ),
            # Every replica's ports, the first one's included (its keys above stay as they
            # were for one-replica stacks); its PID is `pids[<name>]`.
            "replicas": {
                service: [{"name": r, **ports[r]} for r in self.replicas(service)]
                for service in SERVICES
            },
            "pids": self.pids(),
        }
        self._write_stack_file()

    def pids(self) -> dict[str, int]:
        pids = {name: proc.pid for name, proc in self.services.items()}
        if self.postgres is not None and self.postgres.pid is not None:
            pids["postgres"] = self.postgres.pid
        if self.envoy is not None and self.envoy.pid is not None:
            pids["envoy"] = self.envoy.pid
        if self.seaweedfs is not None and self.seaweedfs.pid is not None:
            pids["seaweedfs"] = self.seaweedfs.pid
        return pids

    def stop(self) -> None:
        # Reverse order: forget the record, stop appending, stop taking requests, drain
        # services, then the database.
        forget_stack(self.settings.state_dir)
        if self.keeper is not None:
            self.keeper.stop()
        if self.envoy is not None:
            self.envoy.stop()
        # SIGINT, not SIGTERM: the gateway is gone, so there is nobody to drain from (see
        # services/common/server.py); in-flight calls still get the grace period.
        for proc in self.services.values():
            with_signal(proc, signal.SIGINT)
        for proc in self.services.values():
            stop_process(proc, sig=signal.SIGINT, timeout=self.settings.shutdown_grace_seconds + 5)
        if self.seaweedfs is not None:
            self.seaweedfs.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.settings.stack_file.unlink(missing_ok=True)


def _warn(message: str) -> None:
    print(f"mlplane up: {message}", file=sys.stderr, flush=True)


def describe_prepared(prepared: Prepared, settings: Settings) -> list[str]:
    """What `mlplane up` did to the demo plant, for its terminal."""
    loaded, extended = prepared.loaded, prepared.extended
    if loaded is not None and loaded.anchor is not None:
        why = {
            "empty": "loaded the demo plant",
            "no record": "the demo plant had no anchor on record (an older mlplane loaded it); "
            "loaded it again",
            "domain ended": "the demo plant's anchor was over a year old; loaded it again",
        }[prepared.reason]
        return [
            f"{why}: {loaded.rows:,} rows for {loaded.assets} assets in {loaded.seconds:.1f}s "
            f"(seed {settings.demo_plant_seed}, anchored {loaded.anchor:%Y-%m-%d %H:%M} UTC, "
            f"from {loaded.start:%Y-%m-%d %H:%M} to now)"
        ]
    if extended is None:
        return []
    plant = extended.plant
    lines = [
        f"demo plant (seed {plant.seed}, anchored {plant.anchor:%Y-%m-%d %H:%M} UTC): "
        f"appended {extended.rows:,} rows up to now"
    ]
    if (plant.seed, plant.days) != (settings.demo_plant_seed, settings.demo_plant_days):
        lines.append(
            f"  (loaded with seed {plant.seed} and {plant.days:g} days; MLPLANE_DEMO_PLANT_SEED "
            "and MLPLANE_DEMO_PLANT_DAYS apply to the next `mlplane demo load`)"
        )
    return lines


def with_signal(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def banner(info: dict[str, Any], settings: Settings) -> str:
    url = info["gateway_url"]
    token_hint = (
        "export TOKEN=$(.venv/bin/mlplane token --role data_scientist"
        " --subject alice --tenant demo)"
        if settings.dev_issuer_enabled
        else f"get a token from your issuer ({settings.jwt_issuer})"
    )
    if settings.web_dist_dir is None:
        web = ["  web app:  not built (`make up` builds web/ when Node is there: `make web`)"]
    elif settings.dev_issuer_enabled:
        web = [
            f"  web app:  {url}/  sign in by opening the URL that prints:",
            "            .venv/bin/mlplane token --role data_scientist --subject alice --url",
        ]
    else:
        web = [
            f"  web app:  {url}/  (signs in with {settings.oidc_authority or settings.jwt_issuer})"
        ]
    return "\n".join(
        [
            "",
            f"mlplane is up: gateway {url}  (REST and gRPC)",
            *web,
            f"  health:   curl {url}/healthz",
            f"  token:    {token_hint}",
            f'  REST:     curl -H "Authorization: Bearer $TOKEN" {url}/api/v1/query/assets',
            f"  gRPC:     grpcurl -plaintext -protoset generated/mlplane.pb "
            f'-H "authorization: Bearer $TOKEN" {url.removeprefix("http://")} '
            "mlplane.v1.ModelRegistry/ListModels",
            *_services_lines(info),
            f"  state:    {settings.state_dir.resolve()}  (logs in logs/)",
            *(
                ["  data:     the demo plant, tenant demo, kept up to now (a sample a minute)"]
                if settings.demo_plant
                else []
            ),
            "Ctrl-C stops everything.",
            "",
        ]
    )


def _services_lines(info: dict[str, Any]) -> list[str]:
    replicas = info.get("replicas", {})
    if all(len(replicas.get(service, [])) <= 1 for service in SERVICES):
        return [
            f"  services: query :{info['query_port']}  models :{info['models_port']}  "
            f"metrics :{info['query_metrics_port']} / :{info['models_metrics_port']}  "
            f"envoy admin {info['admin_url']}",
            *_worker_line(info),
        ]
    lines: list[str] = []
    for service in SERVICES:
        ports = " ".join(f":{r['grpc_port']}" for r in replicas[service])
        metrics = " ".join(f":{r['metrics_port']}" for r in replicas[service])
        label = "services:" if not lines else ""
        lines.append(f"  {label:<9} {service} x{len(replicas[service])} {ports}  metrics {metrics}")
    lines.append(f"  envoy:    admin {info['admin_url']}")
    return lines + _worker_line(info)


def _worker_line(info: dict[str, Any]) -> list[str]:
    if "validation_port" not in info:
        return [
            "  validation: no worker (MLPLANE_VALIDATION_WORKER=false): nothing can be approved"
        ]
    return [
        f"  validation: worker (health :{info['validation_port']}, "
        f"metrics :{info['validation_metrics_port']})"
    ]


def run_up(settings: Settings) -> int:
    stop_requested: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = Stack(settings)
    started = time.monotonic()
    try:
        try:
            stack.start()
        except Exception as exc:
            print(f"mlplane up failed: {exc}", file=sys.stderr)
            return 1
        print(banner(stack.info, settings), flush=True)
        print(f"ready in {time.monotonic() - started:.1f}s", flush=True)
        # A crashed child is started again with backoff (services/stack/supervisor.py).
        supervisor = Supervisor(stack.supervised())
        while not stop_requested:
            for event in supervisor.tick():
                _warn(f"{event.message} (logs in {stack.log_dir})")
            time.sleep(0.2)
        print("stopping…", flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
