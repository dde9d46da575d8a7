"""The S3 object store against a real S3 server: SeaweedFS on loopback
(tests/s3_server.py), which checks signatures and the checksum sent with every
body. Put, get, stream and delete; a multipart upload of a large object whose
per-part CRC32s the server keeps; and what happens when the bytes sent are not
the bytes checksummed: the server refuses them, the store says so, and nothing
is left (no object, no open multipart upload, no spool file)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import aioboto3
import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from services.common.errors import ServiceError
from services.common.settings import Settings
from services.models.object_store import READ_CHUNK, S3Store
from services.stack.seaweedfs import SeaweedFS
from tests.s3_server import S3Bucket

PART = 5 * 1024 * 1024  # S3's smallest part
KEY = "demo/m-1/1.onnx"


@pytest.fixture
async def store(s3_bucket: S3Bucket, tmp_path: Path) -> AsyncIterator[S3Store]:
    settings = Settings(
        state_dir=tmp_path, s3_part_size_bytes=PART, s3_parts_in_flight=3, **s3_bucket.settings()
    )
    opened = await S3Store.open(settings)
    try:
        yield opened
    finally:
        await opened.close()


async def _put(store: S3Store, key: str, data: bytes, piece: int = 1024 * 1024) -> None:
    writer = await store.writer(key)
    block = 4 * piece
    for start in range(0, len(data), block):
        pieces = [data[s : s + piece] for s in range(start, min(len(data), start + block), piece)]
        await asyncio.to_thread(writer.write, pieces)
        await writer.written()
    await writer.commit()
    await writer.release()


async def _get(store: S3Store, key: str) -> list[bytes]:
    return [chunk async for chunk in store.read(key)]


def _crc(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def test_seaweedfs_listens_on_loopback_only_on_the_ports_it_was_given(
    seaweedfs: SeaweedFS,
) -> None:
    """`weed mini` binds 0.0.0.0 on fixed ports (8333, 9333, 9101, ...) unless told
    otherwise: every listener is named on its command line, on 127.0.0.1."""
    assert seaweedfs.pid is not None
    assert seaweedfs.ports is not None
    names = {getattr(seaweedfs.ports, n): n for n in seaweedfs.ports.__dataclass_fields__}
    # Readiness is S3 answering; the admin listener comes up a moment later.
    deadline = time.monotonic() + 30
    while True:
        listening = [
            c.laddr
            for c in psutil.Process(seaweedfs.pid).net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert {a.ip for a in listening} == {"127.0.0.1"}
        ports = sorted(a.port for a in listening)
        assert set(ports) <= set(names), [p for p in ports if p not in names]
        if ports == sorted(names) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert ports == sorted(names), [names[p] for p in names if p not in ports]


async def test_put_get_stream_delete(store: S3Store, s3_bucket: S3Bucket) -> None:
    data = os.urandom(2 * READ_CHUNK + 12345)  # one part, read back in three chunks
    await _put(store, KEY, data)
    assert s3_bucket.keys() == [KEY]
    assert await store.exists(KEY)
    chunks = await _get(store, KEY)
    assert b"".join(chunks) == data
    assert len(chunks) >= 3  # streamed, not whole
    assert max(map(len, chunks)) <= READ_CHUNK
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=KEY)
    assert head["ContentLength"] == len(data)
    assert head["ServerSideEncryption"] == "AES256"
    await store.delete(KEY)
    assert not await store.exists(KEY)
    assert s3_bucket.keys() == []
    assert s3_bucket.open_uploads() == 0
    assert await store.pending_uploads() == 0


async def test_empty_object_is_one_empty_part(store: S3Store, s3_bucket: S3Bucket) -> None:
    await _put(store, KEY, b"")
    assert b"".join(await _get(store, KEY)) == b""
    assert s3_bucket.keys() == [KEY]


async def test_multipart_upload_of_a_large_object(store: S3Store, s3_bucket: S3Bucket) -> None:
    data = os.urandom(9 * PART + 777)  # ten parts, three in flight at once, the last short
    await _put(store, KEY, data)
    received = hashlib.sha256()
    async for chunk in store.read(KEY):
        received.update(chunk)
    assert received.hexdigest() == hashlib.sha256(data).hexdigest()
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=KEY, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-10")
    # The server kept each part's CRC32 as sent and checked: the object's checksum is
    # the CRC32 of the parts' CRC32s ("composite"), which we can recompute.
    parts = [data[start : start + PART] for start in range(0, len(data), PART)]
    composite = b"".join(zlib.crc32(part).to_bytes(4, "big") for part in parts)
    assert head["ChecksumCRC32"] == f"{_crc(composite)}-{len(parts)}"
    assert s3_bucket.open_uploads() == 0


async def test_the_server_refuses_a_body_that_does_not_match_its_checksum(
    s3_bucket: S3Bucket,
) -> None:
    """What moto does not do, and the next tests rely on: SeaweedFS checks Content-MD5
    and x-amz-checksum-crc32 against the bytes it received."""
    body = b"the bytes that were sent"
    wrong_md5 = base64.b64encode(hashlib.md5(b"other bytes").digest()).decode()  # noqa: S324
    # No retries: botocore's legacy retry rules resend on BadDigest (data/_retry.json).
    once = Config(retries={"total_max_attempts": 1})
    session = aioboto3.Session()
    async with session.client("s3", config=once, **s3_bucket.server.client_kwargs()) as client:
        with pytest.raises(ClientError) as md5:
            await client.put_object(Bucket=s3_bucket.name, Key=KEY, Body=body, ContentMD5=wrong_md5)
        with pytest.raises(ClientError) as crc:
            await client.put_object(
                Bucket=s3_bucket.name, Key=KEY, Body=body, ChecksumCRC32=_crc(b"other bytes")
            )
        upload = await client.create_multipart_upload(
            Bucket=s3_bucket.name, Key=KEY, ChecksumAlgorithm="CRC32"
        )
        with pytest.raises(ClientError) as part:
            await client.upload_part(
                Bucket=s3_bucket.name,
                Key=KEY,
                UploadId=upload["UploadId"],
                PartNumber=1,
                Body=body,
                ChecksumCRC32=_crc(b"other bytes"),
            )
        await client.abort_multipart_upload(
            Bucket=s3_bucket.name, Key=KEY, UploadId=upload["UploadId"]
        )
    for refused in (md5, crc, part):
        assert refused.value.response["Error"]["Code"] == "BadDigest"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert s3_bucket.keys() == []
    assert s3_bucket.open_uploads() == 0


async def test_a_part_changed_after_its_checksum_is_refused_and_reported(
    store: S3Store, s3_bucket: S3Bucket, caplog: pytest.LogCaptureFixture
) -> None:
    """The spool's bytes change between the CRC32 taken as they arrived and the send
    (a bad disk, a bit flip): the server refuses the part, the store reports exactly
    that, and leaves no object, no multipart upload and no spool file."""
    data = os.urandom(3 * PART)
    writer = await store.writer(KEY)
    spool = writer.local_path
    await asyncio.to_thread(writer.write, [data])  # three full parts, CRC32s taken
    fd = os.open(spool, os.O_RDWR)
    try:
        os.pwrite(fd, bytes([data[PART + 100] ^ 0xFF]), PART + 100)  # in part 2
    finally:
        os.close(fd)
    with caplog.at_level(logging.ERROR, logger="mlplane.models.object_store"):
        with pytest.raises(ServiceError) as caught:
            await writer.written()
            await writer.commit()
    assert caught.value.reason == "OBJECT_STORE_CHECKSUM_MISMATCH"
    assert "did not match their checksum" in caught.value.message
    assert any("BadDigest" in r.getMessage() and KEY in r.getMessage() for r in caplog.records)
    assert not spool.exists()
    assert s3_bucket.keys() == []
    assert s3_bucket.open_uploads() == 0


async def test_a_wrong_secret_is_refused_and_leaves_no_spool(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SeaweedFS checks SigV4 signatures (moto accepts any): a wrong secret key makes
    the store unavailable before a byte is spooled for good."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    settings = Settings(state_dir=tmp_path, **s3_bucket.settings())
    store = await S3Store.open(settings)
    try:
        with pytest.raises(ServiceError) as caught:
            await store.writer(KEY)
        assert caught.value.reason == "OBJECT_STORE_UNAVAILABLE"
        cause = caught.value.__cause__
        assert isinstance(cause, ClientError)
        assert cause.response["Error"]["Code"] == "SignatureDoesNotMatch"
        assert [p for p in settings.spool_dir.rglob("*") if p.is_file()] == []
    finally:
        await store.close()
    assert s3_bucket.open_uploads() == 0
