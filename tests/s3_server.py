"""A real S3 server for the tests: SeaweedFS (`weed mini`, services/stack/seaweedfs.py)
on 127.0.0.1 with every port chosen free, one per session, stopped by PID.

Unlike moto it checks SigV4 signatures and the checksums sent with each body
(Content-MD5, x-amz-checksum-crc32), so what the S3 store sends is verified.
Tests that must stop the store start a `private_seaweedfs` of their own."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from services.stack.seaweedfs import SeaweedFS
from tests.conftest import private_tmp, starts_servers

BUCKET = "mlplane-models"


@dataclass
class S3Bucket:
    """The session server's models bucket, empty at the start of each test."""

    server: SeaweedFS
    name: str
    client: Any  # botocore's S3 client, synchronous

    def keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def open_uploads(self) -> int:
        return len(self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", []))

    def empty(self) -> None:
        for upload in self.client.list_multipart_uploads(Bucket=self.name).get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        for key in self.keys():
            self.client.delete_object(Bucket=self.name, Key=key)

    def settings(self) -> dict[str, Any]:
        """Settings fields for an S3 store on this bucket (credentials: `env`)."""
        return {"store": "s3", "s3_bucket": self.name, "s3_endpoint_url": self.server.endpoint_url}

    def env(self) -> dict[str, str]:
        return self.server.env()


@contextmanager
def running_seaweedfs(prefix: str = "mlplane-seaweedfs-") -> Iterator[SeaweedFS]:
    root = private_tmp(prefix)
    server = SeaweedFS(root / "seaweedfs", buckets=[BUCKET])
    try:
        server.start()
        yield server
    finally:
        # By PID: SIGTERM, a short grace (its data is thrown away), SIGKILL; reaped.
        server.stop(grace=3)
        shutil.rmtree(root, ignore_errors=True)
        assert not server.running()


@pytest.fixture(scope="session")
@starts_servers
def seaweedfs() -> Iterator[SeaweedFS]:
    with running_seaweedfs() as server:
        yield server


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """The models bucket, emptied after the test; the AWS credentials in the environment
    are the server's (what the S3 store's client picks up)."""
    for name, value in seaweedfs.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    bucket = S3Bucket(seaweedfs, BUCKET, seaweedfs.client())
    assert bucket.keys() == [], "a previous test left objects behind"
    try:
        yield bucket
    finally:
        bucket.empty()


@pytest.fixture
@starts_servers
def private_seaweedfs(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A server of the test's own, for a test that stops or kills it."""
    with running_seaweedfs("mlplane-seaweedfs-own-") as server:
        for name, value in server.env().items():
            if name.startswith("AWS_"):
                monkeypatch.setenv(name, value)
        yield S3Bucket(server, BUCKET, server.client())
