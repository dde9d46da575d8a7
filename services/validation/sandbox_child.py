"""The sandboxed child's side (`sandbox.py` is the parent's): what the fresh interpreter does to
itself before it runs the target, and how it answers.

* **Limits**, set by the child on itself as its very first act (our code; the untrusted model is
  only read later, by the target): `RLIMIT_AS` (address space: allocation fails with `bad_alloc`
  or `MemoryError` instead of the node's OOM killer choosing a victim), `RLIMIT_CPU` (soft: SIGXCPU,
  hard one second later: SIGKILL), `RLIMIT_CORE` 0 (a crash writes no core file), `RLIMIT_FSIZE`
  (the child has no reason to write files) and `RLIMIT_NOFILE`. `PR_SET_PDEATHSIG` kills the child
  if the parent dies.
* **No network**, in two layers, and the outcome says which held (`network_isolation`):
  1. `unshare(CLONE_NEWUSER | CLONE_NEWNET)` (through libc with ctypes: `os.unshare` is 3.12+),
     before any thread exists: the child gets a network namespace with only a loopback device,
     down. Nothing, native code included, can reach another host or this host's services. It
     works for an unprivileged user where the kernel allows user namespaces; in many container
     runtimes the default seccomp profile refuses it (EPERM).
  2. An audit hook (`sys.addaudithook`) refusing socket creation, connect, bind, name lookups and
     process creation. It sees Python code only: ONNX Runtime's native code (or ctypes) would not
     pass through it. ONNX has no operator that opens a socket, so for the runtime check it
     guards our own Python side; it is not a boundary against native code.
  If the namespace is refused the run goes on with the hook alone (`network_isolation` is
  `audit_hook`), unless `SandboxLimits.require_network_namespace` asks to refuse instead
  (reason `SANDBOX_UNAVAILABLE`). Deployments where unshare is refused should add an egress
  policy of their own (e.g. a Kubernetes NetworkPolicy) for the worker.

What this does not isolate: the file system. The child runs as the worker's user (inside the user
namespace it holds no capabilities, so root's CAP_DAC_OVERRIDE is gone) and can read what that
user can read; run the worker as a dedicated unprivileged user. No seccomp filter is installed.

The answer is JSON lines on a private duplicate of stdout: `ready` (which isolation held), then
one of `result`, `error`, `memory_error` or `unavailable`, then `peak` (the child's own VmHWM).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import json
import os
import resource
import signal
import sys
from collections.abc import Mapping
from typing import Any

NETWORK_NAMESPACE = "network_namespace"
AUDIT_HOOK = "audit_hook"

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_EXIT_UNAVAILABLE = 3

# Audit events the hook refuses: networking, name lookups, new processes.
_DENIED_EVENTS = frozenset(
    {
        "socket.__new__",
        "socket.bind",
        "socket.connect",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.fork",
        "os.forkpty",
        "os.posix_spawn",
        "os.spawn",
        "pty.spawn",
    }
)


def vm_hwm(pid: int) -> int:
    """A live process's peak resident memory in bytes (VmHWM), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _deny_network(event: str, _args: tuple[Any, ...]) -> None:
    if event in _DENIED_EVENTS:
        raise PermissionError(f"the sandbox refuses {event}")


def _unshare_network() -> str | None:
    """Enter new user and network namespaces; None on success, else why not."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(ctypes.c_int(_CLONE_NEWUSER | _CLONE_NEWNET)) == 0:
        return None
    code = ctypes.get_errno()
    return f"unshare(CLONE_NEWUSER|CLONE_NEWNET) refused: {errno.errorcode.get(code, code)}"


def _set_limits(limits: Mapping[str, Any]) -> None:
    cpu = int(limits["cpu_seconds"])
    memory = int(limits["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["file_size_bytes"]),) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(limits["open_files"]),) * 2)


def main() -> None:
    """Entry point of the child (see BOOTSTRAP). Never returns."""
    answer_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr; answers go to answer_fd only
    answer = os.fdopen(answer_fd, "w", encoding="utf-8")

    def send(message: dict[str, Any]) -> None:
        answer.write(json.dumps(message, allow_nan=False) + "\n")
        answer.flush()

    request = json.loads(sys.stdin.buffer.read())
    limits = request["limits"]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != request["parent_pid"]:
        os._exit(_EXIT_UNAVAILABLE)  # the parent died before the death signal was armed
    _set_limits(limits)
    isolation: list[str] = []
    notes: list[str] = []
    # Before anything starts a thread: unshare(CLONE_NEWUSER) refuses a multithreaded process.
    if limits["network_namespace"]:
        refused = _unshare_network()
        if refused is None:
            isolation.append(NETWORK_NAMESPACE)
        else:
            notes.append(refused)
    if limits["require_network_namespace"] and NETWORK_NAMESPACE not in isolation:
        send({"kind": "ready", "isolation": isolation, "notes": notes})
        send({"kind": "unavailable", "message": "; ".join(notes) or "no network namespace"})
        os._exit(_EXIT_UNAVAILABLE)
    if limits["audit_hook"]:
        sys.addaudithook(_deny_network)
        isolation.append(AUDIT_HOOK)
    send({"kind": "ready", "isolation": isolation, "notes": notes})
    try:
        module_name, function_name = request["target"].split(":", 1)
        function = getattr(importlib.import_module(module_name), function_name)
        value = function(request["payload"])
        send({"kind": "result", "value": value})
    except MemoryError:
        with contextlib.suppress(BaseException):
            send({"kind": "memory_error"})
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            send({"kind": "error", "type": type(exc).__name__, "message": str(exc)[:2000]})
    with contextlib.suppress(BaseException):
        send({"kind": "peak", "bytes": vm_hwm(os.getpid())})
    os._exit(0)
