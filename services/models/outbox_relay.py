"""Delivers outbox events to the configured webhooks: at least once, in order per model,
signed with HMAC-SHA256, retried with exponential backoff.

Every ModelRegistry replica runs a relay, and they share the outbox (services/models/
repositories/outbox.py): a relay claims due events with a lease in one short statement,
renews each event's lease right before posting it (skipping it if the lease ran out and
another relay took it over), posts holding no lock and no database connection, then marks
each delivered (or due again after a backoff) while its lease holds. A relay that dies
mid-way leaves its leases to run out and another delivers those events (again, if the first
had posted them: at least once). Delivery state lives in `outbox_events`, so a restart
resumes where it was. A webhook that is down only delays its events: submissions and
decisions never wait for it. The oldest undelivered event of a model blocks that model's
later events (order per model); other models go on.
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

from services.common.errors import ServiceError
from services.common.metrics import OutboxMetrics
from services.common.settings import Settings
from services.models.repositories.database import lease_owner
from services.models.repository import RegistryRepository

log = logging.getLogger("mlplane.models.outbox")

SIGNATURE_HEADER = "X-Mlplane-Signature"
MAX_BACKOFF_SECONDS = 300.0
# Events claimed in one pass (at most one per model), posted one after another.
CLAIM_LIMIT = 10
# A lease outlasts the posts of a whole claim by this much.
LEASE_MARGIN_SECONDS = 10.0
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
        owner: str | None = None,
    ) -> None:
        self._outbox = repo.outbox
        self._metrics = metrics or OutboxMetrics()
        self._urls = list(settings.webhook_urls)
        self._secret = settings.webhook_secret or ""
        self._poll = settings.webhook_poll_seconds
        self._backoff = settings.webhook_backoff_seconds
        self._timeout = settings.webhook_timeout_seconds
        self.owner = owner or lease_owner()
        # Long enough for every post of a claim to time out, one after another.
        self.lease_seconds = CLAIM_LIMIT * len(self._urls) * self._timeout + LEASE_MARGIN_SECONDS
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
            # Another replica's relay may take the events this one still held at once.
            with contextlib.suppress(ServiceError):
                await self._outbox.release(self.owner)

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
        """One pass: claim the oldest due event of up to CLAIM_LIMIT models, post each, and
        record how it went. Returns how many were delivered."""
        claimed = await self._outbox.claim(
            self.owner, lease_seconds=self.lease_seconds, limit=CLAIM_LIMIT
        )
        delivered = 0
        for event in claimed:
            # The claim's lease counted on every post before this one ending in time; a slow
            # webhook (urllib's timeout is per socket operation) or a busy thread pool can
            # outlast it. Posting an event another relay took over meanwhile could deliver it
            # after the model's next one, so each is renewed, and skipped if it was lost.
            if not await self._outbox.renew(
                event.event_pk, self.owner, lease_seconds=self.lease_seconds
            ):
                log.warning("outbox event %s: lease lost before posting; skipped", event.event_pk)
                continue
            error = await self._post_all(event.payload)  # no connection held meanwhile
            if error is None:
                delivered += 1
                await self._outbox.delivered(event.event_pk, self.owner)
            else:
                delay = min(self._backoff * 2**event.attempts, MAX_BACKOFF_SECONDS)
                await self._outbox.failed(
                    event.event_pk, self.owner, error=error, retry_seconds=delay
                )
        return delivered

    async def measure_backlog(self) -> None:
        """Undelivered events and the age of the oldest, for the outbox gauges: measured
        here, on the relay's loop, since /metrics is served from another thread."""
        pending, age = await self._outbox.backlog()
        self._metrics.measured(pending, age)

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
