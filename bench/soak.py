"""A soak with faults (issue #14): mixed load from 16 clients against a stack of its own while
each of its children is killed once with SIGKILL; `mlplane up` must bring each back.

    .venv/bin/python -m bench.soak [--minutes 10] [--clients 16]

Clients (REST through the gateway, each with its own token): readers (models list, a model,
the assets, an hour of history as JSON), exporters (a day of one asset as CSV, read to the
end), uploaders (a small ONNX model, then submitted for approval) and approvers (the open
queue, each request decided by someone who did not submit it; a version can be approved only
once the stack's validation worker has passed it (issue #16), so an approver that drew
"approve" for a version whose report has not passed yet rejects it instead, counted as
`approver approve->reject (validation STATE)`). Faults, at 20/40/60/80 % of
the run: the query service, the models service, Envoy, PostgreSQL. Recovery is the time from
the kill until a probe (health, a models list, the assets) answers 200 again.

Reported: requests by kind and answer (status code, or the exception for no answer),
recovery times, each process's resident memory at the start and the end, and a final audit:
every acknowledged upload is there with its bytes' SHA-256, every acknowledged decision holds.
Writes bench/results/soak-<UTC>.json. Nothing is asserted; everything it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.report import text_table, write_json
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack, start_stack, stop_stack

RESULTS = Path(__file__).resolve().parent / "results"
FAULTS = (("query", 0.2), ("models", 0.4), ("envoy", 0.6), ("postgres", 0.8))
KINDS = ("reader", "exporter", "uploader", "approver")


@dataclass
class Tally:
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    uploads: list[dict[str, str]] = field(default_factory=list)  # acknowledged (201)
    decisions: list[dict[str, str]] = field(default_factory=list)  # acknowledged (200)
    recoveries: dict[str, float] = field(default_factory=dict)

    def note(self, kind: str, answer: httpx.Response | BaseException) -> None:
        code = (
            str(answer.status_code) if isinstance(answer, httpx.Response) else type(answer).__name__
        )
        self.answers[(kind, code)] += 1


def _memory(stack: RunningStack) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, pid in stack.pids().items():
        try:
            out[name] = psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            out[name] = float("nan")
    return out


async def _request(
    client: httpx.AsyncClient, tally: Tally, kind: str, method: str, url: str, **kw: Any
) -> httpx.Response | None:
    try:
        answer = await client.request(method, url, **kw)
    except (httpx.HTTPError, OSError) as error:
        tally.note(kind, error)
        return None
    tally.note(kind, answer)
    return answer


async def reader(
    client: httpx.AsyncClient, tally: Tally, headers: dict[str, str], end: float
) -> None:
    while time.monotonic() < end:
        listed = await _request(client, tally, "reader", "GET", "/api/v1/models", headers=headers)
        if listed is not None and listed.status_code == 200 and listed.json().get("models"):
            model = random.choice(listed.json()["models"])
            await _request(
                client,
                tally,
                "reader",
                "GET",
                f"/api/v1/models/{model['modelId']}",
                headers=headers,
            )
        await _request(client, tally, "reader", "GET", "/api/v1/query/assets", headers=headers)
        now = datetime.now(UTC)
        params = {
            "assetId": f"pump-00{random.randint(1, 8)}",
            "startTime": (now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTime": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        await _request(
            client, tally, "reader", "GET", "/api/v1/query/history", params=params, headers=headers
        )


async def exporter(
    client: httpx.AsyncClient, tally: Tally, headers: dict[str, str], end: float
) -> None:
    while time.monotonic() < end:
        now = datetime.now(UTC)
        params = {
            "assetId": f"pump-00{random.randint(1, 8)}",
            "startTime": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            async with client.stream(
                "GET", "/api/v1/query/history:csv", params=params, headers=headers
            ) as answer:
                async for _ in answer.aiter_bytes():
                    pass
            tally.note("exporter", answer)
        except (httpx.HTTPError, OSError) as error:
            tally.note("exporter", error)


async def uploader(
    client: httpx.AsyncClient, tally: Tally, headers: dict[str, str], end: float, who: str
) -> None:
    serial = 0
    while time.monotonic() < end:
        serial += 1
        data = linear_model(8, seed=hash((who, serial)) % 10_000)
        name = f"soak-{who}-{serial % 5}"
        answer = await _request(
            client,
            tally,
            "uploader",
            "POST",
            "/api/v1/models",
            data={"name": name},
            files={"file": ("m.onnx", data, "application/octet-stream")},
            headers=headers,
        )
        if answer is None or answer.status_code != 201:
            continue
        version = answer.json()
        tally.uploads.append(
            {
                **{k: str(version[k]) for k in ("modelId", "version", "sha256")},
                "local": hashlib.sha256(data).hexdigest(),
            }
        )
        await _request(
            client,
            tally,
            "uploader",
            "POST",
            f"/api/v1/models/{version['modelId']}/approvals",
            json={"version": version["version"], "comment": "soak"},
            headers=headers,
        )


async def approver(
    client: httpx.AsyncClient, tally: Tally, headers: dict[str, str], end: float
) -> None:
    while time.monotonic() < end:
        queue = await _request(
            client,
            tally,
            "approver",
            "GET",
            "/api/v1/approvals",
            params={"state": "OPEN"},
            headers=headers,
        )
        if queue is None or queue.status_code != 200 or not queue.json().get("approvals"):
            await asyncio.sleep(0.5)
            continue
        item = random.choice(queue.json()["approvals"])
        verb = random.choice(["approve", "reject"])
        if verb == "approve":
            # Approval needs a PASSED validation report (issue #16): one the worker has not
            # passed yet would be a 400 VALIDATION_NOT_PASSED, so it is rejected instead.
            version = await _request(
                client,
                tally,
                "approver",
                "GET",
                f"/api/v1/models/{item['modelId']}/versions/{item['version']}",
                headers=headers,
            )
            if version is None or version.status_code != 200:
                continue
            state = version.json().get("validationState")
            if state != "PASSED":
                tally.answers[("approver", f"approve->reject (validation {state})")] += 1
                verb = "reject"
        answer = await _request(
            client,
            tally,
            "approver",
            "POST",
            f"/api/v1/approvals/{item['approvalId']}:{verb}",
            json={"comment": "soak decision"},
            headers=headers,
        )
        if answer is not None and answer.status_code == 200:
            tally.decisions.append(
                {
                    "modelId": item["modelId"],
                    "version": str(item["version"]),
                    "status": "APPROVED" if verb == "approve" else "REJECTED",
                }
            )


async def _probe(client: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    try:
        for path in ("/healthz", "/api/v1/models", "/api/v1/query/assets"):
            if (await client.get(path, headers=headers, timeout=5)).status_code != 200:
                return False
    except (httpx.HTTPError, OSError):
        return False
    return True


async def faults(
    stack: RunningStack, tally: Tally, headers: dict[str, str], start: float, seconds: float
) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=10) as client:
        for child, at in FAULTS:
            await asyncio.sleep(max(0.0, start + at * seconds - time.monotonic()))
            pid = stack.pids()[child]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            print(f"[{time.monotonic() - start:6.1f}s] killed {child} (PID {pid})", flush=True)
            while stack.pids().get(child) == pid or not await _probe(client, headers):
                if time.monotonic() - killed > 180:
                    tally.recoveries[child] = float("inf")
                    break
                await asyncio.sleep(0.1)
            else:
                tally.recoveries[child] = time.monotonic() - killed
            took = tally.recoveries[child]
            print(f"[{time.monotonic() - start:6.1f}s] {child} serving again after {took:.1f}s")


async def audit(stack: RunningStack, tally: Tally, headers: dict[str, str]) -> dict[str, Any]:
    missing: list[str] = []
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        for up in tally.uploads:
            got = await client.get(
                f"/api/v1/models/{up['modelId']}/versions/{up['version']}/content", headers=headers
            )
            digest = (
                hashlib.sha256(got.content).hexdigest()
                if got.status_code == 200
                else f"HTTP {got.status_code}"
            )
            if digest != up["sha256"] or digest != up["local"]:
                missing.append(f"upload {up['modelId']} v{up['version']}: {digest}")
        for decision in tally.decisions:
            got = await client.get(
                f"/api/v1/models/{decision['modelId']}/versions/{decision['version']}",
                headers=headers,
            )
            status = (
                got.json().get("status") if got.status_code == 200 else f"HTTP {got.status_code}"
            )
            if status != decision["status"]:
                missing.append(f"decision {decision}: now {status}")
    return {"uploads": len(tally.uploads), "decisions": len(tally.decisions), "problems": missing}


async def run(stack: RunningStack, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    seconds = args.minutes * 60
    tokens = stack.tokens
    scientists = [
        {"Authorization": f"Bearer {tokens.valid('data_scientist', subject=f'ds-{i}')}"}
        for i in range(args.clients)
    ]
    approvers = [
        {"Authorization": f"Bearer {tokens.valid('model_approver', subject=f'ap-{i}')}"}
        for i in range(args.clients)
    ]
    memory_start = _memory(stack)
    start = time.monotonic()
    end = start + seconds
    limits = httpx.Limits(max_connections=args.clients * 2)
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60, limits=limits) as client:
        workers = []
        for i in range(args.clients):
            kind = KINDS[i % len(KINDS)]
            if kind == "reader":
                workers.append(reader(client, tally, scientists[i], end))
            elif kind == "exporter":
                workers.append(exporter(client, tally, scientists[i], end))
            elif kind == "uploader":
                workers.append(uploader(client, tally, scientists[i], end, f"ds-{i}"))
            else:
                workers.append(approver(client, tally, approvers[i], end))
        await asyncio.gather(*workers, faults(stack, tally, scientists[0], start, seconds))
    memory_end = _memory(stack)
    checked = await audit(stack, tally, {**scientists[0]})
    return {
        "minutes": args.minutes,
        "clients": args.clients,
        "answers": {f"{k} {c}": n for (k, c), n in sorted(tally.answers.items())},
        "recoverySeconds": tally.recoveries,
        "memoryMiB": {"start": memory_start, "end": memory_end},
        "audit": checked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mlplane-soak-"))
    stack = start_stack(
        root / "state",
        MLPLANE_DEMO_PLANT_DAYS="7",
        MLPLANE_GATEWAY_RATE_LIMIT_PER_SECOND="0",
    )
    try:
        result = asyncio.run(run(stack, args))
    finally:
        survivors = stop_stack(stack)
        shutil.rmtree(root, ignore_errors=True)  # the database and every upload: ~0.3-0.5 GB
    result["leftProcesses"] = [p.pid for p in survivors]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"soak-{stamp}.json"
    write_json(path, result)
    rows = [[key, str(n)] for key, n in result["answers"].items()]
    print(text_table(["requests (kind, answer)", "count"], rows))
    print(
        text_table(
            ["child", "recovery s"], [[k, f"{v:.1f}"] for k, v in result["recoverySeconds"].items()]
        )
    )
    mem = result["memoryMiB"]
    print(
        text_table(
            ["process", "RSS start MiB", "RSS end MiB"],
            [
                [k, f"{mem['start'][k]:.0f}", f"{mem['end'].get(k, float('nan')):.0f}"]
                for k in mem["start"]
            ],
        )
    )
    found = result["audit"]
    print(
        f"audit: {found['uploads']} uploads and {found['decisions']} decisions acknowledged;"
        f" problems: {found['problems'] or 'none'}"
    )
    print(f"wrote {path}")
    return 0 if not result["audit"]["problems"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
