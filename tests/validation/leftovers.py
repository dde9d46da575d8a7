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
    try:
        yield root
        left = sorted(path.name for path in root.iterdir())
        assert not left, f"scratch left behind: {left}"
        children = psutil.Process().children(recursive=True)
        assert not children, f"processes left behind: {children}"
    finally:
        shutil.rmtree(root, ignore_errors=True)
