"""Nothing half-kept (issue #14): an upload whose client goes away mid-file leaves no
temporary file, and leftovers of a crashed process (`.part` files in the folder store's
`.incoming/`, S3 spools, validation skeletons) are swept when the service starts, without
touching the files of an upload still in progress in another process sharing the folder."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from services.common.server import start_server
from services.common.settings import Settings
from services.models import local_files
from services.models.local_files import LocalFile, sweep_leftovers
from services.models.service import models_spec
from tests.models.onnx_models import linear_model
from tests.polling import poll_until
from tests.stack_runner import RunningStack

BOUNDARY = b"spool-cleanup-boundary"


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _incoming_bytes(stack: RunningStack) -> int:
    total = 0
    for path in _files(stack.state_dir / "objects" / ".incoming"):
        with contextlib.suppress(FileNotFoundError):  # removed since it was listed
            total += path.stat().st_size
    return total


@pytest.fixture
def raw_upload(stack: RunningStack) -> Iterator[socket.socket]:
    url = urlsplit(stack.gateway_url)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=30)
    try:
        yield sock
    finally:
        sock.close()


# Several times each: the leak was a race (a cancel striking while the clean-up's thread
# job was still queued), seen in about half of the attempts.
@pytest.mark.parametrize("how", ["close", "reset"] * 3)
def test_rest_client_gone_mid_file_leaves_no_part_file(
    stack: RunningStack, raw_upload: socket.socket, how: str
) -> None:
    # A browser tab closed, curl killed: the connection ends with the body half sent.
    name = f"gone-{uuid.uuid4().hex[:8]}"
    objects_before = _files(stack.state_dir / "objects")
    data = linear_model(2_000_000)  # ~8 MB
    head = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\n'
        + name.encode() + b"\r\n--" + BOUNDARY
        + b'\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
    )  # fmt: skip
    length = len(head) + len(data) + len(BOUNDARY) + 8
    token = stack.tokens.valid("data_scientist")
    request = (
        f"POST /api/v1/models HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    raw_upload.sendall(request + head + data[: 5 * 1024 * 1024])
    poll_until(
        lambda: _incoming_bytes(stack) >= 4 * 1024 * 1024,
        "the service writes the upload's first block",
    )
    if how == "reset":
        raw_upload.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
    raw_upload.close()
    poll_until(
        lambda: _files(stack.state_dir / "objects") == objects_before,
        "the abandoned upload's temporary file is removed",
    )
    assert not list((stack.state_dir / "objects" / ".incoming").glob("*"))


def _leftovers(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{uuid.uuid4().hex}.part"
    part.write_bytes(b"half an upload")
    skeleton = folder / f"{part.name}.skeleton.onnx"
    skeleton.write_bytes(b"skeleton")
    orphan_skeleton = folder / "gone.part.skeleton.onnx"
    orphan_skeleton.write_bytes(b"skeleton of a removed upload")
    spool = folder / f"{uuid.uuid4().hex}.onnx"
    spool.write_bytes(b"an S3 spool")
    return [part, skeleton, orphan_skeleton, spool]


def test_sweep_removes_leftovers_but_not_uploads_in_progress(tmp_path: Path) -> None:
    leftovers = _leftovers(tmp_path)
    # An upload in progress in another process sharing the folder (replicas): its file is
    # locked by that process, and its skeleton belongs to it.
    live_path = tmp_path / "live.part"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from services.models.local_files import LocalFile
                f = LocalFile(Path({str(live_path)!r}))
                Path({str(live_path)!r} + ".skeleton.onnx").write_bytes(b"s")
                print("ready", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"ready"
        removed = sweep_leftovers(tmp_path)
        assert sorted(removed) == sorted(leftovers)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "live.part",
            "live.part.skeleton.onnx",
        ]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # Its process ended without cleaning up (a crash): now it is a leftover too.
    assert sorted(p.name for p in sweep_leftovers(tmp_path)) == [
        "live.part",
        "live.part.skeleton.onnx",
    ]
    assert list(tmp_path.iterdir()) == []


def test_sweep_keeps_a_file_this_process_is_writing(tmp_path: Path) -> None:
    live = LocalFile(tmp_path / "mine.part")
    try:
        assert sweep_leftovers(tmp_path) == []
        assert live.path.exists()
    finally:
        live.remove()


def _sweep_between_open_and_lock(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[list[Path]]:
    """Make a sweep of `folder` (a replica starting) run in the one moment a new upload
    file exists unlocked: after its open, before its lock. Returns what each sweep took."""
    real_flock = local_files.fcntl.flock
    swept: list[list[Path]] = []
    sweeping = False

    def flock_after_a_sweep(fd: int, operation: int) -> None:
        nonlocal sweeping
        if not swept and not sweeping:  # the first lock taken; the sweep's own go through
            sweeping = True
            swept.append(sweep_leftovers(folder))
        real_flock(fd, operation)

    monkeypatch.setattr(local_files.fcntl, "flock", flock_after_a_sweep)
    return swept


def test_a_file_swept_before_its_lock_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swept = _sweep_between_open_and_lock(monkeypatch, tmp_path)
    live = LocalFile(tmp_path / "racing.part")
    try:
        assert swept == [[tmp_path / "racing.part"]]  # the sweep did take the first file
        live.write([b"the upload's bytes"])
        # What validation then reads: the bytes are in the file under its name.
        assert (tmp_path / "racing.part").read_bytes() == b"the upload's bytes"
        assert sweep_leftovers(tmp_path) == []  # and it is locked now
    finally:
        live.remove()


def test_a_reused_spool_swept_before_its_lock_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "idle.onnx"
    spool.write_bytes(b"an earlier upload")
    swept = _sweep_between_open_and_lock(monkeypatch, tmp_path)
    with pytest.raises(FileNotFoundError):
        LocalFile(spool, reuse=True)
    assert swept == [[spool]]
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_leftovers(tmp_path / "never-made") == []


@pytest.mark.parametrize("store", ["folder", "s3"])
async def test_service_start_sweeps_a_crashed_process_leftovers(
    stack: RunningStack, tmp_path: Path, store: str
) -> None:
    # A models service of its own on the session stack's database, with a folder of its
    # own that a crashed process left files in.
    settings = stack.settings
    overrides = {
        "registry_database_url": stack.role_dsn("mlplane_registry"),
        "store_dir": tmp_path / "objects",
        "upload_spool_dir": tmp_path / "spool",
    }
    if store == "s3":
        # Only the spool matters here: the store is never reached (no upload is made).
        overrides |= {
            "store": "s3",
            "s3_bucket": "never-used",
            "s3_endpoint_url": "http://127.0.0.1:9",
        }
    settings = Settings(**{**settings.model_dump(), **overrides})
    folder = tmp_path / "objects" / ".incoming" if store == "folder" else tmp_path / "spool"
    leftovers = _leftovers(folder)
    idle = tmp_path / "spool" / "idle"
    idle.mkdir(parents=True, exist_ok=True)
    (idle / "kept.onnx").write_bytes(b"an idle spool")
    assert all(p.exists() for p in leftovers)
    server = await start_server(
        settings, models_spec(settings), listen="127.0.0.1:0", metrics_port=0
    )
    try:
        assert [p for p in leftovers if p.exists()] == []
        assert _files(folder) == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            # The service that swept is up and serving.
            token = stack.tokens.valid("data_scientist")
            listed = await pb_grpc.ModelRegistryStub(channel).ListModels(
                pb.ListModelsRequest(page_size=1),
                metadata=(("authorization", f"Bearer {token}"),),
            )
            assert isinstance(listed, pb.ListModelsResponse)
    finally:
        await server.stop(1)
