"""Delivers outbox events to the configured webhooks: at least once, in order
per model, signed with HMAC-SHA256, retried with exponential backoff.

Delivery state lives in `outbox_events`, so a restart resumes where it was. A
webhook that is down only delays its events: submissions and decisions never
wait for it. The oldest undelivered event of a model blocks that model's later
events (order per model); other models go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from sqlalchemy import text

from services.common.errors import ServiceError
from services.common.metrics import OutboxMetrics
from services.common.settings import Settings
from services.models.repository import RegistryRepository

log = logging.getLogger("mlplane.models.outbox")

SIGNATURE_HEADER = "X-Mlplane-Signature"
MAX_BACKOFF_SECONDS = 300.0
# urllib must never go through a proxy to reach a configured webhook.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class OutboxRelay:
    def __init__(
        self,
        repo: RegistryRepository,
        settings: Settings,
        *,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        self._repo = repo
        self._metrics = metrics or OutboxMetrics()
        self._urls = list(settings.webhook_urls)
        self._secret = settings.webhook_secret or ""
        self._poll = settings.webhook_poll_seconds
        self._backoff = settings.webhook_backoff_seconds
        self._timeout = settings.webhook_timeout_seconds
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        if self._urls and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def nudge(self) -> None:
        """An event was just written: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                delivered = await self.deliver_due()
                await self.measure_backlog()
            except ServiceError:
                delivered = 0  # database down: try again at the next poll
            except Exception:
                log.exception("outbox relay pass failed")
                delivered = 0
            if delivered:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def deliver_due(self) -> int:
        """One pass: the oldest due event of each model. Returns how many were delivered.

        Several relays (one per ModelRegistry replica) share the outbox. Each claims the events
        it delivers with a row lock held until its transaction ends (after the POST and the
        UPDATE), and skips those another holds; a relay that dies loses its locks with its
        connection, so another takes the event over. `delivered_time IS NULL` is checked on the
        locked row itself: a relay whose snapshot predates another's commit would otherwise lock
        the just-delivered row (PostgreSQL re-checks only the outer conditions on the newest
        version of a row it locks) and post it a second time."""
        async with self._repo.transaction() as conn:
            rows = (
                await conn.execute(
                    text(
                        """
                        SELECT e.event_pk, e.payload, e.attempts FROM outbox_events e
                         WHERE e.event_pk IN (
                               SELECT DISTINCT ON (model_id) event_pk FROM outbox_events
                                WHERE delivered_time IS NULL
                                ORDER BY model_id, event_pk)
                           AND e.delivered_time IS NULL
                           AND e.next_attempt_time <= now()
                         ORDER BY e.event_pk
                         LIMIT 50
                         FOR UPDATE SKIP LOCKED
                        """
                    )
                )
            ).all()
            delivered = 0
            for row in rows:
                payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
                error = await self._post_all(payload)
                if error is None:
                    delivered += 1
                    await conn.execute(
                        text(
                            "UPDATE outbox_events SET delivered_time = now(),"
                            " attempts = attempts + 1, last_error = NULL WHERE event_pk = :pk"
                        ),
                        {"pk": row.event_pk},
                    )
                else:
                    delay = min(self._backoff * 2**row.attempts, MAX_BACKOFF_SECONDS)
                    await conn.execute(
                        text(
                            "UPDATE outbox_events SET attempts = attempts + 1,"
                            " last_error = :error,"
                            " next_attempt_time = now() + make_interval(secs => :delay)"
                            " WHERE event_pk = :pk"
                        ),
                        {"pk": row.event_pk, "error": error[:500], "delay": delay},
                    )
        return delivered

    async def measure_backlog(self) -> None:
        """Undelivered events and the age of the oldest, for the outbox gauges: measured
        here, on the relay's loop, since /metrics is served from another thread."""
        async with self._repo.transaction(read_only=True) as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS pending,"
                        " COALESCE(EXTRACT(EPOCH FROM now() - min(create_time)), 0) AS age"
                        " FROM outbox_events WHERE delivered_time IS NULL"
                    )
                )
            ).one()
        self._metrics.measured(int(row.pending), float(row.age))

    async def _post_all(self, payload: dict[str, Any]) -> str | None:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Mlplane-Event": str(payload.get("type", "")),
            "X-Mlplane-Event-Id": str(payload.get("id", "")),
            SIGNATURE_HEADER: sign(self._secret, body),
        }
        for url in self._urls:
            error = await asyncio.to_thread(self._post, url, body, headers)
            if error is not None:
                return f"{url}: {error}"
        return None

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> str | None:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return f"unreachable ({exc})"
        return None if 200 <= status < 300 else f"HTTP {status}"
