"""The local half of the object stores: appending pieces to the spool or temporary
file, and an S3 part's body read back from a range of that file. (These bodies take
the pread path used over TLS; over plain http the kernel sends them with sendfile,
which tests/models/test_store_faults.py runs against moto's S3 server.)"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.models import object_store
from services.models.object_store import _SpoolPart, _write_all


def _pieces(count: int) -> list[bytes]:
    # Uneven sizes, some empty, more than one writev batch.
    return [bytes([n % 251]) * (n % 97) for n in range(count)]


def test_pieces_are_appended_in_order(tmp_path: Path) -> None:
    pieces = _pieces(3 * object_store._IOV_BATCH + 5)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    try:
        _write_all(fd, pieces)
        _write_all(fd, [b"tail"])
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
        _write_all(fd, pieces)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    async def write(self, chunk: bytes) -> None:
        self.data += chunk
        self.writes += 1


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[tuple[io.FileIO, bytes]]:
    data = os.urandom(3 * object_store.PART_READ_BYTES + 123)
    (tmp_path / "spool").write_bytes(data)
    with open(tmp_path / "spool", "rb", buffering=0) as file:
        yield file, data


async def test_a_part_sends_its_range_in_bounded_reads(spool: tuple[io.FileIO, bytes]) -> None:
    fd, data = spool
    offset, length = 1000, 2 * object_store.PART_READ_BYTES + 77
    part = _SpoolPart(fd, offset, length)
    assert len(part) == part.size == length
    sink = _Collect()
    await part.write_with_length(sink, None)  # type: ignore[arg-type]
    assert bytes(sink.data) == data[offset : offset + length]
    assert sink.writes == 3  # at most PART_READ_BYTES held at a time
    # A retry sends the same bytes again, from the part's first byte.
    again = _Collect()
    await part.write(again)  # type: ignore[arg-type]
    assert again.data == sink.data


async def test_a_part_honours_a_shorter_content_length(spool: tuple[io.FileIO, bytes]) -> None:
    fd, data = spool
    sink = _Collect()
    await _SpoolPart(fd, 5, 100).write_with_length(sink, 40)  # type: ignore[arg-type]
    assert bytes(sink.data) == data[5:45]


def test_a_part_reads_like_a_file(spool: tuple[io.FileIO, bytes]) -> None:
    fd, data = spool
    part = _SpoolPart(fd, 10, 50)
    assert part.read(20) == data[10:30]
    assert part.tell() == 20
    assert part.read() == data[30:60]
    assert part.read() == b""
    assert part.seek(0) == 0
    assert part.read(5) == data[10:15]
    assert part.seek(-10, io.SEEK_END) == 40
    assert part.read() == data[50:60]


async def test_a_spool_shorter_than_its_part_is_an_error(spool: tuple[io.FileIO, bytes]) -> None:
    fd, data = spool
    part = _SpoolPart(fd, len(data) - 10, 100)
    with pytest.raises(OSError, match="ends 90 bytes before"):
        await part.write_with_length(_Collect(), None)  # type: ignore[arg-type]
