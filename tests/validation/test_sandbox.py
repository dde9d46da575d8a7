"""The sandbox primitive: a target run in a limited child, and nothing left behind."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from services.validation.sandbox import (
    AUDIT_HOOK,
    CPU_LIMIT,
    MEMORY_LIMIT,
    NETWORK_NAMESPACE,
    TARGET_ERROR,
    TIME_LIMIT,
    MiB,
    SandboxLimits,
    child_environment,
    run_sandboxed,
)
from tests.validation import sandbox_targets
from tests.validation.leftovers import nothing_left_behind

scratch_root = pytest.fixture(nothing_left_behind)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 that the sandboxed target must not reach."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        yield server
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody connected


def test_child_has_empty_environment_limits_and_a_scratch_directory(scratch_root: Path) -> None:
    limits = SandboxLimits(memory_bytes=1024 * MiB, cpu_seconds=7)
    outcome = run_sandboxed(
        sandbox_targets.echo,
        {"hello": [1, 2]},
        limits=limits,
        files={"model.onnx": b"not really"},
        scratch_root=scratch_root,
    )
    assert outcome.ok, outcome
    seen = outcome.result
    assert seen["payload"] == {"hello": [1, 2]}
    assert seen["environment"] == child_environment(1)
    assert Path(seen["cwd"]).parent == scratch_root
    assert seen["files"] == ["model.onnx"]
    assert seen["memory_limit"] == 1024 * MiB
    assert seen["cpu_limit"] == 7
    assert seen["core_limit"] == 0
    assert seen["session_leader"]
    assert seen["sys_flags_isolated"] == 1
    assert outcome.exit_code == 0
    assert outcome.peak_rss_bytes > 1 * MiB
    assert AUDIT_HOOK in outcome.network_isolation


@pytest.mark.parametrize(
    ("namespace", "hook"),
    [(True, True), (True, False), (False, True)],
    ids=["namespace+hook", "namespace-only", "hook-only"],
)
def test_target_cannot_reach_the_network(
    scratch_root: Path, listener: socket.socket, namespace: bool, hook: bool
) -> None:
    limits = SandboxLimits(network_namespace=namespace, audit_hook=hook)
    port = listener.getsockname()[1]
    outcome = run_sandboxed(
        sandbox_targets.connect, {"port": port}, limits=limits, scratch_root=scratch_root
    )
    assert outcome.ok, outcome
    if namespace and NETWORK_NAMESPACE not in outcome.network_isolation:
        assert not hook
        pytest.skip(f"this kernel refuses user+network namespaces: {outcome.isolation_notes}")
    assert outcome.result["connected"] is False
    if hook:
        # The hook refuses the socket before the namespace is even consulted.
        assert outcome.result["error"] == "PermissionError"
    else:
        assert outcome.result["error"] == "OSError"  # ENETUNREACH: no device is up
    assert (AUDIT_HOOK in outcome.network_isolation) is hook


def test_a_reachable_listener_is_reachable_without_the_sandbox(listener: socket.socket) -> None:
    """The control: the same target, run here, does connect (so the test above means something)."""
    listener.setblocking(True)
    assert sandbox_targets.connect({"port": listener.getsockname()[1]})["connected"]
    connection, _ = listener.accept()
    connection.close()
    listener.setblocking(False)


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGKILL, signal.SIGABRT])
def test_child_killed_by_a_signal(scratch_root: Path, signum: signal.Signals) -> None:
    outcome = run_sandboxed(
        sandbox_targets.kill_self, {"signal": int(signum)}, scratch_root=scratch_root
    )
    assert not outcome.ok
    assert outcome.reason == f"CRASHED_SIGNAL_{int(signum)}"
    assert outcome.signal == signum
    assert signum.name in outcome.message


def test_target_exception(scratch_root: Path) -> None:
    outcome = run_sandboxed(sandbox_targets.raise_error, scratch_root=scratch_root)
    assert outcome.reason == TARGET_ERROR
    assert outcome.message == "ValueError: the target failed on purpose"


def test_allocation_past_the_memory_limit(scratch_root: Path) -> None:
    limits = SandboxLimits(memory_bytes=256 * MiB)
    outcome = run_sandboxed(
        sandbox_targets.allocate, {"bytes": 512 * MiB}, limits=limits, scratch_root=scratch_root
    )
    assert outcome.reason == MEMORY_LIMIT
    assert "256 MiB" in outcome.message


def test_peak_memory_is_measured(scratch_root: Path) -> None:
    outcome = run_sandboxed(
        sandbox_targets.allocate, {"bytes": 200 * MiB}, scratch_root=scratch_root
    )
    assert outcome.ok
    assert outcome.result == 200 * MiB
    assert 200 * MiB < outcome.peak_rss_bytes < 400 * MiB


def test_wall_clock_limit_kills_the_child(scratch_root: Path) -> None:
    limits = SandboxLimits(wall_seconds=0.5)
    outcome = run_sandboxed(
        sandbox_targets.sleep, {"seconds": 30}, limits=limits, scratch_root=scratch_root
    )
    assert outcome.reason == TIME_LIMIT
    assert outcome.signal == signal.SIGKILL
    assert 0.5 <= outcome.wall_seconds < 3


def test_cpu_limit(scratch_root: Path) -> None:
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=20)
    outcome = run_sandboxed(sandbox_targets.spin, limits=limits, scratch_root=scratch_root)
    assert outcome.reason == CPU_LIMIT
    assert outcome.cpu_seconds >= 0.9


def test_a_grandchild_dies_with_the_process_group(scratch_root: Path) -> None:
    limits = SandboxLimits(audit_hook=False)  # with the hook, fork is refused (next test)
    outcome = run_sandboxed(
        sandbox_targets.leave_grandchild, limits=limits, scratch_root=scratch_root
    )
    assert outcome.ok, outcome
    grandchild = outcome.result
    assert grandchild > 0
    # Reparented to init: gone, or a zombie waiting for init to reap it; never running.
    with contextlib.suppress(psutil.NoSuchProcess):
        assert psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_the_audit_hook_refuses_process_creation(scratch_root: Path) -> None:
    outcome = run_sandboxed(sandbox_targets.leave_grandchild, scratch_root=scratch_root)
    assert outcome.reason == TARGET_ERROR
    assert "PermissionError" in outcome.message
    assert "os.fork" in outcome.message


def test_file_size_limit_and_scratch_removed_even_when_locked(scratch_root: Path) -> None:
    small = run_sandboxed(
        sandbox_targets.write_file, {"name": "locked", "size": 1000}, scratch_root=scratch_root
    )
    assert small.ok, small  # wrote a file and took all permissions from it: still removed
    limits = SandboxLimits(file_size_bytes=1 * MiB)
    large = run_sandboxed(
        sandbox_targets.write_file,
        {"name": "large", "size": 2 * MiB},
        limits=limits,
        scratch_root=scratch_root,
    )
    assert large.reason == TARGET_ERROR
    assert "File too large" in large.message


def test_the_target_must_be_importable_by_name(scratch_root: Path) -> None:
    with pytest.raises(ValueError, match="module-level"):
        run_sandboxed(lambda payload: payload, scratch_root=scratch_root)
    with pytest.raises(ValueError, match="plain file name"):
        run_sandboxed(sandbox_targets.echo, files={"../escape": b""}, scratch_root=scratch_root)
