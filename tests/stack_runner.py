"""Start and stop a whole `mlplane up` stack for tests: real PostgreSQL, both
services, real Envoy, every port chosen by the kernel (port 0)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from services.common.settings import Settings
from services.stack.postgres import EmbeddedPostgres
from tests.tokens import Tokens

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
# What the web app's build is made from (the Makefile's WEB_SOURCES).
WEB_BUILD_INPUTS = (
    "src",
    "public",
    "index.html",
    "vite.config.ts",
    "tsconfig.json",
    "package.json",
)


def web_dist_is_fresh() -> bool:
    """`web/dist` exists and is newer than everything it is built from."""
    index = WEB / "dist" / "index.html"
    if not index.is_file():
        return False
    newest = 0.0
    for name in WEB_BUILD_INPUTS:
        path = WEB / name
        for file in path.rglob("*") if path.is_dir() else [path]:
            if file.is_file():
                newest = max(newest, file.stat().st_mtime)
    return index.stat().st_mtime >= newest


def private_tmp(prefix: str) -> Path:
    # Not pytest's tmp_path: a new pytest session resets /tmp/pytest-of-<user>
    # to 0700, which locks the unprivileged PostgreSQL user out of its data.
    return Path(tempfile.mkdtemp(prefix=prefix))


def xdg_state_home(state_dir: Path) -> Path:
    """Where a test stack records itself (services/stack/registry.py): beside its state, so
    test stacks never show up to `mlplane token` in the developer's own shell."""
    return state_dir.resolve().parent / "xdg-state"


def stack_env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    env.update(
        {
            "XDG_STATE_HOME": str(xdg_state_home(state_dir)),
            "MLPLANE_STATE_DIR": str(state_dir),
            "MLPLANE_QUERY_LISTEN": "127.0.0.1:0",
            "MLPLANE_MODELS_LISTEN": "127.0.0.1:0",
            "MLPLANE_QUERY_METRICS_PORT": "0",
            "MLPLANE_MODELS_METRICS_PORT": "0",
            "MLPLANE_VALIDATION_LISTEN": "127.0.0.1:0",
            "MLPLANE_VALIDATION_METRICS_PORT": "0",
            "MLPLANE_GATEWAY_LISTEN": "127.0.0.1:0",
            "MLPLANE_GATEWAY_ADMIN_PORT": "0",
            "MLPLANE_SHUTDOWN_GRACE_SECONDS": "2",
            # API only unless a test asks for the web app (what a test sees must not depend
            # on whether the checkout's web/dist happens to be built).
            "MLPLANE_WEB_DIR": str(state_dir / "no-web-app"),
        }
    )
    env.update(extra)
    return env


@dataclass
class RunningStack:
    state_dir: Path
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    descendants: list[psutil.Process] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(state_dir=self.state_dir)

    @property
    def tokens(self) -> Tokens:
        return Tokens(self.settings)

    @property
    def gateway_url(self) -> str:
        return str(self.info["gateway_url"])

    @property
    def gateway_target(self) -> str:
        return f"127.0.0.1:{self.info['gateway_port']}"

    def service_target(self, name: str) -> str:
        return f"127.0.0.1:{self.info[f'{name}_port']}"

    def role_dsn(self, role: str) -> str:
        creds = json.loads((self.state_dir / "db-roles.json").read_text())
        key = {"mlplane_query": "query_password", "mlplane_registry": "registry_password"}[role]
        return EmbeddedPostgres(self.state_dir).dsn(user=role, password=creds[key])

    def admin_dsn(self) -> str:
        return EmbeddedPostgres(self.state_dir).dsn()

    def pids(self) -> dict[str, int]:
        """The children's PIDs now (`mlplane up` rewrites them when it restarts one)."""
        recorded = json.loads((self.state_dir / "stack.json").read_text())["pids"]
        return {name: int(pid) for name, pid in recorded.items()}

    def replicas(self, service: str) -> list[dict[str, Any]]:
        """Every replica of `service` now, in order: `name` (`query`, `query-2`, …), `pid`,
        `grpc_port`, `metrics_port` (`mlplane up --replicas N`; one entry otherwise)."""
        recorded = json.loads((self.state_dir / "stack.json").read_text())
        pids = {name: int(pid) for name, pid in recorded["pids"].items()}
        return [
            {**replica, "pid": pids[replica["name"]]} for replica in recorded["replicas"][service]
        ]

    def replica_pids(self, service: str) -> list[int]:
        return [int(replica["pid"]) for replica in self.replicas(service)]

    def replica_targets(self, service: str) -> list[str]:
        """`127.0.0.1:PORT` of each replica's gRPC server, straight, not through the gateway."""
        return [f"127.0.0.1:{replica['grpc_port']}" for replica in self.replicas(service)]

    def log(self) -> str:
        return (self.state_dir / "up.log").read_text(errors="replace")

    @property
    def xdg_state_home(self) -> Path:
        return xdg_state_home(self.state_dir)


def run_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `mlplane ARGS` against the stack whose state is in `state_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    env["MLPLANE_STATE_DIR"] = str(state_dir)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_stack(
    state_dir: Path, *, timeout: float = 180.0, up_args: Sequence[str] = (), **env: str
) -> RunningStack:
    """`mlplane up [UP_ARGS]` (e.g. `up_args=("--replicas", "2")`), ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "up.log", "ab")  # noqa: SIM115 (owned by the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", *up_args],
        cwd=ROOT,
        env=stack_env(state_dir, **env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    stack_file = state_dir / "stack.json"
    deadline = time.monotonic() + timeout
    while not stack_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(
                f"mlplane up exited with {proc.returncode}:\n"
                + (state_dir / "up.log").read_text(errors="replace")[-4000:]
            )
        if time.monotonic() > deadline:
            stop_stack_process(proc)
            raise TimeoutError(f"mlplane up not ready within {timeout}s")
        time.sleep(0.1)
    info = json.loads(stack_file.read_text())
    descendants = psutil.Process(proc.pid).children(recursive=True)
    return RunningStack(state_dir=state_dir, proc=proc, info=info, descendants=descendants)


@contextlib.contextmanager
def stack_in_tmp(prefix: str, *, up_args: Sequence[str] = (), **env: str) -> Iterator[RunningStack]:
    """A stack (`start_stack`) in a folder of its own, `private_tmp(prefix)`; afterwards
    stopped and its folder removed, and an error if any of its processes is left behind."""
    root = private_tmp(prefix)
    running = start_stack(root / "state", up_args=up_args, **env)
    try:
        yield running
    finally:
        survivors = stop_stack(running)
        report_logged_errors(running, prefix.rstrip("-"))
        keep = os.environ.get("MLPLANE_TEST_KEEP_LOGS")
        if keep:
            shutil.copytree(running.state_dir / "logs", Path(keep) / root.name, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
        assert not survivors, f"processes left behind: {survivors}"


def logged_errors(state_dir: Path) -> list[dict[str, Any]]:
    """The stack's log entries that carry an exception (JSON lines of `logs/*.log`)."""
    found: list[dict[str, Any]] = []
    for path in sorted((state_dir / "logs").glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"exception"' not in line:
                continue
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and "exception" in entry:
                    found.append({"file": path.name, **entry})
    return found


# Every stopped stack's logged exceptions, by the stack's name: the session's summary
# (tests/conftest.py) counts them, so what passing tests' services logged is seen too.
LOGGED_BY_STACKS: list[tuple[str, dict[str, Any]]] = []


def report_logged_errors(stack: RunningStack, name: str) -> None:
    """Print the stack's logged exceptions, and what `mlplane up` said of its children
    (a crash, a restart), to stderr before its folder goes: pytest shows them beside a
    failing test, and a 500's traceback is otherwise lost with the folder."""
    errors = logged_errors(stack.state_dir)
    LOGGED_BY_STACKS.extend((name, entry) for entry in errors)
    for entry in errors[-20:]:
        head = {k: v for k, v in entry.items() if k != "exception"}
        print(f"--- logged by the stack: {json.dumps(head)}\n{entry['exception']}", file=sys.stderr)
    said = [line for line in stack.log().splitlines() if line.startswith("mlplane up:")]
    for line in said[-20:]:
        print(f"--- {line}", file=sys.stderr)


def stop_stack_process(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise


def stop_stack(stack: RunningStack) -> list[psutil.Process]:
    """Stop with SIGTERM like Ctrl-C would; return every process left behind."""
    # Children started again by `mlplane up` after a crash count too.
    with contextlib.suppress(psutil.Error):
        known = {p.pid for p in stack.descendants}
        stack.descendants += [
            p for p in psutil.Process(stack.proc.pid).children(recursive=True) if p.pid not in known
        ]
    try:
        stop_stack_process(stack.proc)
    finally:
        survivors = [p for p in stack.descendants if _alive(p)]
        for p in survivors:  # never leave them for the next test, but report them
            p.kill()
    return survivors


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
