"""Child processes of the stack: started in their own session, tied to our
lifetime with PR_SET_PDEATHSIG, and stopped by PID."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child receive `sig` when this process dies.

    Linux only (None elsewhere). The kernel ties the setting to the *thread*
    that forked, so spawn long-lived children from the main thread. Popen runs
    preexec_fn after any user=/group= switch, which matters: a uid change
    clears the setting.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    # Resolved before fork: a forked child of a threaded parent must not dlopen.
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # If the parent died before prctl ran, nothing would ever signal the child.
        if os.getppid() != parent:
            raise RuntimeError("parent exited while the child was being spawned")

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    death_signal: int = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, and we stop them in order
            preexec_fn=die_with_parent(death_signal),
        )


def stop_process(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout: float = 15.0
) -> int | None:
    """Signal, wait up to `timeout`, then SIGKILL. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], *, timeout: float, what: str) -> str:
    """Wait until `path` exists (the child writes it when ready), or the child dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        time.sleep(0.05)
    raise TimeoutError(f"{what} was not ready within {timeout:.0f}s")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
