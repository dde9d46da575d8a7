"""The local half of the object stores: writers and their local file (the folder
store's temporary file, S3's spool) and an S3 part's body sent from a range of it, over a
real loopback socket (sendfile) and through the read path TLS takes. The S3 side
proper runs against SeaweedFS in tests/models/test_object_store_s3*.py and
tests/models/test_store_faults.py; here a stand-in S3 client injects the faults a
real server will not produce on cue."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import io
import os
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web

from services.common.errors import ServiceError
from services.common.settings import Settings
from services.models import object_store
from services.models.local_files import IDLE_DIR, SpoolFiles
from services.models.object_store import (
    FolderStore,
    ObjectWriter,
    S3Store,
    _S3Writer,
    _SpoolPart,
)

KEY = "demo/m-1/1.onnx"


# --- writers: a cancelled upload's last write -------------------------------------------
class FakeS3Client:
    """Records calls; `fail_parts` makes every upload_part fail after `delay`."""

    def __init__(self, *, fail_parts: bool = False, delay: float = 0.0) -> None:
        self.fail_parts = fail_parts
        self.delay = delay
        self.calls: list[str] = []
        # What real S3 checks and moto does not: each part's bytes against its CRC32.
        self.parts: dict[int, bytes] = {}
        self.bad_checksums: list[int] = []

    async def upload_part(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(f"upload_part {kwargs['PartNumber']}")
        body = kwargs["Body"].read()
        self.parts[kwargs["PartNumber"]] = body
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        if kwargs["ChecksumCRC32"] != crc:
            self.bad_checksums.append(kwargs["PartNumber"])
        await asyncio.sleep(self.delay)
        if self.fail_parts:
            raise ConnectionError(f"store gone (part {kwargs['PartNumber']})")
        return {"ETag": f'"{kwargs["PartNumber"]}"'}

    async def abort_multipart_upload(self, **kwargs: Any) -> None:
        self.calls.append("abort_multipart_upload")

    async def complete_multipart_upload(self, **kwargs: Any) -> None:
        self.calls.append("complete_multipart_upload")

    async def delete_object(self, **kwargs: Any) -> None:
        self.calls.append("delete_object")


def _s3_writer(
    tmp_path: Path, client: FakeS3Client, part_size: int = 1024, spools: SpoolFiles | None = None
) -> _S3Writer:
    spools = spools or SpoolFiles(tmp_path / "spool", keep=0)
    return _S3Writer(
        client,
        "bucket",
        KEY,
        "upload-1",
        spools.take(),
        spools,
        part_size=part_size,
        parts_in_flight=2,
    )


async def _folder_writer(tmp_path: Path) -> ObjectWriter:
    return await FolderStore(tmp_path / "objects").writer(KEY)


async def _s3_fake_writer(tmp_path: Path) -> ObjectWriter:
    return _s3_writer(tmp_path, FakeS3Client())


WRITERS: dict[str, Callable[[Path], Awaitable[ObjectWriter]]] = {
    "folder": _folder_writer,
    "s3": _s3_fake_writer,
}


# --- S3 parts ---------------------------------------------------------------------------
async def test_opening_the_s3_store_deletes_idle_spools_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = Settings(
        state_dir=tmp_path, store="s3", s3_bucket="b", s3_endpoint_url="http://127.0.0.1:9"
    )
    left = settings.spool_dir / IDLE_DIR / "crashed.onnx"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"a model from a process that crashed")
    store = await S3Store.open(settings)  # opening connects nowhere
    try:
        assert not left.exists()
    finally:
        await store.close()


@pytest.mark.parametrize("total", [3 * 1024, 3 * 1024 + 5, 700])
async def test_parts_are_cut_at_exactly_the_part_size(tmp_path: Path, total: int) -> None:
    client = FakeS3Client()
    writer = _s3_writer(tmp_path, client, part_size=1024)
    data = os.urandom(total)
    pieces = [data[start : start + 700] for start in range(0, total, 700)]  # straddling
    for start in range(0, len(pieces), 2):
        await asyncio.to_thread(writer.write, pieces[start : start + 2])
        await writer.written()
    await writer.commit()
    sizes = [len(client.parts[n]) for n in sorted(client.parts)]
    # Every part but the last is exactly the part size; no empty part after an exact fit.
    assert sizes == [1024] * (total // 1024) + ([total % 1024] if total % 1024 else [])
    assert b"".join(client.parts[n] for n in sorted(client.parts)) == data
    assert client.bad_checksums == []
    await writer.release()


async def test_a_released_spool_is_kept_and_an_aborted_one_deleted(tmp_path: Path) -> None:
    spools = SpoolFiles(tmp_path / "spool", keep=2)
    # Each upload takes the spool the one before kept, if any.
    for outcome, idle_after in [("release", 1), ("abort after commit", 0), ("abort", 0)]:
        client = FakeS3Client()
        writer = _s3_writer(tmp_path, client, spools=spools)
        await asyncio.to_thread(writer.write, [b"m" * 2000])
        await writer.written()
        if outcome != "abort":
            await writer.commit()
        await (writer.release() if outcome == "release" else writer.abort())
        if outcome == "abort after commit":
            # The version row failed after the object landed: both go.
            assert client.calls[-1] == "delete_object"
        assert len(spools.idle()) == idle_after, outcome
        assert [p for p in spools.directory.iterdir() if p.is_file()] == []


@pytest.mark.parametrize("kind", sorted(WRITERS))
async def test_abort_waits_for_a_write_still_running_in_its_thread(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await WRITERS[kind](tmp_path)
    real_writev = os.writev
    in_write = threading.Event()

    def slow_writev(fd: int, buffers: list[bytes]) -> int:
        in_write.set()
        time.sleep(0.3)
        return real_writev(fd, buffers)

    monkeypatch.setattr(os, "writev", slow_writev)
    write = asyncio.ensure_future(asyncio.to_thread(writer.write, [b"x" * 18_000]))
    assert await asyncio.to_thread(in_write.wait, 5)
    write.cancel()  # the client went away; the thread cannot be stopped
    await writer.abort()
    # The file opened next may get the closed descriptor's number: nothing of the
    # cancelled upload may land in it.
    other = tmp_path / "someone-else"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT)
    try:
        await asyncio.sleep(0.5)
    finally:
        os.close(fd)
    assert other.read_bytes() == b""
    assert not writer.local_path.exists()
    with pytest.raises(OSError, match="already closed"):
        writer.write([b"late"])


async def test_a_folder_commit_cancelled_in_its_thread_leaves_no_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await _folder_writer(tmp_path)
    writer.write([b"model bytes"])
    real_replace = os.replace
    in_commit = threading.Event()

    def slow_replace(src: Any, dst: Any) -> None:
        in_commit.set()
        time.sleep(0.3)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", slow_replace)
    commit = asyncio.ensure_future(writer.commit())
    assert await asyncio.to_thread(in_commit.wait, 5)
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    await writer.abort()  # as the upload does when its commit did not return
    assert [p for p in (tmp_path / "objects").rglob("*") if p.is_file()] == []


async def test_parts_failing_together_are_all_collected_and_abort_runs_once(
    tmp_path: Path,
) -> None:
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    client = FakeS3Client(fail_parts=True, delay=0.05)
    writer = _s3_writer(tmp_path, client, part_size=1024)
    with pytest.raises(ServiceError) as error:
        for _ in range(4):
            writer.write([b"p" * 1024])
            await writer.written()
    assert error.value.reason == "OBJECT_STORE_UNAVAILABLE"
    await writer.abort()  # the upload aborts again on its way out: a no-op
    assert client.calls.count("abort_multipart_upload") == 1
    assert not writer.local_path.exists()
    del writer
    gc.collect()
    await asyncio.sleep(0)
    assert [c.get("message") for c in unretrieved] == []


async def test_a_completion_cancelled_after_it_landed_is_deleted(tmp_path: Path) -> None:
    client = FakeS3Client()
    writer = _s3_writer(tmp_path, client)
    writer.write([b"m" * 100])
    landed = asyncio.Event()
    hold = asyncio.Event()

    async def complete_then_hang(**kwargs: Any) -> None:
        client.calls.append("complete_multipart_upload")
        landed.set()
        await hold.wait()  # the store completed; its answer never arrives

    client.complete_multipart_upload = complete_then_hang  # type: ignore[method-assign]
    commit = asyncio.ensure_future(writer.commit())
    await landed.wait()
    commit.cancel()
    with pytest.raises(asyncio.CancelledError):
        await commit
    await writer.abort()
    assert client.calls[-2:] == ["abort_multipart_upload", "delete_object"]
    assert not writer.local_path.exists()


# --- a part's body -------------------------------------------------------------------------
class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    async def write(self, chunk: bytes) -> None:
        self.data += chunk
        self.writes += 1


@pytest.fixture
def spool(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(3 * object_store.PART_READ_BYTES + 123)
    (tmp_path / "spool").write_bytes(data)
    return tmp_path / "spool", data


async def test_the_read_path_sends_the_range_in_bounded_reads(
    spool: tuple[Path, bytes],
) -> None:
    path, data = spool
    offset, length = 1000, 2 * object_store.PART_READ_BYTES + 77
    part = _SpoolPart(path, offset, length)
    assert len(part) == part.size == length
    sink = _Collect()
    await part.write_with_length(sink, None)  # type: ignore[arg-type]
    assert bytes(sink.data) == data[offset : offset + length]
    assert sink.writes == 3  # at most PART_READ_BYTES held at a time
    # A retry sends the same bytes again, from the part's first byte.
    again = _Collect()
    await part.write(again)  # type: ignore[arg-type]
    assert again.data == sink.data


async def test_a_part_honours_a_shorter_content_length(spool: tuple[Path, bytes]) -> None:
    path, data = spool
    sink = _Collect()
    await _SpoolPart(path, 5, 100).write_with_length(sink, 40)  # type: ignore[arg-type]
    assert bytes(sink.data) == data[5:45]


def test_a_part_reads_like_a_file(spool: tuple[Path, bytes]) -> None:
    path, data = spool
    part = _SpoolPart(path, 10, 50)
    assert part.read(20) == data[10:30]
    assert part.tell() == 20
    assert part.read() == data[30:60]
    assert part.read(None) == b""
    assert part.seek(0) == 0
    assert part.read(5) == data[10:15]
    assert part.seek(-10, io.SEEK_END) == 40
    assert part.read() == data[50:60]
    with pytest.raises(ValueError, match="invalid whence"):
        part.seek(0, 7)


async def test_a_spool_shorter_than_its_part_is_an_error(spool: tuple[Path, bytes]) -> None:
    path, data = spool
    part = _SpoolPart(path, len(data) - 10, 100)
    with pytest.raises(OSError, match="ends 90 bytes before"):
        await part.write_with_length(_Collect(), None)  # type: ignore[arg-type]


@pytest.fixture
async def echo_server() -> AsyncIterator[str]:
    """A loopback HTTP server answering each PUT with its body's length and SHA-256."""

    async def put(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "chunked": request.headers.get("Transfer-Encoding") == "chunked",
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_put("/part", put)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/part"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("options", "sendfile_used"),
    [
        ({}, True),
        ({"expect100": True}, True),  # as botocore sends parts: Expect: 100-continue
        ({"chunked": True}, False),  # framing between body and socket: read path
    ],
)
async def test_a_part_goes_over_a_real_socket_whole(
    echo_server: str,
    spool: tuple[Path, bytes],
    monkeypatch: pytest.MonkeyPatch,
    options: dict[str, Any],
    sendfile_used: bool,
) -> None:
    path, data = spool
    offset, length = 4321, 2 * object_store.PART_READ_BYTES + 999
    loop = asyncio.get_running_loop()
    sent_by_sendfile: list[int] = []
    real_sendfile = loop.sendfile

    async def counting_sendfile(*args: Any, **kwargs: Any) -> int:
        sent = await real_sendfile(*args, **kwargs)
        sent_by_sendfile.append(sent)
        return sent

    monkeypatch.setattr(loop, "sendfile", counting_sendfile)
    async with ClientSession() as session:
        for _attempt in range(2):  # the same body twice, as a retry sends it
            body = _SpoolPart(path, offset, length)
            async with session.put(echo_server, data=body, **options) as response:
                got = await response.json()
            assert got["length"] == length
            assert got["sha256"] == hashlib.sha256(data[offset : offset + length]).hexdigest()
            assert got["chunked"] == options.get("chunked", False)
    assert sent_by_sendfile == ([length, length] if sendfile_used else [])
