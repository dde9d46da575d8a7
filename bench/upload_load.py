"""GetModel under concurrent load through Envoy: Python threads (REST with one keep-alive httpx
client each, gRPC with one channel and connection each), and, where installed, ``hey`` (a
fixed number of requests) and ``wrk`` (a fixed duration), which take Python off the client
side of the measurement."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from bench.upload_measure import ComponentCpu, percentiles

_REQUEST_TIMEOUT = 30.0
_TOOL_TIMEOUT = 300.0
_JOIN_TIMEOUT = 600.0  # the whole measured phase of the thread clients


@dataclass
class LoadResult:
    label: str
    tool: str
    clients: int
    requests: int
    errors: int
    seconds: float  # wall time of the measured requests
    p50: float  # seconds
    p95: float
    p99: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per component
    note: str = ""
    info: bool = False  # shown, but no target applies

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def cpu_share(self, name: str) -> float:
        """CPU seconds of a component per wall second: 1.0 is one core kept busy."""
        return self.cpu.get(f"cpu_{name}", 0.0) / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "tool": self.tool,
            "clients": self.clients,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "rps": self.rps,
            "p50_ms": self.p50 * 1000,
            "p95_ms": self.p95 * 1000,
            "p99_ms": self.p99 * 1000,
            "cpu_seconds": self.cpu,
            "note": self.note,
            "info": self.info,
        }


# --- Python threads ------------------------------------------------------------------------
Call = Callable[[], bool]  # one request; True when the answer was right


def thread_load(
    label: str,
    tool: str,
    make_client: Callable[[], tuple[Call, Callable[[], None]]],
    *,
    clients: int,
    requests: int,
    warmup: int,
    cpu: ComponentCpu,
) -> LoadResult:
    """``clients`` threads, each with its own connection: ``warmup`` requests each, then all
    start together and send ``requests // clients`` each; every latency is kept."""
    per_client = requests // clients
    warm_each = max(1, warmup // clients)
    barrier = threading.Barrier(clients + 1, timeout=_JOIN_TIMEOUT)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            call, close = make_client()
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()
            return
        try:
            for _ in range(warm_each):
                call()
            barrier.wait()
            mine = latencies[index]
            for _ in range(per_client):
                started = time.perf_counter()
                ok = call()
                mine.append(time.perf_counter() - started)
                if not ok:
                    errors[index] += 1
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()
        finally:
            close()

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"load-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: raised below
        barrier.wait()
    with cpu.measure() as usage:
        started = time.perf_counter()
        deadline = time.monotonic() + _JOIN_TIMEOUT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{label}: a client failed: {failures[0]!r}") from failures[0]
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"{label}: clients still running after {_JOIN_TIMEOUT}s")
    flat = [s for mine in latencies for s in mine]
    p50, p95, p99 = percentiles(flat)
    return LoadResult(
        label, tool, clients, len(flat), sum(errors), seconds, p50, p95, p99, dict(usage)
    )


def rest_threads(
    gateway_url: str,
    token: str,
    model_id: str,
    *,
    clients: int,
    requests: int,
    warmup: int,
    cpu: ComponentCpu,
) -> LoadResult:
    path = f"/api/v1/models/{model_id}"

    def make() -> tuple[Call, Callable[[], None]]:
        client = httpx.Client(
            base_url=gateway_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=_REQUEST_TIMEOUT,
        )

        def call() -> bool:
            response = client.get(path)
            return response.status_code == 200 and b'"latestVersion"' in response.content

        return call, client.close

    return thread_load(
        "GetModel REST, Python threads (httpx)",
        "python-httpx",
        make,
        clients=clients,
        requests=requests,
        warmup=warmup,
        cpu=cpu,
    )


def grpc_threads(
    target: str,
    token: str,
    model_id: str,
    *,
    clients: int,
    requests: int,
    warmup: int,
    cpu: ComponentCpu,
) -> LoadResult:
    request = pb.GetModelRequest(model_id=model_id)
    metadata = (("authorization", f"Bearer {token}"),)

    def make() -> tuple[Call, Callable[[], None]]:
        # A local subchannel pool: otherwise channels to one target share one connection.
        channel = grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        stub = pb_grpc.ModelRegistryStub(channel)

        def call() -> bool:
            model = stub.GetModel(request, metadata=metadata, timeout=_REQUEST_TIMEOUT)
            return model.model_id == model_id

        return call, channel.close

    return thread_load(
        "GetModel gRPC, Python threads (1 channel each)",
        "python-grpc",
        make,
        clients=clients,
        requests=requests,
        warmup=warmup,
        cpu=cpu,
    )


# --- hey and wrk -------------------------------------------------------------------------------
def tool_path(name: str) -> str | None:
    return shutil.which(name)


def tool_version(name: str) -> str:
    path = tool_path(name)
    if path is None:
        return "not installed"
    if name == "wrk":
        done = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10, check=False)
        return (done.stdout or done.stderr).split("\n", 1)[0].strip()
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", name],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return f"{name} {done.stdout.strip() or '?'} (Debian)"


def _bearer(token: str) -> str:
    return f"Authorization: Bearer {token}"


def _hey_run(url: str, token: str, requests: int, clients: int) -> str:
    hey = tool_path("hey")
    assert hey is not None
    done = subprocess.run(
        [hey, "-n", str(requests), "-c", str(clients), "-t", "30", "-H", _bearer(token), url],
        capture_output=True,
        text=True,
        timeout=_TOOL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"hey failed ({done.returncode}): {done.stderr[:500]}")
    return done.stdout


def _seconds_after(label: str, text: str) -> float:
    found = re.search(rf"{re.escape(label)}\s+([0-9.]+) secs", text)
    if found is None:
        raise RuntimeError(f"hey printed no {label!r}:\n{text[:2000]}")
    return float(found.group(1))


def hey_load(
    url: str, token: str, *, clients: int, requests: int, warmup: int, cpu: ComponentCpu
) -> LoadResult:
    _hey_run(url, token, max(warmup, clients), clients)
    with cpu.measure() as usage:
        out = _hey_run(url, token, requests, clients)
    ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    answered = sum(int(n) for n in re.findall(r"\[\d+\]\s+(\d+) responses", out))
    return LoadResult(
        "GetModel REST, hey",
        "hey",
        clients,
        requests,
        requests - ok,
        _seconds_after("Total:", out),
        _seconds_after("50% in", out),
        _seconds_after("95% in", out),
        _seconds_after("99% in", out),
        dict(usage),
        note=f"{answered} answered; only the status is checked",
    )


_WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %%d %%d %%d %%d %%d %%d %%d\\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _wrk_run(url: str, script: Path, seconds: int, clients: int) -> list[int]:
    wrk = tool_path("wrk")
    assert wrk is not None
    done = subprocess.run(
        [wrk, "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=_TOOL_TIMEOUT,
        check=False,
    )
    found = re.search(r"^RESULT ([\d ]+)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]}{done.stderr}")
    return [int(v) for v in found.group(1).split()]


def wrk_load(url: str, token: str, *, clients: int, seconds: int, cpu: ComponentCpu) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="mlplane-wrk-") as tmp:
        script = Path(tmp) / "auth.lua"
        script.write_text(_WRK_SCRIPT % token)
        _wrk_run(url, script, 1, clients)  # warm-up
        with cpu.measure() as usage:
            requests, duration_us, p50, p95, p99, non2xx, errors = _wrk_run(
                url, script, seconds, clients
            )
    return LoadResult(
        "GetModel REST, wrk",
        "wrk",
        clients,
        requests,
        non2xx + errors,
        duration_us / 1e6,
        p50 / 1e6,
        p95 / 1e6,
        p99 / 1e6,
        dict(usage),
        note=f"fixed duration {seconds}s, 2 threads; only the status is checked",
    )
