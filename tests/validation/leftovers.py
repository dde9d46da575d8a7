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
        children = [
            child for child in psutil.Process().children(recursive=True) if child.pid not in before
        ]
        assert not children, f"processes left behind: {children}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
