"""The S3 side of the upload bench: moto's S3 server in its own process on loopback, and the
reference figure, boto3's ``upload_file`` of the same file straight to that server."""

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


@dataclass
class MotoServer:
    """``moto_server`` on 127.0.0.1 in a child process (its own GIL), with one bucket."""

    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    client: Any = field(default=None, repr=False)

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

    def delete_all(self) -> None:
        """Drop every object and open multipart upload, so moto's memory stays flat."""
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        for item in listed.get("Contents", []):
            self.client.delete_object(Bucket=BUCKET, Key=item["Key"])
        uploads = self.client.list_multipart_uploads(Bucket=BUCKET)
        for upload in uploads.get("Uploads", []):
            self.client.abort_multipart_upload(
                Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"]
            )

    def object_size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"])

    def object_keys(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET)
        return [str(item["Key"]) for item in listed.get("Contents", [])]


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )


def boto3_upload(moto: MotoServer, model: ModelFile, transfer: str) -> Run:
    """Wall time of ``upload_file`` (client creation excluded: it is made once per process)."""
    _, config = TRANSFERS[transfer]
    key = f"reference/{transfer}/{model.path.name}"
    started = time.perf_counter()
    if config is None:
        moto.client.upload_file(str(model.path), BUCKET, key)
    else:
        moto.client.upload_file(str(model.path), BUCKET, key, Config=config)
    seconds = time.perf_counter() - started
    stored = moto.object_size(key)
    moto.client.delete_object(Bucket=BUCKET, Key=key)
    if stored != model.size:
        raise RuntimeError(f"boto3 stored {stored} bytes of {model.size}")
    return Run(seconds, {"bytes": float(model.size)})
