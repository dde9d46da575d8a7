"""Upload ordering under faults, for both stores: the folder store and S3
(SeaweedFS, a real S3 server on loopback: tests/s3_server.py). Whatever fails,
afterwards there is no version row, no object, no open multipart upload and no
local file (the folder store's temporary file, S3's spool).

No moto here: every S3 fault these tests need, SeaweedFS produces for real (a
store down, a store killed mid-upload and back with its state); the faults it
cannot produce on cue (several parts failing together, a completion cancelled
after it landed) are injected into a stand-in client in test_object_store_local.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc import aio
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc
from sqlalchemy.engine import make_url

from services.common.devkeys import ensure_dev_keys
from services.common.errors import unavailable
from services.common.server import RunningServer, start_server
from services.common.settings import Settings
from services.models import local_files
from services.models.local_files import IDLE_DIR
from services.models.object_store import s3_writer
from services.models.repository import RegistryRepository
from services.models.service import models_spec
from services.models.upload import BLOCK_BYTES
from services.stack.postgres import EmbeddedPostgres
from tests.models.conftest import RegistryDatabase
from tests.models.onnx_models import linear_model
from tests.polling import poll_until, wait_until
from tests.s3_server import S3Bucket
from tests.tokens import Tokens

pytestmark = pytest.mark.stack

BUCKET = "mlplane-models"
PART_BYTES = 5 * 1024 * 1024
# Mid-upload faults strike once the service has written this much locally: for
# S3 the first part (sent once a 4 MiB block takes the spool past PART_BYTES)
# is then sent or in flight. The client has sent more than that.
STARTED_PART = -(-PART_BYTES // BLOCK_BYTES) * BLOCK_BYTES
SENT_FIRST = STARTED_PART + BLOCK_BYTES + 1024


@dataclass
class Rig:
    backend: str
    server: RunningServer
    pg: EmbeddedPostgres  # the module's (tests/models/conftest.py), shared by its tests
    admin_dsn: str  # the superuser in this test's own database
    settings: Settings
    tokens: Tokens
    s3: S3Bucket | None

    async def download(self, model_id: str, version: int) -> bytes:
        async with aio.insecure_channel(f"127.0.0.1:{self.server.grpc_port}") as channel:
            token = self.tokens.valid("data_scientist")
            call = pb_grpc.ModelRegistryStub(channel).DownloadModelVersion(
                pb.DownloadModelVersionRequest(model_id=model_id, version=version),
                metadata=(("authorization", f"Bearer {token}"),),
            )
            return b"".join([body.data async for body in call])

    async def upload(self, name: str, data: bytes) -> pb.ModelVersion:
        def requests() -> Iterator[pb.UploadModelRequest]:
            yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name=name))
            for start in range(0, len(data), 4096):
                yield pb.UploadModelRequest(chunk=data[start : start + 4096])

        return await self.call_upload(requests())

    async def call_upload(self, requests: Iterator[pb.UploadModelRequest]) -> pb.ModelVersion:
        """The sync client in a thread (the server runs on this loop): when the service
        refuses a stream the client is still sending, grpc.aio's client can report
        INTERNAL ("Failed execute_batch") instead of the service's status."""

        def call() -> pb.ModelVersion:
            with grpc.insecure_channel(f"127.0.0.1:{self.server.grpc_port}") as channel:
                token = self.tokens.valid("data_scientist")
                version: pb.ModelVersion = pb_grpc.ModelRegistryStub(channel).UploadModel(
                    requests, metadata=(("authorization", f"Bearer {token}"),), timeout=60
                )
                return version

        return await asyncio.to_thread(call)

    def objects(self) -> list[str]:
        if self.s3 is not None:
            return self.s3.keys()
        root = self.settings.object_store_dir
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def local_files(self) -> list[Path]:
        """Upload files in progress: S3's spool and the folder store's temporary files
        (not the idle spools kept for the next uploads)."""
        places = [self.settings.spool_dir, self.settings.object_store_dir / ".incoming"]
        return sorted(
            f for place in places if place.is_dir() for f in place.iterdir() if f.is_file()
        )

    def idle_spools(self) -> list[Path]:
        idle = self.settings.spool_dir / IDLE_DIR
        return sorted(idle.iterdir()) if idle.is_dir() else []

    def open_multipart_uploads(self) -> int:
        return 0 if self.s3 is None else self.s3.open_uploads()

    async def upload_outcomes(self) -> list[str]:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            rows = await conn.fetch(
                "SELECT outcome FROM audit_log WHERE action = 'model.upload' ORDER BY audit_pk"
            )
            return [row["outcome"] for row in rows]
        finally:
            await conn.close()

    async def version_rows(self) -> int:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM model_versions"))
        finally:
            await conn.close()


@pytest.fixture(params=["folder", "s3"])
async def rig(request: pytest.FixtureRequest, database: RegistryDatabase) -> AsyncIterator[Rig]:
    """The "s3" rig uses the session's SeaweedFS, its bucket emptied after the test;
    "s3-own" a SeaweedFS of the test's own, for tests that stop or kill the store. Each test
    has a database of its own, copied from the module's migrated one (`CREATE DATABASE …
    TEMPLATE`: a tenth of a second, where a PostgreSQL of its own and the migrations took
    seconds), on the module's PostgreSQL."""
    backend: str = request.param
    s3: S3Bucket | None = None
    if backend == "s3":
        s3 = request.getfixturevalue("s3_bucket")
    elif backend == "s3-own":
        s3 = request.getfixturevalue("private_seaweedfs")
        backend = "s3"
    root = Path(tempfile.mkdtemp(prefix="mlplane-store-"))
    name = f"store_{uuid.uuid4().hex[:16]}"
    template = make_url(database.admin_dsn).database
    await _admin(database, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    server: RunningServer | None = None
    try:
        overrides: dict[str, Any] = {}
        if s3 is not None:
            assert s3.name == BUCKET
            # S3's smallest part: a few MB make several parts, some in flight at once.
            overrides = {**s3.settings(), "s3_part_size_bytes": PART_BYTES}
        registry = make_url(database.settings.registry_database_url or "").set(database=name)
        settings = Settings(
            state_dir=root / "state",
            registry_database_url=registry.render_as_string(hide_password=False),
            db_connect_timeout_seconds=2.0,
            **overrides,
        )
        ensure_dev_keys(settings)
        server = await start_server(
            settings, models_spec(settings), listen="127.0.0.1:0", metrics_port=0
        )
        admin_dsn = make_url(database.admin_dsn).set(database=name)
        yield Rig(
            backend,
            server,
            database.pg,
            admin_dsn.render_as_string(hide_password=False),
            settings,
            Tokens(settings),
            s3,
        )
    finally:
        if server is not None:
            await server.stop(1)
        await _admin(database, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)


async def _admin(database: RegistryDatabase, statement: str) -> None:
    """A statement of the superuser's, from the maintenance database `postgres`."""
    dsn = make_url(database.admin_dsn).set(database="postgres")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_upload_stores_object_and_row(rig: Rig) -> None:
    version = await rig.upload("pump-bearing", linear_model(2048))
    assert version.version == 1
    assert rig.objects() == [f"demo/{version.model_id}/1.onnx"]
    assert await rig.version_rows() == 1
    assert rig.open_multipart_uploads() == 0
    assert rig.local_files() == []
    if rig.backend == "s3":
        assert rig.s3 is not None
        head = rig.s3.client.head_object(Bucket=BUCKET, Key=f"demo/{version.model_id}/1.onnx")
        assert head["ServerSideEncryption"] == "AES256"
        assert head["ContentLength"] == version.size_bytes


async def test_a_committed_spool_is_kept_for_the_next_upload(rig: Rig) -> None:
    big = linear_model(5_000_000)  # ~20 MB: four parts
    first = await rig.upload("pump-bearing", big)
    if rig.backend == "folder":
        assert rig.idle_spools() == []  # its temporary file became the object
        return
    (idle,) = rig.idle_spools()
    assert idle.stat().st_size == first.size_bytes
    inode = idle.stat().st_ino
    # Smaller, in several parts, the last one short: it overwrites the spool's head,
    # and the first upload's bytes after its end must reach neither S3 nor validation.
    small = linear_model(3_000_000)
    assert len(small) % PART_BYTES
    second = await rig.upload("pump-bearing", small)
    assert (second.version, second.size_bytes) == (2, len(small))
    assert await rig.download(second.model_id, 2) == small
    assert await rig.download(first.model_id, 1) == big
    (idle,) = rig.idle_spools()
    assert (idle.stat().st_ino, idle.stat().st_size) == (inode, first.size_bytes)
    assert rig.local_files() == []
    # A rejected upload's spool is deleted, not kept.
    with pytest.raises(grpc.RpcError):
        await rig.upload("garbage", b"\x08\x07" + bytes(range(250)) * 100)
    assert rig.idle_spools() == []
    assert rig.local_files() == []


async def test_invalid_model_leaves_nothing(rig: Rig) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        await rig.upload("garbage", b"\x08\x07" + bytes(range(250)) * 100)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rig.objects() == []
    assert await rig.version_rows() == 0
    assert rig.open_multipart_uploads() == 0
    assert rig.local_files() == []


@pytest.mark.parametrize("rig", ["folder", "s3-own"], indirect=True)
async def test_store_down_is_unavailable_and_leaves_no_row(rig: Rig) -> None:
    if rig.s3 is not None:
        rig.s3.server.kill()
    else:
        # A file where the store's folder should be: every write fails.
        shutil.rmtree(rig.settings.object_store_dir)
        rig.settings.object_store_dir.write_text("not a folder")
    with pytest.raises(grpc.RpcError) as caught:
        await rig.upload("no-store", linear_model(64))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "model store is unavailable" in (caught.value.details() or "")
    assert await rig.version_rows() == 0
    assert rig.local_files() == []


async def test_database_down_is_unavailable_and_stores_nothing(rig: Rig) -> None:
    rig.pg.stop()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            await rig.upload("no-db", linear_model(64))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        assert rig.objects() == []
        assert rig.open_multipart_uploads() == 0
        assert rig.local_files() == []
    finally:
        rig.pg.start()
    assert await rig.version_rows() == 0


async def test_row_failure_after_store_removes_the_object(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The one fault a real database will not produce on cue: the insert fails
    # after the object was committed.
    async def failing_record(self: RegistryRepository, *args: Any, **kwargs: Any) -> None:
        raise unavailable("DATABASE_UNAVAILABLE", "injected: the version insert failed")

    monkeypatch.setattr(RegistryRepository, "record_version", failing_record)
    with pytest.raises(grpc.RpcError) as caught:
        await rig.upload("half-stored", linear_model(64))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    await asyncio.sleep(0)
    assert rig.objects() == []
    assert await rig.version_rows() == 0
    assert rig.local_files() == []
    assert rig.idle_spools() == []  # a failed upload's spool is not kept


async def test_a_row_that_committed_before_the_failure_keeps_its_object(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reply to COMMIT is lost (or the call is cancelled) after the row landed:
    # the object must stay with the row it belongs to.
    real_record = RegistryRepository.record_version

    async def lost_reply(self: RegistryRepository, *args: Any, **kwargs: Any) -> None:
        await real_record(self, *args, **kwargs)
        raise unavailable("DATABASE_UNAVAILABLE", "injected: the reply to COMMIT was lost")

    monkeypatch.setattr(RegistryRepository, "record_version", lost_reply)
    with pytest.raises(grpc.RpcError) as caught:
        await rig.upload("recorded", linear_model(64))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await rig.version_rows() == 1
    (key,) = rig.objects()
    assert key.endswith("/1.onnx")
    assert rig.local_files() == []
    assert len(rig.idle_spools()) == (1 if rig.backend == "s3" else 0)


async def test_multi_part_upload_round_trips(rig: Rig) -> None:
    data = linear_model(5_000_000)  # ~20 MB: four S3 parts, three in flight at once
    version = await rig.upload("big-model", data)
    assert version.size_bytes == len(data)
    received = await rig.download(version.model_id, 1)
    assert (
        hashlib.sha256(received).hexdigest() == version.sha256 == hashlib.sha256(data).hexdigest()
    )
    assert rig.open_multipart_uploads() == 0
    assert rig.local_files() == []
    if rig.backend == "s3":
        assert rig.s3 is not None
        head = rig.s3.client.head_object(
            Bucket=BUCKET, Key=f"demo/{version.model_id}/1.onnx", ChecksumMode="ENABLED"
        )
        # A multipart object's ETag ends in its part count: parts of exactly
        # PART_BYTES, and the rest in the last.
        assert int(head["ETag"].strip('"').rsplit("-", 1)[1]) == -(-len(data) // PART_BYTES) == 4
        assert head.get("ChecksumCRC32"), head


def _chunks(data: bytes, size: int = 1024 * 1024) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def _local_bytes(rig: Rig) -> int:
    total = 0
    for file in rig.local_files():
        with contextlib.suppress(FileNotFoundError):  # removed since it was listed
            total += file.stat().st_size
    return total


async def test_client_gone_mid_upload_leaves_nothing(rig: Rig) -> None:
    data = linear_model(5_000_000)
    hang = asyncio.Event()

    async def requests() -> AsyncIterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name="gone"))
        for chunk in _chunks(data[:SENT_FIRST]):
            yield pb.UploadModelRequest(chunk=chunk)
        await hang.wait()  # the client stalls mid-file, then goes away

    async with aio.insecure_channel(f"127.0.0.1:{rig.server.grpc_port}") as channel:
        token = rig.tokens.valid("data_scientist")
        call = pb_grpc.ModelRegistryStub(channel).UploadModel(
            requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=60
        )

        async def received() -> bool:
            return _local_bytes(rig) >= STARTED_PART

        await wait_until(received, "the first part reaches the service")
        call.cancel()

    async def clean() -> bool:
        return rig.local_files() == [] and rig.open_multipart_uploads() == 0

    await wait_until(clean, "the local file and the multipart upload are gone")
    assert rig.objects() == []
    assert await rig.version_rows() == 0

    async def audited() -> bool:
        return await rig.upload_outcomes() == ["cancelled"]

    await wait_until(audited, "the cancelled upload is audited")


@pytest.mark.parametrize("rig", ["s3-own"], indirect=True)
async def test_store_gone_mid_upload_is_unavailable_and_leaves_nothing(rig: Rig) -> None:
    s3 = rig.s3
    assert s3 is not None
    data = linear_model(5_000_000)

    def requests() -> Iterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name="store-gone"))
        for chunk in _chunks(data[:SENT_FIRST]):
            yield pb.UploadModelRequest(chunk=chunk)
        poll_until(lambda: _local_bytes(rig) >= STARTED_PART, "the first part reaches the service")
        s3.server.kill()  # SIGKILL: gone mid-request, no goodbye
        for chunk in _chunks(data[SENT_FIRST:]):
            yield pb.UploadModelRequest(chunk=chunk)

    with pytest.raises(grpc.RpcError) as caught:
        await rig.call_upload(requests())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "model store is unavailable" in (caught.value.details() or "")
    assert rig.local_files() == []
    assert await rig.version_rows() == 0
    # Back up with the same data folder (on new ports): no object. The multipart
    # upload could not be aborted while the store was down: it stays open (S3
    # lifecycle rules reap those), holding only the parts sent before.
    s3.server.start()
    s3.client = s3.server.client()
    assert rig.objects() == []
    assert rig.open_multipart_uploads() == 1


async def test_local_disk_full_is_unavailable_and_leaves_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full disk under the spool / temporary file, from the second block on: the
    # one fault a real disk will not produce on cue.
    real_write_all = local_files.write_all
    blocks: list[int] = []

    def filling_disk(fd: int, pieces: Sequence[bytes]) -> int:
        blocks.append(len(pieces))
        if len(blocks) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_all(fd, pieces)

    monkeypatch.setattr(local_files, "write_all", filling_disk)
    with pytest.raises(grpc.RpcError) as caught:
        await rig.upload("disk-full", linear_model(5_000_000))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no disk space left" in (caught.value.details() or "")
    assert len(blocks) == 2
    assert rig.local_files() == []
    assert rig.objects() == []
    assert rig.open_multipart_uploads() == 0
    assert await rig.version_rows() == 0
    assert await rig.upload_outcomes() == ["STORAGE_FULL"]


@pytest.mark.parametrize("rig", ["s3"], indirect=True)
async def test_bytes_changed_after_their_checksum_are_refused_and_leave_nothing(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bit flips in the spool between the CRC32 taken as the bytes arrived and the
    # part's send (a bad disk): SeaweedFS checks the CRC32 and refuses the part
    # (moto would have stored it). The caller is told, and nothing is kept.
    real_send = s3_writer._S3Writer._send

    async def flipping_send(
        self: s3_writer._S3Writer, number: int, body: s3_writer._SpoolPart, crc32: str
    ) -> dict[str, Any]:
        if number == 2:
            fd = os.open(body._path, os.O_RDWR)
            try:
                at = body._offset + 100
                os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 0xFF]), at)
            finally:
                os.close(fd)
        return await real_send(self, number, body, crc32)

    monkeypatch.setattr(s3_writer._S3Writer, "_send", flipping_send)
    with pytest.raises(grpc.RpcError) as caught:
        await rig.upload("bit-flip", linear_model(5_000_000))  # four parts
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "did not match their checksum" in (caught.value.details() or "")
    assert await rig.upload_outcomes() == ["OBJECT_STORE_CHECKSUM_MISMATCH"]
    assert rig.objects() == []
    assert rig.open_multipart_uploads() == 0
    assert rig.local_files() == []
    assert rig.idle_spools() == []
    assert await rig.version_rows() == 0
