"""The production store: an S3 bucket, through aioboto3. Uploads go through the
multipart writer of `s3_writer.py`, fed from a spool file that `SpoolFiles` keeps for reuse."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from services.common.settings import Settings
from services.models.local_files import SpoolFiles
from services.models.object_store.protocol import READ_CHUNK, ObjectWriter, store_unavailable
from services.models.object_store.s3_writer import _S3Writer


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
