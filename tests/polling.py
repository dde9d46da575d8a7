"""Wait for a condition with a deadline, instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

INTERVAL = 0.05
TIMEOUT = 20.0


def poll_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(INTERVAL)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT:.0f} s: {what}")
        await asyncio.sleep(INTERVAL)


def validated(
    http: Any, headers: dict[str, str], model_id: str, version: int = 1
) -> dict[str, Any]:
    """The version's validation report once the stack's worker finished it (REST)."""
    report: dict[str, Any] = {}

    def done() -> bool:
        nonlocal report
        answer = http.get(
            f"/api/v1/models/{model_id}/versions/{version}/validation", headers=headers
        )
        assert answer.status_code == 200, answer.text
        report = answer.json()
        return report.get("state") in ("PASSED", "FAILED")

    poll_until(done, f"validation of {model_id} v{version}", timeout=60)
    return report
