"""Targets the sandbox tests run in a child (module-level functions, imported by name there)."""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any


def echo(payload: Any) -> dict[str, Any]:
    """What the child sees: its payload, directory, environment and limits."""
    return {
        "payload": payload,
        "cwd": os.getcwd(),
        "files": sorted(os.listdir(".")),
        "environment": dict(os.environ),
        "memory_limit": resource.getrlimit(resource.RLIMIT_AS)[0],
        "cpu_limit": resource.getrlimit(resource.RLIMIT_CPU)[0],
        "core_limit": resource.getrlimit(resource.RLIMIT_CORE)[0],
        "session_leader": os.getsid(0) == os.getpid(),
        "sys_flags_isolated": sys.flags.isolated,
    }


def connect(payload: dict[str, Any]) -> dict[str, Any]:
    """Try to reach the test's listening socket on 127.0.0.1."""
    try:
        with socket.create_connection(("127.0.0.1", payload["port"]), timeout=2):
            return {"connected": True}
    except OSError as exc:
        return {"connected": False, "error": type(exc).__name__, "errno": exc.errno}


def kill_self(payload: dict[str, Any]) -> None:
    os.kill(os.getpid(), payload["signal"])
    time.sleep(5)


def raise_error(_payload: Any) -> None:
    raise ValueError("the target failed on purpose")


def allocate(payload: dict[str, Any]) -> int:
    """Allocate `bytes` bytes in Python (MemoryError past RLIMIT_AS)."""
    block = bytearray(payload["bytes"])
    return len(block)


def sleep(payload: dict[str, Any]) -> None:
    time.sleep(payload["seconds"])


def spin(_payload: Any) -> None:
    while True:
        pass


def leave_grandchild(_payload: Any) -> int:
    """Fork a grandchild that outlives the target (only possible without the audit hook)."""
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    return pid


def segfault(_payload: Any) -> None:
    """A runtime check target that dies as a crashing native library would."""
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)


def write_file(payload: dict[str, Any]) -> str:
    path = Path(payload["name"])
    path.write_bytes(b"x" * payload["size"])
    path.chmod(0)
    return str(path.resolve())
