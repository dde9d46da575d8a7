"""The SDK's progress bar: rows and MB/s for exports, bytes for files, silent when off."""

from __future__ import annotations

import warnings

import pytest

from mlplane_client._progress import Progress


def test_export_bar_shows_rows_and_rate(capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "IProgress not found" fallback warning
        bar = Progress(True, desc="pump-001", rows=True)
        bar.update(rows=32768, nbytes=2_000_000)
        bar.close()
    err = capsys.readouterr().err
    assert "pump-001" in err
    assert "32.8k rows" in err
    assert "MB/s" in err


def test_file_bar_counts_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(True, desc="upload", total=3 * 1024 * 1024, rows=False)
    bar.update(nbytes=3 * 1024 * 1024)
    bar.close()
    assert "3.00M/3.00M" in capsys.readouterr().err


def test_disabled_bar_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(False, desc="quiet", rows=True)
    bar.update(rows=10, nbytes=100)
    bar.close()
    assert capsys.readouterr().err == ""
