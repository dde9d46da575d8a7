"""Our figures: every request goes through Envoy, as a notebook or a browser would send it.

CSV is fetched with curl (no Python in the client's way), Arrow with the generated gRPC
stubs, small queries with one keep-alive client each so only the request is timed."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from bench.measure import Run
from bench.references import count_lines
from bench.workload import Workload, iso

_EXPORT_TIMEOUT = 600.0  # seconds; bounds a hung export, far above any expected figure
_SMALL_TIMEOUT = 30.0
_CURL_FORMAT = "%{http_code} %{time_starttransfer} %{time_total} %{size_download}"
_MANIFEST_WAIT = 10.0


@dataclass(frozen=True)
class Window:
    """What one export asks for."""

    asset_id: str
    start: datetime
    end: datetime
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, workload: Workload) -> Window:
        return cls(workload.asset_id, workload.start, workload.end)

    def small(self, tag: str) -> Window:
        """One tag over one hour in the middle of the range (3,600 rows at 1 Hz)."""
        start = self.start + (self.end - self.start) / 2
        return Window(self.asset_id, start, start + timedelta(hours=1), (tag,))

    def rest_params(self) -> dict[str, str | list[str]]:
        params: dict[str, str | list[str]] = {
            "assetId": self.asset_id,
            "startTime": iso(self.start),
            "endTime": iso(self.end),
        }
        if self.tags:
            params["tags"] = list(self.tags)
        return params

    def grpc_request(self, fmt: int = pb.Export.FORMAT_UNSPECIFIED) -> pb.ExportHistoryRequest:
        return pb.ExportHistoryRequest(
            asset_id=self.asset_id,
            start_time=_timestamp(self.start),
            end_time=_timestamp(self.end),
            tags=list(self.tags),
            format=fmt,  # type: ignore[arg-type]
        )


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _metadata(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def curl_binary() -> str:
    found = shutil.which("curl") or ("/usr/bin/curl" if Path("/usr/bin/curl").exists() else None)
    if found is None:
        raise RuntimeError("curl is not installed (apt-get install curl)")
    return found


# --- CSV through Envoy, with curl ----------------------------------------------------
def curl_csv(gateway_url: str, token: str, window: Window, out: Path | None, rows: int) -> Run:
    """GET …/history:csv to the last byte; ``out=None`` discards the body (/dev/null).

    The figure is curl's own time_total. The manifest's row count is checked, and with
    ``out`` the file's line count too."""
    url = httpx.URL(f"{gateway_url}/api/v1/query/history:csv", params=window.rest_params())
    # -D - puts the response headers on stdout ahead of the -w line (for the export id).
    argv = [curl_binary(), "-s", "-D", "-", "-o", str(out or "/dev/null"), "-w", _CURL_FORMAT]
    argv += ["-H", f"Authorization: Bearer {token}"]
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, str(url)], capture_output=True, text=True, timeout=_EXPORT_TIMEOUT, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {done.stderr}")
    status, ttfb, total, size = done.stdout.rsplit("\n", 1)[-1].split()
    if status != "200":
        raise RuntimeError(f"CSV export answered HTTP {status}")
    extra = {"ttfb": float(ttfb), "bytes": float(size), "process_wall": wall}
    if out is not None:
        lines = count_lines(out)
        out.unlink()
        if lines != rows + 1:
            raise RuntimeError(f"the CSV has {lines} lines, expected {rows + 1}")
    _check_manifest(gateway_url, token, _header(done.stdout, "x-mlplane-export-id"), rows)
    return Run(float(total), extra)


def _header(raw: str, name: str) -> str:
    for line in raw.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    raise RuntimeError(f"no {name} header in the response")


def _check_manifest(gateway_url: str, token: str, export_id: str, rows: int) -> None:
    # The manifest is closed just after the last byte, so give it a moment.
    deadline = time.monotonic() + _MANIFEST_WAIT
    with httpx.Client(base_url=gateway_url, timeout=_SMALL_TIMEOUT) as client:
        while True:
            manifest = client.get(
                f"/api/v1/query/exports/{export_id}",
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            if manifest.get("status") == "COMPLETED" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    if manifest.get("status") != "COMPLETED" or int(manifest.get("rowCount", -1)) != rows:
        raise RuntimeError(f"CSV manifest does not match {rows} rows: {manifest}")


# --- Arrow over gRPC through Envoy -----------------------------------------------------
@dataclass
class _Collected:
    # Kept out of repr: asyncio formats a coroutine's result with reprlib, which would
    # render every byte of the stream (half a second for E1, and not the service's doing).
    pieces: list[bytes] = field(repr=False)
    manifest: pb.Export | None = None
    first_data: float = 0.0  # seconds from the start to the first Arrow bytes


def _collect(responses: Iterable[pb.ExportHistoryResponse], started: float) -> _Collected:
    got = _Collected(pieces=[])
    for response in responses:
        part = response.WhichOneof("part")
        if part == "arrow":
            if not got.pieces:
                got.first_data = time.perf_counter() - started
            got.pieces.append(response.arrow.data)
        elif part == "manifest":
            got.manifest = response.manifest
    return got


def _check_arrow(got: _Collected, data: bytes, frame_rows: int, rows: int) -> None:
    manifest = got.manifest
    if manifest is None:
        raise RuntimeError("the Arrow export ended without a manifest")
    if frame_rows != rows or manifest.row_count != rows:
        raise RuntimeError(
            f"Arrow export: {frame_rows} rows, manifest {manifest.row_count}, expected {rows}"
        )
    if (
        manifest.status != pb.Export.COMPLETED
        or manifest.sha256 != hashlib.sha256(data).hexdigest()
    ):
        raise RuntimeError(f"Arrow manifest: status {manifest.status}, sha256 mismatch?")


def grpc_arrow_to_pandas(target: str, token: str, window: Window, rows: int) -> Run:
    """Sync client: channel creation → all batches → one IPC stream → DataFrame.

    Closing the channel comes after the DataFrame is ready and is recorded apart."""
    started = time.perf_counter()
    with grpc.insecure_channel(target) as channel:
        call = pb_grpc.QueryServiceStub(channel).ExportHistory(
            window.grpc_request(pb.Export.ARROW),
            metadata=_metadata(token),
            timeout=_EXPORT_TIMEOUT,
        )
        got = _collect(call, started)
        streamed = time.perf_counter() - started
        data = b"".join(got.pieces)
        frame = pa.ipc.open_stream(data).read_all().to_pandas()
        seconds = time.perf_counter() - started
    closed = time.perf_counter() - started - seconds
    _check_arrow(got, data, len(frame), rows)
    extra = {"ttfb": got.first_data, "streamed": streamed, "channel_close": closed}
    return Run(seconds, {**extra, "bytes": float(len(data))})


@dataclass
class _AioResult:
    seconds: float  # channel creation → DataFrame
    closed: float  # then closing the channel
    got: _Collected
    frame_rows: int


async def _aio_arrow(target: str, token: str, window: Window) -> _AioResult:
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(target) as channel:
        call = pb_grpc.QueryServiceStub(channel).ExportHistory(
            window.grpc_request(pb.Export.ARROW),
            metadata=_metadata(token),
            timeout=_EXPORT_TIMEOUT,
        )
        got = _Collected(pieces=[])
        async for response in call:
            part = response.WhichOneof("part")
            if part == "arrow":
                if not got.pieces:
                    got.first_data = time.perf_counter() - started
                got.pieces.append(response.arrow.data)
            elif part == "manifest":
                got.manifest = response.manifest
        frame = pa.ipc.open_stream(b"".join(got.pieces)).read_all().to_pandas()
        seconds = time.perf_counter() - started
    return _AioResult(seconds, time.perf_counter() - started - seconds, got, len(frame))


def grpc_aio_arrow_to_pandas(target: str, token: str, window: Window, rows: int) -> Run:
    """The same with grpc.aio, in a fresh event loop (asyncio.run) per export.

    The figure is timed inside the loop, channel creation to DataFrame, like the sync one;
    closing the channel and the whole asyncio.run (loop set-up and teardown) are recorded
    apart."""
    started = time.perf_counter()
    result = asyncio.run(_aio_arrow(target, token, window))
    whole = time.perf_counter() - started
    _check_arrow(result.got, b"".join(result.got.pieces), result.frame_rows, rows)
    extra = {"ttfb": result.got.first_data, "channel_close": result.closed, "asyncio_run": whole}
    return Run(result.seconds, extra)


def grpc_arrow_discard(target: str, token: str, window: Window, rows: int) -> Run:
    """Consume the Arrow stream and drop every batch: the service's side of a big export."""
    started = time.perf_counter()
    size = 0
    digest = hashlib.sha256()
    manifest: pb.Export | None = None
    with grpc.insecure_channel(target) as channel:
        call = pb_grpc.QueryServiceStub(channel).ExportHistory(
            window.grpc_request(pb.Export.ARROW),
            metadata=_metadata(token),
            timeout=_EXPORT_TIMEOUT,
        )
        for response in call:
            if response.WhichOneof("part") == "arrow":
                size += len(response.arrow.data)
                digest.update(response.arrow.data)
            elif response.WhichOneof("part") == "manifest":
                manifest = response.manifest
    seconds = time.perf_counter() - started
    if manifest is None or manifest.row_count != rows or manifest.sha256 != digest.hexdigest():
        raise RuntimeError(f"big Arrow export does not match {rows} rows: {manifest}")
    return Run(seconds, {"bytes": float(size)})


# --- small queries: latency ------------------------------------------------------------
def rest_json_latencies(
    gateway_url: str, token: str, window: Window, *, requests: int, warmup: int
) -> list[float]:
    """Sequential REST JSON exports on one keep-alive connection; seconds per request."""
    expected = _expected_small_rows(window)
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=gateway_url, timeout=_SMALL_TIMEOUT, headers=headers) as client:
        for i in range(warmup + requests):
            started = time.perf_counter()
            response = client.get("/api/v1/query/history", params=window.rest_params())
            body = response.content
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"REST JSON export: HTTP {response.status_code}: {body[:300]!r}")
            if i == 0:
                messages = response.json()
                got = sum(len(m["samples"]["samples"]) for m in messages if "samples" in m)
                if got != expected:
                    raise RuntimeError(f"REST JSON export: {got} samples, expected {expected}")
            if i >= warmup:
                latencies.append(elapsed)
    return latencies


def _rows_in(responses: list[pb.ExportHistoryResponse]) -> int:
    samples = sum(len(r.samples.samples) for r in responses if r.HasField("samples"))
    arrow = b"".join(r.arrow.data for r in responses if r.HasField("arrow"))
    return samples + (pa.ipc.open_stream(arrow).read_all().num_rows if arrow else 0)


def grpc_latencies(
    target: str,
    token: str,
    window: Window,
    *,
    requests: int,
    warmup: int,
    fmt: int = pb.Export.FORMAT_UNSPECIFIED,
) -> list[float]:
    """Sequential gRPC exports on one channel; seconds per request (all messages read)."""
    expected = _expected_small_rows(window)
    latencies: list[float] = []
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.QueryServiceStub(channel)
        for i in range(warmup + requests):
            started = time.perf_counter()
            responses = list(
                stub.ExportHistory(
                    window.grpc_request(fmt), metadata=_metadata(token), timeout=_SMALL_TIMEOUT
                )
            )
            elapsed = time.perf_counter() - started
            if i == 0 and (got := _rows_in(responses)) != expected:
                raise RuntimeError(f"gRPC export: {got} rows, expected {expected}")
            if i >= warmup:
                latencies.append(elapsed)
    return latencies


def grpc_rows_latencies(
    target: str, token: str, window: Window, *, requests: int, warmup: int
) -> list[float]:
    """Row batches (the default format): what grpcurl and simple clients get."""
    return grpc_latencies(target, token, window, requests=requests, warmup=warmup)


def grpc_arrow_latencies(
    target: str, token: str, window: Window, *, requests: int, warmup: int
) -> list[float]:
    """Arrow IPC bytes, not decoded into a DataFrame: the service's cost of the same query."""
    return grpc_latencies(
        target, token, window, requests=requests, warmup=warmup, fmt=pb.Export.ARROW
    )


def _expected_small_rows(window: Window) -> int:
    # 1 Hz per tag: one row per second per tag of the window.
    return int((window.end - window.start).total_seconds()) * len(window.tags)
