"""Scratch folders of the validation worker and its sandbox, and what a crashed worker left.

A worker downloads each model into a folder of its own and every sandboxed child works in
another (both under the system's temporary directory unless told otherwise). Both are removed
when the job ends, whatever happened; but a worker killed mid-job (SIGKILL, the node going
down) cannot. Their names carry the creating process's id, so a worker starting next removes
the folders of processes that no longer exist, and never one of a live worker beside it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("mlplane.validation.scratch")

_OURS = re.compile(r"^mlplane-(?:validation|sandbox)-(\d+)-")


def scratch_prefix(kind: str) -> str:
    """`mlplane-validation-<pid>-` / `mlplane-sandbox-<pid>-`: whose folder it is."""
    return f"mlplane-{kind}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to judge
        return True
    return True


def sweep_abandoned(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders of worker processes that are gone; return them."""
    folder = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _OURS.match(entry.name)
        if match is None or not entry.is_dir() or _alive(int(match.group(1))):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    if removed:
        log.warning("removed %d scratch folders of validation workers that died", len(removed))
    return removed
