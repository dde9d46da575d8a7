"""Hand-written, not TransferManager: parts leave the spool as it fills, ~1 MiB in memory each.

Measured: bench/README.md, 'S3 throughput, second round'. boto3's TransferManager runs in threads
and either waits for the whole file or reads each part into memory; here each full part is sent
from the upload's spool (which validation reads anyway) while the client still sends the rest.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import StreamWriter
from aiohttp.payload import Payload
from isal import isal_zlib

from services.common.errors import ServiceError, unavailable
from services.common.tasks import to_the_end
from services.models.local_files import LocalFile, SpoolFiles
from services.models.object_store.protocol import store_unavailable

# One logger for the whole store (tests select it by this name).
log = logging.getLogger("mlplane.models.object_store")

PART_READ_BYTES = 1024 * 1024

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
