"""Finding the state folder from any working directory: MLPLANE_STATE_DIR, ./.mlplane, the
record a running `mlplane up` leaves, else an error that says what to do."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.settings import Settings
from services.stack.registry import (
    StateDirNotFound,
    forget_stack,
    locate_state_dir,
    record_stack,
    registry_dir,
    running_stacks,
)


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.delenv("MLPLANE_STATE_DIR", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return home


def _ready_state(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "stack.json").write_text("{}")
    return path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_registry_follows_xdg(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry_dir() == xdg / "mlplane" / "stacks"
    # A relative XDG_STATE_HOME is invalid by the spec: the default applies.
    monkeypatch.setenv("XDG_STATE_HOME", "relative/dir")
    assert registry_dir() == Path.home() / ".local" / "state" / "mlplane" / "stacks"


def test_record_is_private_atomic_and_forgotten_only_by_its_owner(
    xdg: Path, tmp_path: Path
) -> None:
    state = _ready_state(tmp_path / "state")
    path = record_stack(state, {"gateway_url": "http://127.0.0.1:8080"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    body = json.loads(path.read_text())
    assert body["state_dir"] == str(state.resolve())
    assert body["pid"] == os.getpid()
    assert [r.state_dir for r in running_stacks()] == [state.resolve()]

    # Another process's record of the same folder is not ours to remove.
    path.write_text(json.dumps({**body, "pid": body["pid"] + 1}))
    forget_stack(state)
    assert path.exists()
    path.write_text(json.dumps(body))
    forget_stack(state)
    assert not path.exists()


def test_mlplane_state_dir_comes_first(xdg: Path, tmp_path: Path) -> None:
    Path(".mlplane").mkdir()
    record_stack(_ready_state(tmp_path / "running"), {})
    chosen = tmp_path / "chosen"
    assert locate_state_dir(Settings(state_dir=chosen)) == chosen


def test_local_folder_comes_before_the_record(xdg: Path, tmp_path: Path) -> None:
    record_stack(_ready_state(tmp_path / "running"), {})
    Path(".mlplane").mkdir()
    assert locate_state_dir(Settings()) == Path(".mlplane")


def test_the_running_stacks_record_from_anywhere(xdg: Path, tmp_path: Path) -> None:
    state = _ready_state(tmp_path / "running")
    record_stack(state, {})
    assert locate_state_dir(Settings()) == state.resolve()


def test_without_a_record_the_error_says_what_to_do(xdg: Path) -> None:
    with pytest.raises(StateDirNotFound) as caught:
        locate_state_dir(Settings())
    message = str(caught.value)
    assert "make up" in message
    assert "MLPLANE_STATE_DIR=/path/to/.mlplane" in message


def test_stale_records_are_ignored_and_removed(xdg: Path, tmp_path: Path) -> None:
    # A folder that is gone, a process that is gone, a stack that stopped (no stack.json).
    gone = _ready_state(tmp_path / "gone")
    gone_record = record_stack(gone, {})
    (gone / "stack.json").unlink()
    gone.rmdir()
    dead = _ready_state(tmp_path / "dead")
    dead_record = record_stack(dead, {})
    dead_record.write_text(json.dumps({**json.loads(dead_record.read_text()), "pid": _dead_pid()}))
    stopped = _ready_state(tmp_path / "stopped")
    stopped_record = record_stack(stopped, {})
    (stopped / "stack.json").unlink()
    garbage = registry_dir() / "garbage.json"
    garbage.write_text("{not json")

    with pytest.raises(StateDirNotFound, match="make up"):
        locate_state_dir(Settings())
    assert not gone_record.exists()
    assert not dead_record.exists()
    assert not garbage.exists()
    # Its process still runs: the stack may be starting again; keep the record.
    assert stopped_record.exists()


def test_two_running_stacks_are_named_not_guessed(xdg: Path, tmp_path: Path) -> None:
    first = _ready_state(tmp_path / "first")
    second = _ready_state(tmp_path / "second")
    record_stack(first, {"gateway_url": "http://127.0.0.1:8080"})
    record_stack(second, {"gateway_url": "http://127.0.0.1:8081"})
    with pytest.raises(StateDirNotFound) as caught:
        locate_state_dir(Settings())
    assert f"MLPLANE_STATE_DIR={first.resolve()}" in str(caught.value)
    assert f"MLPLANE_STATE_DIR={second.resolve()}" in str(caught.value)
