"""The S3 side of the upload bench: an S3 server in its own process on loopback (SeaweedFS by
default, a real server that checks signatures and checksums; or moto's), and the reference
figure, boto3's ``upload_file`` of the same file straight to that server."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config

from bench.measure import MIB, Run
from bench.upload_models import ModelFile
from services.common.settings import Settings
from services.stack.seaweedfs import SeaweedFS

BUCKET = "mlplane-bench-models"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
REGION = "us-east-1"
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0

# The references: boto3's defaults (8 MiB parts, 10 threads), 16 MiB parts, and (for
# information) the service's own shape: its part size with as many parts in flight.
S3_PART_SIZE = int(Settings.model_fields["s3_part_size_bytes"].default)
S3_PARTS_IN_FLIGHT = int(Settings.model_fields["s3_parts_in_flight"].default)
_SERVICE_PART_MIB = S3_PART_SIZE // MIB
TRANSFERS: dict[str, tuple[str, TransferConfig | None]] = {
    "boto3_default": ("boto3 upload_file, default TransferConfig", None),
    "boto3_16mib": (
        "boto3 upload_file, 16 MiB parts",
        TransferConfig(multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB),
    ),
    "boto3_service_shape": (
        f"boto3 upload_file, {_SERVICE_PART_MIB} MiB parts x {S3_PARTS_IN_FLIGHT} threads",
        TransferConfig(
            multipart_threshold=S3_PART_SIZE,
            multipart_chunksize=S3_PART_SIZE,
            max_concurrency=S3_PARTS_IN_FLIGHT,
        ),
    ),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """What the bench needs of an S3 server: where it is, its keys, its PID, a client."""

    name = "S3"
    client: Any
    credentials: dict[str, str] = CREDENTIALS

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def reclaim(self) -> None:
        """Give back the space of deleted objects now, so every run meets the server in the
        same state (no garbage, no compaction of its own in the middle of a timed upload)."""

    def delete_all(self) -> None:
        """Drop every object and open multipart upload, so the server's footprint stays flat."""
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        for item in listed.get("Contents", []):
            self.client.delete_object(Bucket=BUCKET, Key=item["Key"])
        uploads = self.client.list_multipart_uploads(Bucket=BUCKET)
        for upload in uploads.get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        self.reclaim()

    def object_size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"])

    def object_keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        return [str(item["Key"]) for item in listed.get("Contents", [])]


class SeaweedServer(S3Server):
    """SeaweedFS (`weed mini`, services/stack/seaweedfs.py) on 127.0.0.1, every port chosen
    free, its data in `data_dir`, with the bench's bucket and keys of its own."""

    name = "SeaweedFS"

    def __init__(self, data_dir: Path) -> None:
        self.server = SeaweedFS(data_dir, buckets=[BUCKET], log_path=data_dir / "weed.log")
        self.client = None

    @property
    def endpoint(self) -> str:
        return self.server.endpoint_url

    @property
    def pid(self) -> int:
        if self.server.pid is None:
            raise RuntimeError("SeaweedFS is not running")
        return self.server.pid

    def start(self) -> None:
        self.server.start()
        creds = self.server.credentials
        assert creds is not None
        self.credentials = {
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        }
        self.client = s3_client(self.endpoint, self.credentials)

    def stop(self) -> None:
        self.server.stop()

    def reclaim(self) -> None:
        # SeaweedFS keeps a deleted object's bytes in its volume until a vacuum compacts it:
        # 1 GiB per upload would pile up (on tmpfs, in memory) and its own vacuum would start
        # at a moment of its choosing. The master's vacuum call returns once compacted (~1 s).
        ports = self.server.ports
        assert ports is not None
        url = f"http://127.0.0.1:{ports.master}/vol/vacuum?garbageThreshold=0.0001"
        httpx.get(url, timeout=120.0).raise_for_status()


@dataclass
class MotoServer(S3Server):
    """``moto_server`` on 127.0.0.1 in a child process (its own GIL), with one bucket."""

    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    client: Any = field(default=None, repr=False)
    name = "moto"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("moto is not running")
        return self.proc.pid

    def start(self) -> None:
        self.port = free_port()
        moto = Path(sys.executable).with_name("moto_server")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                env={**os.environ, **CREDENTIALS},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{self.endpoint}/moto-api/reset", timeout=2).raise_for_status()
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"moto_server not ready within {_READY_TIMEOUT}s")
            time.sleep(0.1)
        self.client = s3_client(self.endpoint)
        self.client.create_bucket(Bucket=BUCKET)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(_STOP_TIMEOUT)


def s3_client(endpoint: str, credentials: dict[str, str] = CREDENTIALS) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )


def boto3_upload(server: S3Server, model: ModelFile, transfer: str) -> Run:
    """Wall time of ``upload_file`` (client creation excluded: it is made once per process)."""
    _, config = TRANSFERS[transfer]
    key = f"reference/{transfer}/{model.path.name}"
    started = time.perf_counter()
    if config is None:
        server.client.upload_file(str(model.path), BUCKET, key)
    else:
        server.client.upload_file(str(model.path), BUCKET, key, Config=config)
    seconds = time.perf_counter() - started
    stored = server.object_size(key)
    server.client.delete_object(Bucket=BUCKET, Key=key)
    server.reclaim()
    if stored != model.size:
        raise RuntimeError(f"boto3 stored {stored} bytes of {model.size}")
    return Run(seconds, {"bytes": float(model.size)})
