"""A crashed worker's scratch folders are removed by the next worker; a live one's never."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.validation.scratch import scratch_prefix, sweep_abandoned


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_folders_of_dead_workers_go_and_live_ones_stay(tmp_path: Path) -> None:
    dead = _dead_pid()
    abandoned = [
        tmp_path / f"mlplane-validation-{dead}-abc",
        tmp_path / f"mlplane-sandbox-{dead}-def",
    ]
    live = tmp_path / f"{scratch_prefix('validation')}ghi"
    unrelated = [tmp_path / "mlplane-validation-notapid", tmp_path / f"other-{dead}-x"]
    for folder in [*abandoned, live, *unrelated]:
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"x")
    assert sorted(sweep_abandoned(tmp_path)) == sorted(abandoned)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [live, *unrelated])


def test_the_prefix_names_the_process() -> None:
    assert scratch_prefix("sandbox") == f"mlplane-sandbox-{os.getpid()}-"
