"""Run one function in a fresh, limited child process: the sandbox of the validation worker.

Kept whole (about 400 lines): the parent's side of one child process (limits, start, the
answer pipe, the outcome); the child's side is apart (sandbox_child.py).

Why a child process at all: an uploaded model is untrusted input to ONNX Runtime, a large native
library. A model can make it allocate without bound, loop for ever, or crash it; none of that may
happen inside a service or the worker. So the worker calls `run_sandboxed(target, payload, ...)`
and gets back a `SandboxOutcome`: the target's JSON result, or a reason the child did not finish.

How the child is made, and why
------------------------------
* **A fresh interpreter** (`subprocess`, `python -I -B -c <bootstrap>`), not `fork` and not
  `multiprocessing`. Forking a grpc.aio / asyncio process copies its threads' locks and gRPC's
  state; `multiprocessing`'s `spawn` context would do, but brings a resource tracker process,
  pickling and its own pipes, and no say over the environment or the session. `Popen` gives all
  of it directly, without a `preexec_fn` (unsafe in a threaded parent): `start_new_session=True`
  makes the child the leader of its own process group, so the parent can kill the whole group.
  `-I` ignores every `PYTHON*` variable, the user site and the current directory; `-B` writes no
  bytecode. The request (target, payload, limits) is JSON on stdin; the answer is JSON lines on a
  private duplicate of stdout (fd 1 itself is pointed at stderr, so a library printing cannot
  corrupt the answer). stdin/stdout/stderr are pipes; every other descriptor is closed.
* **An empty environment** but for fixed thread counts (`OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`,
  `MKL_NUM_THREADS` = `SandboxLimits.threads`, 1 by default) and `MALLOC_ARENA_MAX=2`. One thread:
  latency figures comparable between versions and between workers whatever the machine's load,
  several workers on one node do not oversubscribe it, and CPU seconds are close to wall seconds.
  Two malloc arenas: glibc reserves 64 MiB of address space per arena and thread, which would
  count against `RLIMIT_AS` without being memory anyone uses.
* **A scratch directory** (mode 0700) made per run, the child's working directory, holding the
  files the caller passed (the model); always removed afterwards, whatever happened.
* **Limits and no network**, which the child sets on itself before it reads anything:
  `sandbox_child.py` says which, why, and what they leave open (the file system). The outcome
  says which network isolation held (`network_isolation`). The **wall-clock limit** is the
  parent's: past it the parent sends SIGKILL to the whole process group. After the child exits,
  the group is killed again (a grandchild cannot outlive the run unless it left the group with
  `setsid`, which neither ONNX Runtime nor our targets do) and then reaped with `wait4`, whose
  rusage gives the child's CPU time. Its peak memory is the child's own VmHWM (not ru_maxrss,
  which Linux carries over from the parent).

Reasons (`SandboxOutcome.reason`): `TIME_LIMIT` (wall clock), `CPU_LIMIT`, `MEMORY_LIMIT`
(`MemoryError`, or a death whose stderr shows an allocation failure), `CRASHED_SIGNAL_<n>`,
`CRASHED_EXIT_<n>`, `TARGET_ERROR` (the target raised), `BAD_RESULT` (no or unreadable answer),
`SANDBOX_UNAVAILABLE`.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from services.validation.sandbox_child import AUDIT_HOOK as AUDIT_HOOK
from services.validation.sandbox_child import NETWORK_NAMESPACE as NETWORK_NAMESPACE
from services.validation.sandbox_child import vm_hwm
from services.validation.scratch import scratch_prefix

# The directory holding the `services` package: the child puts it first on sys.path, so it runs
# this checkout's code (and, in tests, can import targets under tests/).
CODE_ROOT = str(Path(__file__).resolve().parents[2])

BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from services.validation.sandbox_child import main; main()"
)

MiB = 1024 * 1024
GiB = 1024 * MiB
RESULT_LIMIT_BYTES = 4 * MiB  # answers larger than this are a BAD_RESULT
STDERR_TAIL_BYTES = 16 * 1024  # what is kept of the child's stderr, for the worker's log

TIME_LIMIT = "TIME_LIMIT"
CPU_LIMIT = "CPU_LIMIT"
MEMORY_LIMIT = "MEMORY_LIMIT"
TARGET_ERROR = "TARGET_ERROR"
BAD_RESULT = "BAD_RESULT"
SANDBOX_UNAVAILABLE = "SANDBOX_UNAVAILABLE"


# Messages by which native allocators and Python say an allocation failed.
_ALLOCATION_MARKERS = (
    "bad_alloc",
    "memoryerror",
    "failed to allocate memory",
    "cannot allocate memory",
    "out of memory",
)


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of one run. Defaults suit a model of a few hundred MiB on one core.

    `memory_bytes` bounds the child's address space (not only its RSS): the interpreter, NumPy and
    ONNX Runtime take about 200 MiB of it before a model is read, and a model needs about three
    times its size while it is loaded (the file, the parsed graph, the initializers).
    """

    memory_bytes: int = 4 * GiB
    cpu_seconds: int = 60
    wall_seconds: float = 90.0
    threads: int = 1
    file_size_bytes: int = 64 * MiB
    open_files: int = 256
    network_namespace: bool = True
    audit_hook: bool = True
    require_network_namespace: bool = False


@dataclass(frozen=True)
class SandboxOutcome:
    """What became of a run. `ok` means the target returned; `result` is what it returned."""

    ok: bool
    result: Any
    reason: str | None
    message: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    exit_code: int | None
    signal: int | None
    network_isolation: list[str] = field(default_factory=list)
    isolation_notes: list[str] = field(default_factory=list)
    stderr_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def looks_like_allocation_failure(text: str) -> bool:
    """Whether an error message says an allocation failed (ONNX Runtime, C++, Python)."""
    lowered = text.lower()
    return any(marker in lowered for marker in _ALLOCATION_MARKERS)


def child_environment(threads: int) -> dict[str, str]:
    """The child's whole environment: no PATH, no HOME, no credentials; fixed thread counts."""
    count = str(threads)
    return {
        "OMP_NUM_THREADS": count,
        "OPENBLAS_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
        "MALLOC_ARENA_MAX": "2",
        "LC_ALL": "C.UTF-8",
    }


def target_name(target: Callable[..., Any]) -> str:
    """`module:qualname` of a module-level function, which the child imports by that name."""
    module, qualname = target.__module__, target.__qualname__
    if module == "__main__" or "<" in qualname or "." in qualname:
        raise ValueError(f"the target must be a module-level function, not {module}:{qualname}")
    return f"{module}:{qualname}"


def run_sandboxed(
    target: Callable[[Any], Any],
    payload: Any = None,
    *,
    limits: SandboxLimits | None = None,
    files: Mapping[str, bytes | Path] | None = None,
    scratch_root: Path | None = None,
) -> SandboxOutcome:
    """Run `target(payload)` in a sandboxed child; blocking (call it from a worker thread).

    `target` is a module-level function taking the JSON payload and returning a JSON value; it
    runs with the scratch directory as its working directory, where `files` (plain names, bytes
    or a path to copy) were put. `scratch_root` is where the scratch directory is made (the
    system's temporary directory by default).
    """
    limits = limits or SandboxLimits()
    name = target_name(target)
    request = json.dumps(
        {
            "target": name,
            "payload": payload,
            "limits": asdict(limits),
            "parent_pid": os.getpid(),
        }
    ).encode()
    scratch = Path(tempfile.mkdtemp(prefix=scratch_prefix("sandbox"), dir=scratch_root))
    try:
        for filename, content in (files or {}).items():
            _place(scratch, filename, content)
        return _run_child(request, limits, scratch)
    finally:
        _remove_tree(scratch)


def _place(scratch: Path, filename: str, content: bytes | Path) -> None:
    if not filename or "/" in filename or filename in {".", ".."}:
        raise ValueError(f"not a plain file name: {filename!r}")
    destination = scratch / filename
    if isinstance(content, Path):
        shutil.copyfile(content, destination)
    else:
        destination.write_bytes(content)
    destination.chmod(0o400)


def _remove_tree(path: Path) -> None:
    """Remove the scratch directory even if the child took permissions away inside it."""

    def make_writable(function: Any, failed: str, _exc: Any) -> None:
        parent = os.path.dirname(failed)
        with contextlib.suppress(OSError):
            os.chmod(parent, stat.S_IRWXU)
            os.chmod(failed, stat.S_IRWXU)
        function(failed)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable)


class _Drain(threading.Thread):
    """Read a pipe to its end, keeping the head (stdout) or the tail (stderr) up to a limit."""

    def __init__(self, pipe: IO[bytes], limit: int, *, keep_tail: bool) -> None:
        super().__init__(daemon=True)
        self.pipe, self.limit, self.keep_tail = pipe, limit, keep_tail
        self.data = bytearray()
        self.overflow = False

    def run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(self.pipe.fileno(), 65536):
                self.data += chunk
                if len(self.data) > self.limit:
                    self.overflow = True
                    if self.keep_tail:
                        del self.data[: len(self.data) - self.limit]
                    else:
                        del self.data[self.limit :]


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):
        try:
            pipe.write(data)
        finally:
            pipe.close()


def _run_child(request: bytes, limits: SandboxLimits, scratch: Path) -> SandboxOutcome:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-I", "-B", "-c", BOOTSTRAP, CODE_ROOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=scratch,
        env=child_environment(limits.threads),
        start_new_session=True,
        close_fds=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    pid = process.pid
    feeder = threading.Thread(target=_feed, args=(process.stdin, request), daemon=True)
    out = _Drain(process.stdout, RESULT_LIMIT_BYTES, keep_tail=False)
    err = _Drain(process.stderr, STDERR_TAIL_BYTES, keep_tail=True)
    # Wait for the exit without reaping (WNOWAIT): while the child is an unreaped zombie its pid,
    # which is also the process group's id, cannot be reused, so killing the group stays safe.
    exited = threading.Event()

    def wait_exit() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        exited.set()

    waiter = threading.Thread(target=wait_exit, daemon=True)
    for thread in (feeder, out, err, waiter):
        thread.start()
    # Meanwhile the child's high-water mark is looked at every 20 ms: all a child killed by a
    # limit or a signal leaves of its peak memory.
    deadline = started + limits.wall_seconds
    polled_peak = 0
    while not exited.wait(min(_PEAK_POLL_SECONDS, max(0.0, deadline - time.monotonic()))):
        polled_peak = max(polled_peak, vm_hwm(pid))
        if time.monotonic() >= deadline:
            break
    timed_out = not exited.is_set()
    _kill_group(pid)  # past the wall limit; or, after the exit, whatever the child left behind
    waiter.join()
    _, status, usage = os.wait4(pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    wall = time.monotonic() - started
    for thread in (feeder, out, err):
        thread.join(timeout=5)
    for pipe in (process.stdin, process.stdout, process.stderr):
        with contextlib.suppress(OSError):
            pipe.close()
    stderr_tail = err.data.decode(errors="replace").replace(str(scratch), "<scratch>")
    return _outcome(
        limits,
        timed_out=timed_out,
        status=status,
        usage=usage,
        wall=wall,
        answer=out.data,
        answer_overflow=out.overflow,
        stderr_tail=stderr_tail,
        polled_peak=polled_peak,
    )


_PEAK_POLL_SECONDS = 0.02


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _outcome(
    limits: SandboxLimits,
    *,
    timed_out: bool,
    status: int,
    usage: resource.struct_rusage,
    wall: float,
    answer: bytearray,
    answer_overflow: bool,
    stderr_tail: str,
    polled_peak: int,
) -> SandboxOutcome:
    exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    signal_number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    cpu = usage.ru_utime + usage.ru_stime
    # Not wait4's ru_maxrss: Linux carries the parent's high-water mark over fork and exec
    # into the child's, so a large parent (a worker, a test runner) would be reported as the
    # model's peak. The child's own VmHWM (sent before it exits), else the parent's last look.
    peak = polled_peak
    ready: dict[str, Any] = {}
    final: dict[str, Any] | None = None
    bad_answer = answer_overflow
    for line in bytes(answer).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            bad_answer = True
            continue
        if isinstance(message, dict) and message.get("kind") == "ready":
            ready = message
        elif isinstance(message, dict) and message.get("kind") == "peak":
            if isinstance(message.get("bytes"), int):
                peak = max(peak, message["bytes"])
        elif isinstance(message, dict):
            final = message
        else:
            bad_answer = True

    def outcome(reason: str | None, text: str, result: Any = None) -> SandboxOutcome:
        return SandboxOutcome(
            ok=reason is None,
            result=result,
            reason=reason,
            message=text,
            wall_seconds=round(wall, 4),
            cpu_seconds=round(cpu, 4),
            peak_rss_bytes=peak,
            exit_code=exit_code,
            signal=signal_number,
            network_isolation=list(ready.get("isolation", [])),
            isolation_notes=list(ready.get("notes", [])),
            stderr_tail=stderr_tail,
        )

    if timed_out:
        return outcome(
            TIME_LIMIT, f"the run passed its wall-clock limit of {limits.wall_seconds} s"
        )
    if signal_number == signal.SIGXCPU or (
        signal_number == signal.SIGKILL and cpu >= limits.cpu_seconds - 0.05
    ):
        return outcome(CPU_LIMIT, f"the run passed its CPU limit of {limits.cpu_seconds} s")
    if final is not None and not bad_answer:
        kind = final.get("kind")
        if kind == "result" and exit_code == 0:
            return outcome(None, "", final.get("value"))
        if kind == "memory_error":
            return outcome(MEMORY_LIMIT, _memory_text(limits))
        if kind == "unavailable":
            return outcome(SANDBOX_UNAVAILABLE, str(final.get("message", "")))
        if kind == "error":
            return outcome(
                TARGET_ERROR, f"{final.get('type', 'Error')}: {final.get('message', '')}"[:500]
            )
    if looks_like_allocation_failure(stderr_tail) and (exit_code != 0):
        return outcome(MEMORY_LIMIT, _memory_text(limits))
    if signal_number is not None:
        name = signal.Signals(signal_number).name if signal_number in _SIGNALS else "unknown"
        return outcome(f"CRASHED_SIGNAL_{signal_number}", f"the child was killed by signal {name}")
    if exit_code:
        return outcome(f"CRASHED_EXIT_{exit_code}", f"the child exited with status {exit_code}")
    return outcome(BAD_RESULT, "the child exited without a readable answer")


_SIGNALS = {int(s) for s in signal.Signals}


def _memory_text(limits: SandboxLimits) -> str:
    return f"the run needed more than its memory limit of {limits.memory_bytes // MiB} MiB"
