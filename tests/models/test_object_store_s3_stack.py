"""`mlplane up` with MLPLANE_STORE=s3 and no endpoint: the stack runs an embedded
SeaweedFS in its state folder (bound to 127.0.0.1 on ports chosen free) and the
models service stores through it. Uploads through Envoy land in the bucket and
read back; a refused upload leaves no object, no open multipart upload and no
spool; stopping the stack stops SeaweedFS too."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import grpc
import httpx
import psutil
import pytest
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from services.stack.seaweedfs import DEFAULT_BUCKET, load_or_create_credentials
from tests.models.onnx_models import linear_model
from tests.polling import poll_until
from tests.stack_runner import RunningStack, stack_in_tmp

pytestmark = pytest.mark.stack

# What `weed mini` listens on unless told otherwise (and their gRPC twins at +10000).
WEED_DEFAULT_PORTS = {9333, 9340, 8888, 8333, 23646, 7333, 8181, 9101, 6060}
WEED_DEFAULT_PORTS |= {port + 10000 for port in WEED_DEFAULT_PORTS}


@dataclass
class S3Stack:
    stack: RunningStack
    s3: Any  # boto3 S3 client to the embedded SeaweedFS
    endpoint: str

    def objects(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=DEFAULT_BUCKET)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def open_uploads(self) -> int:
        return len(self.s3.list_multipart_uploads(Bucket=DEFAULT_BUCKET).get("Uploads", []))

    def spools_in_progress(self) -> list[str]:
        spool = self.stack.state_dir / "spool"
        return sorted(p.name for p in spool.iterdir() if p.is_file()) if spool.is_dir() else []


@pytest.fixture(scope="module")
def s3_stack() -> Iterator[S3Stack]:
    with stack_in_tmp("mlplane-s3-stack-", MLPLANE_STORE="s3", MLPLANE_DEMO_PLANT="false") as stack:
        found = re.search(r"embedded SeaweedFS at (http://127\.0\.0\.1:\d+)", stack.log())
        assert found, stack.log()
        creds = load_or_create_credentials(stack.state_dir / "seaweedfs" / "s3.json")
        client = boto3.client(
            "s3",
            endpoint_url=found.group(1),
            region_name="us-east-1",
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
        )
        yield S3Stack(stack, client, found.group(1))
        weed = _pids(stack).get("seaweedfs")  # the one running now (it may have restarted)
    assert weed is None or not psutil.pid_exists(weed)


def _pids(stack: RunningStack) -> dict[str, int]:
    pids: dict[str, int] = json.loads((stack.state_dir / "stack.json").read_text())["pids"]
    return pids


def test_seaweedfs_listens_on_loopback_only_on_chosen_ports(s3_stack: S3Stack) -> None:
    pid = s3_stack.stack.info["pids"]["seaweedfs"]
    weed = psutil.Process(pid)
    assert weed.name() == "weed"
    listening = [c.laddr for c in weed.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert len(listening) == 10, listening  # master, volume, filer, S3, admin; each with gRPC
    assert {address.ip for address in listening} == {"127.0.0.1"}
    assert not {address.port for address in listening} & WEED_DEFAULT_PORTS
    assert any(f":{address.port}" in s3_stack.endpoint for address in listening)


def test_rest_upload_lands_in_seaweedfs_and_reads_back(s3_stack: S3Stack) -> None:
    stack, data = s3_stack.stack, linear_model(5_000_000)  # ~20 MB: two 16 MiB parts
    name = f"pump-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        response = http.post(
            "/api/v1/models",
            data={"name": name},
            files={"file": ("model.onnx", data, "application/octet-stream")},
            headers=stack.tokens.headers(),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        key = f"demo/{body['modelId']}/1.onnx"
        assert key in s3_stack.objects()
        head = s3_stack.s3.head_object(Bucket=DEFAULT_BUCKET, Key=key, ChecksumMode="ENABLED")
        assert head["ContentLength"] == len(data)
        assert head["ETag"].strip('"').endswith("-2")
        assert head["ChecksumCRC32"].endswith("-2")
        download = http.get(
            f"/api/v1/models/{body['modelId']}/versions/1/content", headers=stack.tokens.headers()
        )
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == body["sha256"]
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert s3_stack.open_uploads() == 0
    assert s3_stack.spools_in_progress() == []


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("not ONNX", b"\x08\x07" + bytes(range(250)) * 100_000),  # ~25 MB: parts were sent
        ("empty", b""),
    ],
)
def test_refused_rest_upload_leaves_nothing_in_seaweedfs(
    s3_stack: S3Stack, case: str, data: bytes
) -> None:
    stack, before = s3_stack.stack, s3_stack.objects()
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        response = http.post(
            "/api/v1/models",
            data={"name": f"refused-{uuid.uuid4().hex[:8]}"},
            files={"file": ("model.onnx", data, "application/octet-stream")},
            headers=stack.tokens.headers(),
        )
    assert response.status_code == 400, (case, response.text)
    assert s3_stack.objects() == before
    assert s3_stack.open_uploads() == 0
    assert s3_stack.spools_in_progress() == []


def test_grpc_upload_through_the_gateway(s3_stack: S3Stack) -> None:
    stack, data = s3_stack.stack, linear_model(64)
    token = stack.tokens.valid("data_scientist")

    def requests() -> Iterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name="grpc-model"))
        yield pb.UploadModelRequest(chunk=data)

    with grpc.insecure_channel(stack.gateway_target) as channel:
        version = pb_grpc.ModelRegistryStub(channel).UploadModel(
            requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=60
        )
    assert f"demo/{version.model_id}/{version.version}.onnx" in s3_stack.objects()


def test_a_killed_seaweedfs_is_restarted_on_its_endpoint_with_its_data(s3_stack: S3Stack) -> None:
    """Last in this module: `mlplane up` starts a crashed SeaweedFS again, with the same
    data, keys and ports (the endpoint the models service was given)."""
    before, pid = s3_stack.objects(), _pids(s3_stack.stack)["seaweedfs"]
    assert before
    os.kill(pid, signal.SIGKILL)

    def back() -> bool:
        if _pids(s3_stack.stack).get("seaweedfs") in (None, pid):
            return False
        try:
            return s3_stack.objects() == before
        except Exception:
            return False

    poll_until(back, "SeaweedFS is restarted with its objects", timeout=60)
    test_grpc_upload_through_the_gateway(s3_stack)
