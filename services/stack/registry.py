"""Where running stacks keep their state, so admin commands work from any folder.

`mlplane up` records its state folder in a small JSON file per stack under
``$XDG_STATE_HOME/mlplane/stacks/`` (``~/.local/state/mlplane/stacks/`` by default), written
atomically once the stack is ready and removed when it stops. The admin commands that read the
state folder (`token`, `grant`, `audit`, `demo load`) look, in order, at `MLPLANE_STATE_DIR`,
at ``./.mlplane``, and at the records of running stacks (`locate_state_dir`).

One file per stack, named after its state folder, because several stacks may run at once (the
test suite starts many): each removes only its own, and a record left by a killed stack is
told apart by its process being gone or its folder no longer holding a ready stack.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.settings import Settings

DEFAULT_STATE_DIR = Path(".mlplane")


class StateDirNotFound(RuntimeError):
    """No state folder to use: the message says what to do."""


@dataclass(frozen=True)
class StackRecord:
    state_dir: Path
    pid: int
    gateway_url: str
    started: str

    @property
    def live(self) -> bool:
        """Its process runs and its folder still holds a ready stack (stack.json)."""
        return _pid_alive(self.pid) and (self.state_dir / "stack.json").is_file()


def registry_dir() -> Path:
    # XDG Base Directory: a relative XDG_STATE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "mlplane" / "stacks"


def _record_path(state_dir: Path) -> Path:
    key = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:16]
    return registry_dir() / f"{key}.json"


def record_stack(state_dir: Path, info: dict[str, Any]) -> Path:
    """Record a ready stack; returns the record's path."""
    path = _record_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = {
        "state_dir": str(state_dir.resolve()),
        "pid": os.getpid(),
        "gateway_url": str(info.get("gateway_url", "")),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # 0600: it names a folder holding a signing key; nobody else needs to read where it is.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle, indent=2)
    tmp.replace(path)
    return path


def forget_stack(state_dir: Path) -> None:
    """Remove this process's record of the stack (never another process's)."""
    path = _record_path(state_dir)
    record = _read(path)
    if record is not None and record.pid == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def running_stacks() -> list[StackRecord]:
    """Records of stacks that are running now; stale records are deleted on the way."""
    folder = registry_dir()
    if not folder.is_dir():
        return []
    live = []
    for path in sorted(folder.glob("*.json")):
        record = _read(path)
        if record is not None and record.live:
            live.append(record)
        elif record is None or not _pid_alive(record.pid) or not record.state_dir.exists():
            with contextlib.suppress(OSError):
                path.unlink()
    return live


def locate_state_dir(settings: Settings) -> Path:
    """The state folder an admin command should use.

    In order: `MLPLANE_STATE_DIR` when set (also when the folder does not exist: the command
    then says what is missing in it), ``./.mlplane`` when it exists, the folder of the one
    running stack, else `StateDirNotFound` saying what to do.
    """
    if "state_dir" in settings.model_fields_set:
        return settings.state_dir
    if DEFAULT_STATE_DIR.is_dir():
        return DEFAULT_STATE_DIR
    stacks = running_stacks()
    if len(stacks) == 1:
        return stacks[0].state_dir
    if len(stacks) > 1:
        folders = "\n".join(f"  MLPLANE_STATE_DIR={s.state_dir}  ({s.gateway_url})" for s in stacks)
        raise StateDirNotFound(
            f"{len(stacks)} mlplane stacks are running; choose one with\n{folders}"
        )
    raise StateDirNotFound(
        "no running mlplane stack found (no ./.mlplane here, none recorded in "
        f"{registry_dir()}): start one with `make up` in the project folder, or point to its "
        "state with MLPLANE_STATE_DIR=/path/to/.mlplane"
    )


def _read(path: Path) -> StackRecord | None:
    try:
        data = json.loads(path.read_text())
        return StackRecord(
            state_dir=Path(data["state_dir"]),
            pid=int(data["pid"]),
            gateway_url=str(data.get("gateway_url", "")),
            started=str(data.get("started", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, though not likely ours
    return True
