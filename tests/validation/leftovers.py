"""Every sandbox test checks that nothing is left behind: no child process, no scratch file.

Use: `scratch_root = pytest.fixture(nothing_left_behind)` in a test module.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil


def nothing_left_behind() -> Iterator[Path]:
    """Where the runs make their scratch directories; must be empty again after each test."""
    root = Path(tempfile.mkdtemp(prefix="mlplane-sandbox-test-"))
    # In the whole suite the test process already runs stacks of other tests' fixtures.
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    try:
        yield root
        left = sorted(path.name for path in root.iterdir())
        assert not left, f"scratch left behind: {left}"
        # Only what this test started: the session's stacks fork processes of their own at any
        # time (a PostgreSQL backend for a new connection, an autovacuum worker).
        children = [
            child
            for child in psutil.Process().children(recursive=True)
            if child.pid not in before and not _descends_from(child, before)
        ]
        assert not children, f"processes left behind: {children}"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _descends_from(process: psutil.Process, ancestors: set[int]) -> bool:
    try:
        return any(parent.pid in ancestors for parent in process.parents())
    except psutil.Error:  # gone meanwhile: not left behind
        return True
