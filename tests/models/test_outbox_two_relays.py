"""Two outbox relays on one database, as two ModelRegistry replicas run them: every event is
delivered, once while both are healthy, in order per model; neither holds a database
connection while it posts; a relay that dies holding leases delays its events only until the
leases run out, and then they go out in order (again, at least once)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import create_engine
from services.models.outbox_relay import OutboxRelay
from services.models.repositories import outbox
from services.models.repository import RegistryRepository
from tests.models.conftest import RegistryDatabase
from tests.polling import wait_until
from tests.webhooks import Delivery, WebhookReceiver

pytestmark = pytest.mark.stack

DELIVERY_SECONDS = 0.03  # each POST takes this long at the webhook: the relays overlap


@dataclass
class Watch:
    """While a relay's POST waits for its answer, how many database connections that relay
    holds (`busy`, by the relay's webhook path); any it held are noted in `held`."""

    busy: dict[str, Callable[[], int]] = field(default_factory=dict)
    held: list[tuple[str, int]] = field(default_factory=list)

    def on_post(self, relay: str) -> None:
        connections = self.busy[relay]() if relay in self.busy else 0
        if connections:
            self.held.append((relay, connections))


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def webhook(watch: Watch) -> Iterator[WebhookReceiver]:
    """Each POST answered 200 after DELIVERY_SECONDS, so the relays' posts overlap."""
    with WebhookReceiver(delay=DELIVERY_SECONDS, on_post=watch.on_post) as receiver:
        yield receiver


def _received(webhook: WebhookReceiver, model_ids: set[str]) -> list[Delivery]:
    return [d for d in webhook.deliveries() if d.event["modelId"] in model_ids]


async def _until_delivered(
    webhook: WebhookReceiver, model_ids: set[str], events: int
) -> list[Delivery]:
    """What reached the webhook for `model_ids`, once `events` distinct events have."""

    async def arrived() -> bool:
        return len({d.event["id"] for d in _received(webhook, model_ids)}) == events

    await wait_until(arrived, f"{events} events delivered")
    return _received(webhook, model_ids)


def _engine(database: RegistryDatabase) -> AsyncEngine:
    """A pool of its own, as each replica has."""
    return create_engine(database.settings.registry_database_url or "", database.settings)


@pytest.fixture
async def writer(database: RegistryDatabase) -> AsyncIterator[RegistryRepository]:
    repo = RegistryRepository(_engine(database))
    try:
        yield repo
    finally:
        await repo.close()


@dataclass
class Relay:
    name: str
    repo: RegistryRepository
    relay: OutboxRelay


@pytest.fixture
async def relays(
    database: RegistryDatabase, webhook: WebhookReceiver, watch: Watch
) -> AsyncIterator[list[Relay]]:
    """Two relays, each with its own pool and its own webhook path; not started."""
    made: list[Relay] = []
    for name in ("a", "b"):
        engine = _engine(database)
        repo = RegistryRepository(engine)
        settings = database.settings.model_copy(update={"webhook_urls": [webhook.url(name)]})
        made.append(Relay(name, repo, OutboxRelay(repo, settings, owner=f"relay-{name}")))
        watch.busy[name] = engine.sync_engine.pool.checkedout  # type: ignore[attr-defined]
    try:
        yield made
    finally:
        for each in made:
            await each.relay.stop()
            await each.repo.close()


async def _write_events(repo: RegistryRepository, plan: list[str]) -> dict[str, list[str]]:
    """One event per entry of `plan` (a model id), each in its own transaction, as changes
    write them; the event ids of each model in the order written."""
    written: dict[str, list[str]] = {}
    for model_id in plan:
        statement = outbox.event(
            "two-relays", uuid.UUID(model_id), "test.event", {"modelId": model_id}
        )
        async with repo.transaction() as db:
            await db.run(statement)
        written.setdefault(model_id, []).append(statement.params["event_id"].hex)
    return written


def _ids(written: dict[str, list[str]]) -> dict[str, list[str]]:
    return {model: [str(uuid.UUID(hex=e)) for e in events] for model, events in written.items()}


async def _rows(database: RegistryDatabase, model_ids: set[str]) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database.admin_dsn)
    try:
        return await conn.fetch(
            "SELECT attempts, delivered_time, lease_owner, lease_expires FROM outbox_events"
            " WHERE model_id::text = ANY($1::text[])",
            list(model_ids),
        )
    finally:
        await conn.close()


def _in_order(received: list[Delivery], expected: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each model's event ids in the order they first arrived."""
    seen: dict[str, list[str]] = {model: [] for model in expected}
    for delivery in received:
        ids = seen[delivery.event["modelId"]]
        if delivery.event["id"] not in ids:
            ids.append(delivery.event["id"])
    return seen


async def test_two_relays_share_the_outbox(
    database: RegistryDatabase,
    webhook: WebhookReceiver,
    watch: Watch,
    writer: RegistryRepository,
    relays: list[Relay],
) -> None:
    models = [str(uuid.uuid4()) for _ in range(8)]
    first = await _write_events(writer, models * 3)  # interleaved across models
    for each in relays:
        each.relay.start()
    later = await _write_events(writer, models * 3)  # written while both relays run
    for each in relays:
        each.relay.nudge()
    expected = {m: first[m] + later[m] for m in models}
    wanted = set(models)
    total = sum(len(events) for events in expected.values())

    await _until_delivered(webhook, wanted, total)
    await asyncio.sleep(0.5)  # a duplicate, if a relay were to post one, has time to arrive
    received = _received(webhook, wanted)
    assert len(received) == total, "an event was delivered twice while both relays were healthy"
    assert _in_order(received, expected) == _ids(expected)
    assert {d.path for d in received} == {"a", "b"}, "one relay delivered everything"
    assert watch.held == [], "a relay held a database connection during a POST"
    rows = await _rows(database, wanted)
    assert len(rows) == total
    assert all(r["attempts"] == 1 and r["delivered_time"] is not None for r in rows)
    assert all(r["lease_owner"] is None and r["lease_expires"] is None for r in rows)


async def test_a_dead_relays_events_go_out_in_order_after_its_lease(
    database: RegistryDatabase,
    webhook: WebhookReceiver,
    writer: RegistryRepository,
    relays: list[Relay],
) -> None:
    models = [str(uuid.uuid4()) for _ in range(3)]
    written = _ids(await _write_events(writer, models * 3))
    wanted = set(models)
    # A relay claims each model's first event, for a second, and dies before posting.
    dead = await writer.outbox.claim("relay-dead", lease_seconds=1.0, limit=10)
    dead = [e for e in dead if e.payload["modelId"] in wanted]
    assert sorted(e.payload["id"] for e in dead) == sorted(written[m][0] for m in models)
    claimed_at = time.monotonic()
    for each in relays:
        each.relay.start()

    received = await _until_delivered(webhook, wanted, 9)
    # Nothing of these models went out while the dead relay's leases held them: not their
    # first events, and not the later ones, which wait behind them.
    assert min(d.time for d in received) - claimed_at >= 0.9
    assert _in_order(received, written) == written
    assert len(received) == 9
    # The dead relay comes back: its leases were taken over, it marks nothing.
    for event in dead:
        await writer.outbox.delivered(event.event_pk, "relay-dead")
    rows = await _rows(database, wanted)
    assert sorted(r["attempts"] for r in rows) == [1] * 9


async def test_a_relay_whose_lease_ran_out_mid_claim_posts_nothing_taken_over(
    database: RegistryDatabase, writer: RegistryRepository
) -> None:
    """Relay a claims the first event of two models, and its first post hangs past the lease
    (a slow webhook); b takes both over and delivers them and m2's next event. When a's post
    returns, a must not post m2's first event again after m2's second."""
    m1, m2 = str(uuid.uuid4()), str(uuid.uuid4())
    written = _ids(await _write_events(writer, [m1, m2, m2]))
    entered, release = threading.Event(), threading.Event()

    def hold_a(path: str) -> None:
        if path == "a" and not entered.is_set():
            entered.set()
            release.wait(30)

    made: list[tuple[RegistryRepository, OutboxRelay]] = []
    with WebhookReceiver(on_post=hold_a) as webhook:
        for name in ("a", "b"):
            repo = RegistryRepository(_engine(database))
            settings = database.settings.model_copy(update={"webhook_urls": [webhook.url(name)]})
            made.append((repo, OutboxRelay(repo, settings, owner=f"relay-{name}")))
        (_, a), (_, b) = made
        try:
            a_pass = asyncio.get_running_loop().create_task(a.deliver_due())

            async def a_posting() -> bool:
                return entered.is_set()

            await wait_until(a_posting, "relay a posting its first event")
            conn = await asyncpg.connect(database.admin_dsn)
            try:  # a's leases run out while its post hangs
                await conn.execute(
                    "UPDATE outbox_events SET lease_expires = now() - interval '1 second'"
                    " WHERE lease_owner = 'relay-a'"
                )
            finally:
                await conn.close()
            delivered_by_b = 0
            for _ in range(20):  # two passes: both first events, then m2's second
                delivered_by_b += await b.deliver_due()
                if delivered_by_b >= 3:
                    break
            assert delivered_by_b == 3
            release.set()
            # a posted m1's first event (its mark then finds the lease gone and changes
            # nothing) and skipped m2's, whose lease it had lost.
            assert await a_pass == 1
            seen = _in_order(_received(webhook, {m1, m2}), written)
            arrivals = [d.event["id"] for d in _received(webhook, {m2})]
        finally:
            release.set()
            for repo, relay in made:
                await relay.stop()
                await repo.close()
    assert seen == written
    # m1's first event was on the wire from both (at least once); m2's was posted by b alone,
    # and nothing of m2 arrived after its second event.
    assert arrivals == written[m2]
