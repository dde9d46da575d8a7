"""Where ONNX files live: a local folder (the embedded default) or S3.

Both stores write through an `ObjectWriter` that is invisible until `commit`
(a temporary file renamed into place; an S3 multipart upload completed) and
leaves nothing behind on `abort`, so a failed upload never half-stores a file.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import functools
import io
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import StreamWriter
from aiohttp.payload import Payload
from isal import isal_zlib

from services.common.errors import ServiceError, unavailable
from services.common.settings import Settings
from services.common.tasks import to_the_end
from services.models.local_files import LocalFile, SpoolFiles

log = logging.getLogger("mlplane.models.object_store")

READ_CHUNK = 1024 * 1024
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


EVALUATION_SUFFIX = ".evaluation.parquet"


def evaluation_key(model_key: str) -> str:
    """Where the evaluation set uploaded with the model at `model_key` is stored:
    `{tenant}/{model_id}/{slot}.evaluation.parquet`, beside it."""
    if not model_key.endswith(".onnx"):
        raise ValueError(f"not a model key: {model_key!r}")
    return model_key.removesuffix(".onnx") + EVALUATION_SUFFIX


def store_unavailable() -> ServiceError:
    return unavailable(
        "OBJECT_STORE_UNAVAILABLE", "the model store is unavailable; nothing was stored"
    )


class ObjectWriter(Protocol):
    """Bytes go to a local file first (`write`, blocking, from a worker thread),
    then to the store (`written`, on the event loop). Nothing is visible in
    the store before `commit`. Then exactly one of: `release` once the version
    row has committed (the local file is let go), or `abort`, before or after
    `commit`, which leaves nothing, locally or remotely."""

    @property
    def local_path(self) -> Path:
        """The local file holding every byte written so far (validation reads it)."""

    def write(self, pieces: Sequence[bytes]) -> None:
        """Append the pieces to the local file. Blocking: call it off the event loop."""

    async def written(self) -> None:
        """After `write`: send what is complete; waits while the store is behind."""

    async def commit(self) -> None: ...
    async def release(self) -> None: ...
    async def abort(self) -> None: ...


class ObjectStore(Protocol):
    async def writer(self, key: str) -> ObjectWriter: ...
    def read(self, key: str) -> AsyncIterator[bytes]: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    def listing(self) -> AsyncIterator[tuple[str, datetime]]:
        """Every stored object's key and last-modified time (UTC); not uploads in flight."""

    async def close(self) -> None: ...


# --- folder ------------------------------------------------------------------------
class _FolderWriter:
    def __init__(self, root: Path, key: str) -> None:
        self._final = root / key
        tmp = root / ".incoming" / f"{uuid.uuid4().hex}.part"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        self._file = LocalFile(tmp)
        self._committed = False

    @property
    def local_path(self) -> Path:
        return self._file.path

    def write(self, pieces: Sequence[bytes]) -> None:
        self._file.write(pieces)

    async def written(self) -> None:
        return None

    def _commit_sync(self) -> None:
        with self._file.lock:
            fd = self._file.fd
            if fd is None:
                raise OSError(errno.EBADF, "the upload was aborted")
            os.fsync(fd)
            self._final.parent.mkdir(parents=True, exist_ok=True)
            # Renamed while still open, so still flock-ed: a replica's start sweep never
            # sees it in .incoming unlocked (it would take it for a crashed upload's).
            os.replace(self._file.path, self._final)
            self._committed = True
            self._file.close_locked()
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

    def _abort_sync(self) -> None:
        self._file.remove()  # after a write or commit still running in a thread
        # A commit cancelled while its thread finished: no row will name the file.
        if self._committed:
            self._final.unlink(missing_ok=True)
            self._committed = False

    async def release(self) -> None:
        return None  # the temporary file became the object

    async def abort(self) -> None:
        # In a thread: it waits for a write or commit still running in one; to its end even
        # if this await is cancelled (a queued to_thread job never runs when cancelled).
        await to_the_end(asyncio.to_thread(self._abort_sync))


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

    async def listing(self) -> AsyncIterator[tuple[str, datetime]]:
        for key, mtime in await asyncio.to_thread(self._listing_sync):
            yield key, datetime.fromtimestamp(mtime, UTC)

    def _listing_sync(self) -> list[tuple[str, float]]:
        found: list[tuple[str, float]] = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # .incoming: in flight
            for name in files:
                path = Path(folder, name)
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    found.append((path.relative_to(self.root).as_posix(), path.stat().st_mtime))
        return found

    async def close(self) -> None:
        return None


# --- S3 ------------------------------------------------------------------------------
# How an S3 store refuses a body that does not match the checksum sent with it
# (Content-MD5, x-amz-checksum-*): AWS and SeaweedFS answer BadDigest.
_CHECKSUM_REFUSALS = frozenset(
    {"BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"}
)


def store_checksum_refused() -> ServiceError:
    return unavailable(
        "OBJECT_STORE_CHECKSUM_MISMATCH",
        "the model store refused the file: the bytes it received did not match their "
        "checksum; nothing was stored, send it again",
    )


def _s3_failure(exc: BaseException, key: str) -> ServiceError:
    """The error a caller sees for a failed part or completion; a checksum refusal
    (bytes changed between the spool's CRC32 and the wire) says so, and is logged."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code in _CHECKSUM_REFUSALS:
        log.error("the S3 store refused %s: %s (its bytes did not match their checksum)", key, code)
        return store_checksum_refused()
    return store_unavailable()


class _SpoolPart(Payload):
    """One part's body for aiohttp: a range of the spool file. Over plain http
    the kernel sends it straight from the page cache (`loop.sendfile`): no copy
    through Python, and the store's socket stays full while the event loop
    serves the client. Otherwise (TLS) it is read 1 MiB at a time in a worker
    thread as the socket drains. Either way a part in flight holds about a MiB
    of memory whatever its size: a BytesIO body would hold the whole part, and
    aiohttp reads file objects 64 KiB at a time with a thread hop each.

    Each send opens the spool anew: sendfile moves the descriptor's offset, and
    a retry (botocore's, or aiohttp's on a stale connection) starts clean.
    botocore sees a file-like body with a length; it neither hashes it (the
    part's CRC32 comes with it) nor signs it (payload signing is off)."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        super().__init__(None, content_type="application/octet-stream")
        self._path = path
        self._offset = offset
        self._length = length
        self._position = 0

    @property
    def size(self) -> int:
        return self._length

    def __len__(self) -> int:
        return self._length

    # The file-like face botocore validates and rewinds for its retries.
    def read(self, size: int | None = -1) -> bytes:
        want = self._length - self._position
        if size is not None and size >= 0:
            want = min(want, size)
        with open(self._path, "rb", buffering=0) as file:
            data = os.pread(file.fileno(), max(0, want), self._offset + self._position)
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            base = 0
        elif whence == io.SEEK_CUR:
            base = self._position
        elif whence == io.SEEK_END:
            base = self._length
        else:
            raise ValueError(f"invalid whence {whence}")
        self._position = min(max(0, base + position), self._length)
        return self._position

    def tell(self) -> int:
        return self._position

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a model part is binary")

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        # Every send starts at the part's first byte: a retry resends it whole.
        length = self._length if content_length is None else min(self._length, content_length)
        file = await asyncio.to_thread(open, self._path, "rb", buffering=0)
        with file:
            transport = _plain_transport(writer)
            if transport is not None:
                assert isinstance(writer, StreamWriter)
                writer.send_headers()  # aiohttp holds them back to go out with the first write
                await writer.drain()
                loop = asyncio.get_running_loop()
                try:
                    sent = await loop.sendfile(
                        transport, file, self._offset, length, fallback=False
                    )
                except asyncio.SendfileNotAvailableError:
                    pass  # nothing was sent: read and write it instead
                else:
                    if sent != length:
                        raise OSError(f"the spool file ends {length - sent} bytes before its part")
                    return
            await self._write_reads(writer, file, length)

    async def _write_reads(
        self, writer: AbstractStreamWriter, file: io.FileIO, length: int
    ) -> None:
        position, remaining = self._offset, length
        while remaining > 0:
            # A read of a page evicted under memory pressure would stall the loop.
            piece = await asyncio.to_thread(
                os.pread, file.fileno(), min(PART_READ_BYTES, remaining), position
            )
            if not piece:
                raise OSError(f"the spool file ends {remaining} bytes before its part")
            await writer.write(piece)
            position += len(piece)
            remaining -= len(piece)


def _plain_transport(writer: AbstractStreamWriter) -> asyncio.Transport | None:
    """The socket transport sendfile may write to directly: aiohttp's, not TLS, and
    with nothing between the body and the socket (no chunked framing, no compression)."""
    if not isinstance(writer, StreamWriter) or writer.chunked:
        return None
    if getattr(writer, "_compress", None) is not None:
        return None
    transport = writer.transport
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    return transport


class _S3Writer:
    """A multipart upload fed from a local spool file: `write` appends to the
    spool and keeps the CRC32 of the part being filled; each full part is sent
    from the spool with a few parts in flight while the next one fills, so
    receiving from the client and sending to S3 overlap. Memory stays at about
    a MiB per part in flight. `release` hands the spool back to `spools` (kept
    for the next upload or deleted); `abort` deletes it."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        upload_id: str,
        spool: LocalFile,
        spools: SpoolFiles,
        *,
        part_size: int,
        parts_in_flight: int,
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight
        self._file = spool
        self._spools = spools
        self._part_start = 0  # spool offset where the part being filled starts
        self._part_bytes = 0
        self._part_crc = 0
        self._full: list[tuple[int, int, int]] = []  # (start, size, crc) of parts to send
        self._next_part = 1
        self._in_flight: set[asyncio.Task[dict[str, Any]]] = set()
        self._parts: list[dict[str, Any]] = []
        self._completing = False
        self._aborted = False

    @property
    def local_path(self) -> Path:
        return self._file.path

    def write(self, pieces: Sequence[bytes]) -> None:
        self._file.write(pieces)
        for piece in pieces:
            view = memoryview(piece)
            while view:
                take = min(len(view), self._part_size - self._part_bytes)
                self._part_crc = isal_zlib.crc32(view[:take], self._part_crc)
                self._part_bytes += take
                view = view[take:]
                if self._part_bytes == self._part_size:
                    self._close_part()

    def _close_part(self) -> None:
        self._full.append((self._part_start, self._part_bytes, self._part_crc))
        self._part_start += self._part_bytes
        self._part_bytes = self._part_crc = 0

    async def written(self) -> None:
        try:
            await self._send_full()
        except Exception as exc:
            await self.abort()
            raise _s3_failure(exc, self._key) from exc

    async def _send_full(self) -> None:
        while self._full:
            await self._collect(wait_all=False)
            start, size, crc = self._full.pop(0)
            body = _SpoolPart(self._file.path, start, size)
            checksum = base64.b64encode(crc.to_bytes(4, "big")).decode()
            task = asyncio.get_running_loop().create_task(
                self._send(self._next_part, body, checksum)
            )
            self._in_flight.add(task)
            self._next_part += 1

    async def _send(self, number: int, body: _SpoolPart, crc32: str) -> dict[str, Any]:
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
        while self._in_flight and (wait_all or len(self._in_flight) >= self._parts_in_flight):
            done, self._in_flight = await asyncio.wait(
                self._in_flight, return_when=asyncio.FIRST_COMPLETED
            )
            # Every finished part is looked at, so none fails unobserved.
            failure: BaseException | None = None
            for task in done:
                error = task.exception()
                if error is None:
                    self._parts.append(task.result())
                elif failure is None:
                    failure = error
            if failure is not None:
                raise failure

    async def commit(self) -> None:
        try:
            if self._part_bytes or (self._next_part == 1 and not self._full):
                self._close_part()  # the last part, or the only one (S3 allows it empty)
            await self._send_full()
            await self._collect(wait_all=True)
            self._parts.sort(key=lambda part: part["PartNumber"])
            self._completing = True
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        except Exception as exc:
            await self.abort()
            raise _s3_failure(exc, self._key) from exc

    async def _let_go_of_spool(self, how: Callable[[], None]) -> None:
        # In a thread: it waits for a write still running in one; to its end even if
        # this await is cancelled (a queued to_thread job never runs when cancelled). A
        # spool that cannot be deleted fails neither a recorded upload nor the cleanup.
        try:
            await to_the_end(asyncio.to_thread(how))
        except OSError as exc:
            log.warning("could not remove an upload's spool %s: %s", self._file.path, exc)

    async def release(self) -> None:
        await self._let_go_of_spool(functools.partial(self._spools.keep_or_remove, self._file))

    async def abort(self) -> None:
        if self._aborted:
            return
        self._aborted = True
        try:
            try:
                for task in self._in_flight:
                    task.cancel()
                if self._in_flight:
                    await asyncio.gather(*self._in_flight, return_exceptions=True)
                self._in_flight = set()
            finally:
                await self._let_go_of_spool(self._file.remove)
        finally:
            # Whatever happened locally. Best effort: an unreachable store keeps
            # nothing we could clean anyway, and S3 lifecycle rules reap abandoned
            # multipart uploads.
            with contextlib.suppress(Exception):
                await self._client.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            if self._completing:
                # The completion may have landed before the failure or cancel that
                # brought us here: no row will name the object.
                with contextlib.suppress(Exception):
                    await self._client.delete_object(Bucket=self._bucket, Key=self._key)


class S3Store:
    def __init__(
        self,
        client: Any,
        exit_stack: contextlib.AsyncExitStack,
        bucket: str,
        *,
        spools: SpoolFiles,
        part_size: int,
        parts_in_flight: int,
    ) -> None:
        self._client = client
        self._exit_stack = exit_stack
        self.bucket = bucket
        self.spools = spools
        self._part_size = part_size
        self._parts_in_flight = parts_in_flight

    @classmethod
    async def open(cls, settings: Settings) -> S3Store:
        import aioboto3
        from botocore.config import Config

        if not settings.s3_bucket:
            raise RuntimeError("MLPLANE_STORE=s3 needs MLPLANE_S3_BUCKET")
        spools = SpoolFiles(settings.spool_dir, settings.upload_spool_keep)
        await asyncio.to_thread(spools.clear_idle)
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
                    # One upload keeps this many part requests open at once.
                    max_pool_connections=max(10, 2 * settings.s3_parts_in_flight),
                ),
            )
        )
        return cls(
            client,
            stack,
            settings.s3_bucket,
            spools=spools,
            part_size=settings.s3_part_size_bytes,
            parts_in_flight=settings.s3_parts_in_flight,
        )

    async def writer(self, key: str) -> ObjectWriter:
        try:
            # On the loop, like any open: a cancel cannot lose the file in a thread.
            spool = self.spools.take()
        except OSError as exc:
            raise store_unavailable() from exc
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
        except BaseException as exc:
            # A thread finishes the removal even if this await is cancelled.
            await asyncio.to_thread(spool.remove)
            if isinstance(exc, Exception):
                raise store_unavailable() from exc
            raise
        return _S3Writer(
            self._client,
            self.bucket,
            key,
            response["UploadId"],
            spool,
            self.spools,
            part_size=self._part_size,
            parts_in_flight=self._parts_in_flight,
        )

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

    async def listing(self) -> AsyncIterator[tuple[str, datetime]]:
        paginator = self._client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                yield str(item["Key"]), item["LastModified"].astimezone(UTC)

    async def pending_uploads(self) -> int:
        """Multipart uploads started and neither completed nor aborted (tests use it)."""
        response = await self._client.list_multipart_uploads(Bucket=self.bucket)
        return len(response.get("Uploads", []))

    async def close(self) -> None:
        await asyncio.to_thread(self.spools.close)
        await self._exit_stack.aclose()


async def open_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        return await S3Store.open(settings)
    root = settings.object_store_dir
    root.mkdir(parents=True, exist_ok=True)
    return FolderStore(root)
