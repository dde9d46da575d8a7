"""Asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


async def to_the_end(cleanup: Coroutine[Any, Any, _T]) -> _T:
    """Run a clean-up step to its end even when the caller is cancelled (again) meanwhile:
    grpc cancels a handler whose client went away, and that can strike while the handler
    is already cleaning up after the stream broke. A cancelled `asyncio.to_thread` whose
    job had not started yet never runs it, which left `.part` files behind (issue #14).
    The cancel is passed on once the step is done."""
    task = asyncio.ensure_future(cleanup)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise  # the step itself was cancelled: nothing left to wait for
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result
