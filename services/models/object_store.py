"""Where ONNX files live: a local folder (the embedded default) or S3.

Both stores write through an `ObjectWriter` that is invisible until `commit`
(a temporary file renamed into place; an S3 multipart upload completed) and
leaves nothing behind on `abort`, so a failed upload never half-stores a file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import re
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from services.common.errors import ServiceError, unavailable
from services.common.settings import Settings

READ_CHUNK = 1024 * 1024
# S3 parts must be >= 5 MiB except the last. Parts in flight overlap the
# client's upload with ours; memory is about (in flight + 1) x part size.
S3_PART_SIZE = 8 * 1024 * 1024
S3_PARTS_IN_FLIGHT = 3
PART_READ_BYTES = 1024 * 1024

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def object_key(tenant: str, model_id: str, version: int) -> str:
    """`{tenant}/{model_id}/{version}.onnx`, refusing anything that could escape a prefix."""
    for part in (tenant, model_id):
        if not _SEGMENT.match(part) or ".." in part:
            raise ValueError(f"unsafe key segment {part!r}")
    if version < 1:
        raise ValueError("version must be positive")
    return f"{tenant}/{model_id}/{version}.onnx"


def store_unavailable() -> ServiceError:
    return unavailable(
        "OBJECT_STORE_UNAVAILABLE", "the model store is unavailable; nothing was stored"
    )


class ObjectWriter(Protocol):
    @property
    def local_path(self) -> Path | None:
        """A local file holding the bytes written so far, if the store keeps one."""

    async def write(self, chunk: bytes) -> None: ...
    async def flush(self) -> None:
        """Make `local_path` hold every byte written so far."""

    async def commit(self) -> None: ...
    async def abort(self) -> None: ...


class ObjectStore(Protocol):
    async def writer(self, key: str) -> ObjectWriter: ...
    def read(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def close(self) -> None: ...


# --- folder ------------------------------------------------------------------------
class _FolderWriter:
    def __init__(self, root: Path, key: str) -> None:
        self._final = root / key
        self._tmp = root / ".incoming" / f"{uuid.uuid4().hex}.part"
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(self._tmp, "xb")  # noqa: SIM115 (closed in commit/abort)

    @property
    def local_path(self) -> Path:
        return self._tmp

    async def write(self, chunk: bytes) -> None:
        try:
            await asyncio.to_thread(self._file.write, chunk)
        except OSError as exc:
            raise store_unavailable() from exc

    async def flush(self) -> None:
        try:
            await asyncio.to_thread(self._file.flush)
        except OSError as exc:
            raise store_unavailable() from exc

    def _commit_sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, self._final)
        # The rename is durable only once the directory entry is on disk.
        directory = os.open(self._final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def commit(self) -> None:
        try:
            await asyncio.to_thread(self._commit_sync)
        except OSError as exc:
            await self.abort()
            raise store_unavailable() from exc

    async def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class FolderStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    async def writer(self, key: str) -> ObjectWriter:
        try:
            return _FolderWriter(self.root, key)
        except OSError as exc:
            raise store_unavailable() from exc

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(open, self.root / key, "rb")
        except OSError as exc:
            raise store_unavailable() from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread((self.root / key).unlink)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread((self.root / key).is_file)

    async def close(self) -> None:
        return None


# --- S3 ------------------------------------------------------------------------------
class _PartBody(io.BytesIO):
    """A part's body for aiohttp, which reads a BytesIO in 64 KiB pieces with an
    event-loop turn after each: 16,000 turns a GiB, a core-second of Python.
    Reads of at least 1 MiB keep the socket as busy with 1/16 of the turns. Only
    aiohttp reads it: botocore neither hashes it (the CRC32 comes with it) nor
    signs it (payload_signing_enabled is off)."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(size if size is None or size < 0 else max(size, PART_READ_BYTES))


def _assemble_part(blocks: list[bytes]) -> tuple[io.BytesIO, str]:
    """One part's body and its CRC32 (base64, as S3 wants it), made off the event loop.

    A BytesIO that owns its buffer, sent in reads of PART_READ_BYTES, waiting
    for the socket in between: a bytes body would be handed to the transport
    whole and copied into its buffer while the store is slow to read.
    """
    body = _PartBody()
    crc = 0
    for block in blocks:
        body.write(block)
        crc = zlib.crc32(block, crc)
    body.seek(0)
    return body, base64.b64encode(crc.to_bytes(4, "big")).decode()


class _S3Writer:
    """A multipart upload with a few parts in flight while the next one fills,
    so receiving from the client and sending to S3 overlap. Memory stays at
    (in-flight + 1) parts."""

    def __init__(self, client: Any, bucket: str, key: str, upload_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._next_part = 1
        self._in_flight: set[asyncio.Task[dict[str, Any]]] = set()
        self._parts: list[dict[str, Any]] = []

    @property
    def local_path(self) -> None:
        return None

    async def flush(self) -> None:
        return None

    async def _send(self, number: int, blocks: list[bytes]) -> dict[str, Any]:
        body, crc32 = await asyncio.to_thread(_assemble_part, blocks)
        del blocks[:]
        response = await self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            # Given, botocore does not checksum the body again on the event loop.
            ChecksumCRC32=crc32,
        )
        return {"PartNumber": number, "ETag": response["ETag"], "ChecksumCRC32": crc32}

    async def _collect(self, wait_all: bool) -> None:
        while self._in_flight and (wait_all or len(self._in_flight) >= S3_PARTS_IN_FLIGHT):
            done, self._in_flight = await asyncio.wait(
                self._in_flight, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                self._parts.append(task.result())

    def _start_part(self) -> None:
        blocks, self._pending, self._pending_bytes = self._pending, [], 0
        task = asyncio.get_running_loop().create_task(self._send(self._next_part, blocks))
        self._next_part += 1
        self._in_flight.add(task)

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= S3_PART_SIZE:
            try:
                await self._collect(wait_all=False)
                self._start_part()
            except Exception as exc:
                await self.abort()
                raise store_unavailable() from exc

    async def commit(self) -> None:
        try:
            if self._pending_bytes or self._next_part == 1:
                self._start_part()
            await self._collect(wait_all=True)
            self._parts.sort(key=lambda part: part["PartNumber"])
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            await self.abort()
            raise store_unavailable() from exc

    async def abort(self) -> None:
        for task in self._in_flight:
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        self._in_flight = set()
        # Best effort: an unreachable store keeps nothing we could clean anyway,
        # and S3 lifecycle rules reap abandoned multipart uploads.
        with contextlib.suppress(Exception):
            await self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )


class S3Store:
    def __init__(self, client: Any, exit_stack: contextlib.AsyncExitStack, bucket: str) -> None:
        self._client = client
        self._exit_stack = exit_stack
        self.bucket = bucket

    @classmethod
    async def open(cls, settings: Settings) -> S3Store:
        import aioboto3
        from botocore.config import Config

        if not settings.s3_bucket:
            raise RuntimeError("MLPLANE_STORE=s3 needs MLPLANE_S3_BUCKET")
        stack = contextlib.AsyncExitStack()
        session = aioboto3.Session()
        client = await stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=settings.s3_endpoint_url,
                region_name=settings.s3_region,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                    # Every part carries a CRC32 the store checks (ChecksumAlgorithm
                    # below), and the whole file's SHA-256 is ours: a SigV4 payload
                    # hash would be a third pass over every byte. botocore already
                    # skips it over https; this makes plain-http endpoints the same.
                    s3={"payload_signing_enabled": False},
                ),
            )
        )
        return cls(client, stack, settings.s3_bucket)

    async def writer(self, key: str) -> ObjectWriter:
        try:
            response = await self._client.create_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                ContentType="application/octet-stream",
                ServerSideEncryption="AES256",
                # botocore sends a CRC32 with every part anyway; declaring it up front
                # lets the store verify parts without keeping its own whole-object hash.
                ChecksumAlgorithm="CRC32",
            )
        except Exception as exc:
            raise store_unavailable() from exc
        return _S3Writer(self._client, self.bucket, key, response["UploadId"])

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise store_unavailable() from exc
        body = response["Body"]
        try:
            while chunk := await body.read(READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=key)

    async def exists(self, key: str) -> bool:
        try:
            await self._client.head_object(Bucket=self.bucket, Key=key)
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def pending_uploads(self) -> int:
        """Multipart uploads started and neither completed nor aborted (tests use it)."""
        response = await self._client.list_multipart_uploads(Bucket=self.bucket)
        return len(response.get("Uploads", []))

    async def close(self) -> None:
        await self._exit_stack.aclose()


async def open_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        return await S3Store.open(settings)
    root = settings.object_store_dir
    root.mkdir(parents=True, exist_ok=True)
    return FolderStore(root)
