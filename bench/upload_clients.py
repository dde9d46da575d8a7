"""Our uploads, each streamed from disk through Envoy as a client would send it.

* REST, httpx: a hand-built ``multipart/form-data`` body (the text fields, then the file)
  from a generator reading 1 MiB at a time, with an exact Content-Length (no chunking).
* REST, curl: ``curl -F name=… -F sha256=… -F file=@model.onnx`` (curl streams the file).
* gRPC: the generated stub's ``UploadModel`` with a generator: metadata, then 1 MiB chunks.

Every answer is checked: 201 / OK, the version's size and SHA-256 equal the file's.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from bench.gateway_clients import curl_binary
from bench.measure import MIB, Run
from bench.upload_models import ModelFile

CHUNK = MIB
UPLOAD_TIMEOUT = 900.0  # seconds: bounds a hung upload, far above any expected figure
_CURL_FORMAT = "\n%{http_code} %{time_total} %{time_starttransfer} %{size_upload}"


@dataclass(frozen=True)
class Uploaded:
    run: Run
    model_id: str
    version: int


def _check(what: str, model: ModelFile, size: int, sha256: str) -> None:
    if size != model.size or sha256 != model.sha256:
        raise RuntimeError(
            f"{what}: the registry stored {size} bytes with SHA-256 {sha256[:12]}…, "
            f"expected {model.size} and {model.sha256[:12]}…"
        )


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


# --- REST: multipart through Envoy -----------------------------------------------------
def multipart_parts(fields: dict[str, str], filename: str) -> tuple[str, bytes, bytes]:
    """(boundary, everything before the file's bytes, everything after them)."""
    boundary = f"mlplane-bench-{uuid.uuid4().hex}"
    head = bytearray()
    for name, value in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    head += (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return boundary, bytes(head), tail


def rest_httpx_upload(gateway_url: str, token: str, model: ModelFile, name: str) -> Uploaded:
    boundary, head, tail = multipart_parts({"name": name, "sha256": model.sha256}, "model.onnx")

    def body() -> Iterator[bytes]:
        yield head
        yield from _file_chunks(model.path)
        yield tail

    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        # An exact length: httpx then sends the generator as is, without chunked encoding.
        "Content-Length": str(len(head) + model.size + len(tail)),
    }
    started = time.perf_counter()
    with httpx.Client(timeout=UPLOAD_TIMEOUT) as client:
        response = client.post(f"{gateway_url}/api/v1/models", content=body(), headers=headers)
        seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise RuntimeError(f"REST upload: HTTP {response.status_code}: {response.text[:500]}")
    version = response.json()
    _check("REST upload (httpx)", model, int(version["sizeBytes"]), version["sha256"])
    run = Run(seconds, {"bytes": float(model.size)})
    return Uploaded(run, version["modelId"], int(version["version"]))


def rest_curl_upload(
    gateway_url: str, token: str, model: ModelFile, name: str, out_dir: Path
) -> Uploaded:
    """The figure is curl's own time_total; the process's wall time is recorded apart."""
    out = out_dir / f"curl-{uuid.uuid4().hex}.json"
    argv = [curl_binary(), "-sS", "-o", str(out), "-w", _CURL_FORMAT]
    argv += ["-H", f"Authorization: Bearer {token}"]
    # No `Expect: 100-continue` (curl adds it over 1 MiB): the gateway never says 100 Continue
    # (it refuses an oversized declared length at once instead), so curl would wait 1 s.
    argv += ["-H", "Expect:"]
    argv += ["-F", f"name={name}", "-F", f"sha256={model.sha256}"]
    argv += ["-F", f"file=@{model.path};type=application/octet-stream"]
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, f"{gateway_url}/api/v1/models"],
        capture_output=True,
        text=True,
        timeout=UPLOAD_TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - started
    try:
        body = out.read_text(errors="replace") if out.exists() else ""
    finally:
        out.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"curl upload failed ({done.returncode}): {done.stderr}")
    status, total, ttfb, uploaded = done.stdout.rsplit("\n", 1)[-1].split()
    if status != "201":
        raise RuntimeError(f"REST upload (curl): HTTP {status}: {body[:500]}")
    version: dict[str, Any] = json.loads(body)
    _check("REST upload (curl)", model, int(version["sizeBytes"]), version["sha256"])
    extra = {"bytes": float(uploaded), "process_wall": wall, "ttfb": float(ttfb)}
    return Uploaded(Run(float(total), extra), version["modelId"], int(version["version"]))


# --- gRPC: the client stream through Envoy ------------------------------------------------
def grpc_upload(target: str, token: str, model: ModelFile, name: str) -> Uploaded:
    def requests() -> Iterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name=name, sha256=model.sha256))
        for chunk in _file_chunks(model.path):
            yield pb.UploadModelRequest(chunk=chunk)

    started = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        version = pb_grpc.ModelRegistryStub(channel).UploadModel(
            requests(), metadata=(("authorization", f"Bearer {token}"),), timeout=UPLOAD_TIMEOUT
        )
        seconds = time.perf_counter() - started
    _check("gRPC upload", model, version.size_bytes, version.sha256)
    return Uploaded(Run(seconds, {"bytes": float(model.size)}), version.model_id, version.version)


UploadFn = Callable[[str, ModelFile, str], Uploaded]


def upload_plan(
    gateway_url: str, gateway_target: str, out_dir: Path
) -> dict[str, tuple[str, UploadFn]]:
    """{client key: (label, upload(token, model, name))} for one stack."""
    return {
        "rest_httpx": (
            "REST multipart (httpx, streamed)",
            lambda t, m, n: rest_httpx_upload(gateway_url, t, m, n),
        ),
        "rest_curl": (
            "REST multipart (curl -F)",
            lambda t, m, n: rest_curl_upload(gateway_url, t, m, n, out_dir),
        ),
        "grpc": (
            "gRPC UploadModel (1 MiB chunks)",
            lambda t, m, n: grpc_upload(gateway_target, t, m, n),
        ),
    }
