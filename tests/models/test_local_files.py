"""An upload's local file (pieces appended with writev) and the S3 spool files kept
for reuse between uploads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.common.errors import ServiceError
from services.models import local_files
from services.models.local_files import LocalFile, SpoolFiles, write_all
from services.models.onnx_validation import validate_onnx_file
from tests.models.onnx_models import linear_model


# --- appending pieces -------------------------------------------------------------------
def _pieces(count: int) -> list[bytes]:
    # Uneven sizes, some empty, more than one writev batch.
    return [bytes([n % 251]) * (n % 97) for n in range(count)]


def test_pieces_are_appended_in_order(tmp_path: Path) -> None:
    pieces = _pieces(3 * local_files.IOV_BATCH + 5)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        assert write_all(fd, pieces) == sum(map(len, pieces))
        write_all(fd, [b"tail"])
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces) + b"tail"


def test_a_short_write_is_finished(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A full disk can stop writev part-way; the rest must still be written, in order.
    real_writev = os.writev

    def short_writev(fd: int, buffers: list[bytes]) -> int:
        joined = b"".join(buffers)
        return real_writev(fd, [joined[: max(1, len(joined) // 3)]])

    monkeypatch.setattr(os, "writev", short_writev)
    pieces = [b"a" * 10, b"b" * 1000, b"c" * 7, b"d" * 4096]
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        assert write_all(fd, pieces) == 5113
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)


def test_a_local_file_counts_what_it_wrote(tmp_path: Path) -> None:
    file = LocalFile(tmp_path / "f")
    file.write([b"abc", b"", b"defg"])
    file.write([b"h"])
    assert file.size == 8
    file.remove()
    assert not (tmp_path / "f").exists()
    with pytest.raises(OSError, match="already closed"):
        file.write([b"late"])


# --- spool files kept for reuse ---------------------------------------------------------
def _in_progress(spools: SpoolFiles) -> list[Path]:
    return sorted(p for p in spools.directory.iterdir() if p.is_file())


def _idle_on_disk(spools: SpoolFiles) -> list[Path]:
    idle_dir = spools.directory / local_files.IDLE_DIR
    return sorted(idle_dir.iterdir()) if idle_dir.is_dir() else []


def test_a_committed_spool_is_kept_and_overwritten_by_the_next_upload(tmp_path: Path) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=2)
    first = spools.take()
    first.write([b"x" * 10_000])
    inode = os.stat(first.path).st_ino
    spools.keep_or_remove(first)
    assert _in_progress(spools) == []
    assert _idle_on_disk(spools) == spools.idle()
    assert len(spools.idle()) == 1

    second = spools.take()
    assert second.path.parent == spools.directory
    assert second.path != first.path
    assert os.stat(second.path).st_ino == inode  # the same file, its pages still cached
    assert _idle_on_disk(spools) == []
    assert spools.idle() == []
    second.write([b"y" * 3_000])
    # Overwritten from the start; the earlier, larger upload's tail stays, so its
    # pages are there for the next large upload (readers stop at the upload's end).
    assert second.path.read_bytes() == b"y" * 3_000 + b"x" * 7_000
    spools.keep_or_remove(second)
    (kept,) = spools.idle()
    assert kept.stat().st_size == 10_000


def test_the_largest_idle_spool_is_taken_first(tmp_path: Path) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=3)
    files = [spools.take() for _ in range(3)]
    for size, file in zip([300, 900, 100], files, strict=True):
        file.write([b"s" * size])
    for file in files:
        spools.keep_or_remove(file)
    taken = [spools.take() for _ in range(3)]
    assert [os.stat(f.path).st_size for f in taken] == [900, 300, 100]


def test_no_more_than_keep_spools_stay_idle(tmp_path: Path) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=2)
    files = [spools.take() for _ in range(3)]
    assert len({f.path for f in files}) == 3
    for file in files:
        file.write([b"z" * 100])
        spools.keep_or_remove(file)
    assert len(spools.idle()) == 2
    assert _idle_on_disk(spools) == sorted(spools.idle())
    assert _in_progress(spools) == []
    spools.close()
    assert spools.idle() == []
    assert _idle_on_disk(spools) == []
    # A commit that finishes while the store closes is not kept.
    late = spools.take()
    late.write([b"z"])
    spools.keep_or_remove(late)
    assert _idle_on_disk(spools) == []
    assert _in_progress(spools) == []


def test_a_new_process_deletes_the_idle_spools_it_finds(tmp_path: Path) -> None:
    before = SpoolFiles(tmp_path / "spool", keep=2)
    file = before.take()
    file.write([b"from a process that crashed"])
    before.keep_or_remove(file)
    after = SpoolFiles(tmp_path / "spool", keep=2)
    after.clear_idle()
    assert _idle_on_disk(after) == []
    # The old process, had it lived on sharing the directory, makes a new file.
    fresh = before.take()
    assert fresh.path.stat().st_size == 0
    assert _idle_on_disk(before) == []
    assert before.idle() == []


@pytest.mark.parametrize("keep", [0, 2])
def test_spools_that_are_not_kept_are_deleted(tmp_path: Path, keep: int) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=keep)
    empty = spools.take()
    spools.keep_or_remove(empty)  # nothing written: nothing worth keeping
    written, failed = spools.take(), spools.take()
    written.write([b"w" * 100])
    failed.write([b"f" * 100])
    failed.remove()  # a failed upload's spool is never kept
    spools.keep_or_remove(written)
    assert _in_progress(spools) == []
    assert len(_idle_on_disk(spools)) == (1 if keep else 0)


def test_an_idle_spool_removed_behind_our_back_is_replaced(tmp_path: Path) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=2)
    file = spools.take()
    file.write([b"a" * 10])
    spools.keep_or_remove(file)
    for path in _idle_on_disk(spools):
        path.unlink()  # an operator cleaning the directory
    fresh = spools.take()
    fresh.write([b"b"])
    assert fresh.path.read_bytes() == b"b"
    fresh.remove()
    assert _in_progress(spools) == []


def test_an_idle_spool_that_cannot_be_taken_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=2)
    file = spools.take()
    file.write([b"a" * 10])
    spools.keep_or_remove(file)

    def refused(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)
    fresh = spools.take()
    assert fresh.path.stat().st_size == 0
    assert _idle_on_disk(spools) == []
    assert spools.idle() == []
    assert _in_progress(spools) == [fresh.path]


def test_validation_stops_at_the_upload_s_end_in_a_reused_spool(tmp_path: Path) -> None:
    model = linear_model(1000)
    spools = SpoolFiles(tmp_path / "spool", keep=1)
    bigger = spools.take()
    bigger.write([model + b"\x00" * 4096])
    spools.keep_or_remove(bigger)
    spool = spools.take()
    spool.write([model])
    # The file still ends in the earlier upload's bytes: reading to its end fails...
    with pytest.raises(ServiceError) as refused:
        validate_onnx_file(spool.path)
    assert refused.value.reason == "NOT_ONNX"
    # ...reading to where this upload ends does not.
    signature = validate_onnx_file(spool.path, spool.size)
    assert signature.inputs
    assert sorted(p.name for p in spools.directory.iterdir() if p.is_file()) == [spool.path.name]
