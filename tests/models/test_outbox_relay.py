"""Approval and validation events reach a webhook on loopback: signed, in order, retried
after failures, and a webhook that is down never holds up a submission."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from grpc import aio
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from services.common.devkeys import ensure_dev_keys
from services.common.server import RunningServer, start_server
from services.common.settings import Settings
from services.db.setup import REGISTRY_ROLE, RoleCredentials, role_dsn, setup_database
from services.models.service import models_spec
from services.stack.postgres import EmbeddedPostgres
from services.validation.worker import validation_spec
from tests.models.onnx_models import linear_model
from tests.polling import wait_until
from tests.tokens import Tokens
from tests.webhooks import WebhookReceiver

pytestmark = pytest.mark.stack

SECRET = "test-webhook-secret"


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A webhook that answers 500 to its first two requests, then 200."""
    with WebhookReceiver(failures=2) as running:
        yield running


class Rig:
    """PostgreSQL, the models service and a validation worker, in this event loop."""

    def __init__(self, pg: EmbeddedPostgres, server: RunningServer, worker: RunningServer) -> None:
        self.pg, self.server, self.worker = pg, server, worker

    async def stop(self) -> None:
        await self.worker.stop(1)
        await self.server.stop(1)
        self.pg.stop()


async def _start(root: Path, url: str) -> tuple[Rig, RunningServer, Tokens]:
    pg = EmbeddedPostgres(root / "state")
    pg.start()
    creds = RoleCredentials.load_or_create(root / "state" / "db-roles.json")
    await setup_database(pg.dsn(), creds)
    settings = Settings(
        state_dir=root / "state",
        registry_database_url=role_dsn(pg.dsn(), REGISTRY_ROLE, creds.registry_password),
        webhook_urls=[url],
        webhook_secret=SECRET,
        webhook_poll_seconds=0.05,
        webhook_backoff_seconds=0.05,
        webhook_timeout_seconds=2.0,
    )
    ensure_dev_keys(settings)
    server = await start_server(
        settings, models_spec(settings), listen="127.0.0.1:0", metrics_port=0
    )
    worker = await start_server(
        settings, validation_spec(settings), listen="127.0.0.1:0", metrics_port=0
    )
    return Rig(pg, server, worker), server, Tokens(settings)


async def _metrics(server: RunningServer) -> dict[str, float]:
    """The server's /metrics as {'name{label="value",…}': value} (labels sorted)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")).text
    return {
        sample.name + json.dumps(dict(sorted(sample.labels.items())), separators=(",", ":")): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _submit_and_approve(server: RunningServer, tokens: Tokens) -> tuple[str, float]:
    async def requests() -> AsyncIterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name="hooked"))
        yield pb.UploadModelRequest(chunk=linear_model(4))

    alice = tokens.metadata("data_scientist", subject="alice")
    bob = tokens.metadata("model_approver", subject="bob")
    async with aio.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = pb_grpc.ModelRegistryStub(channel)
        version = await stub.UploadModel(requests(), metadata=alice)

        async def validated() -> bool:
            report = await stub.GetValidationReport(
                pb.GetValidationReportRequest(model_id=version.model_id, version=1),
                metadata=alice,
            )
            return report.state == pb.ValidationReport.PASSED

        await wait_until(validated, "the version's validation passed")
        started = time.monotonic()
        approval = await stub.SubmitForApproval(
            pb.SubmitForApprovalRequest(model_id=version.model_id, comment="please"),
            metadata=alice,
        )
        submit_seconds = time.monotonic() - started
        await stub.ApproveModelVersion(
            pb.ApproveModelVersionRequest(approval_id=approval.approval_id, comment="ok"),
            metadata=bob,
        )
    return version.model_id, submit_seconds


async def test_events_delivered_in_order_signed_and_retried(
    rig_dir: Path, receiver: WebhookReceiver
) -> None:
    rig, server, tokens = await _start(rig_dir, receiver.url())
    pg = rig.pg
    try:
        model_id, _ = await _submit_and_approve(server, tokens)
        deadline = time.monotonic() + 20
        while len(receiver.accepted()) < 3:
            assert time.monotonic() < deadline, f"delivered so far: {receiver.accepted()}"
            await asyncio.sleep(0.05)
        accepted = receiver.accepted()
        assert [e["type"] for e in accepted] == [
            "validation.completed",
            "approval.requested",
            "approval.decided",
        ]
        assert accepted[0]["state"] == "PASSED"
        assert accepted[2]["decision"] == "APPROVED"
        received = receiver.deliveries()
        assert len(received) == 5  # two failures, then each event once
        for delivery in received:
            body = delivery.body
            expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert delivery.headers["X-Mlplane-Signature"] == expected
        conn = await asyncpg.connect(pg.dsn())
        try:
            rows = await conn.fetch(
                "SELECT event_type, attempts, delivered_time IS NOT NULL AS done"
                " FROM outbox_events WHERE model_id = $1::uuid ORDER BY event_pk",
                model_id,
            )
        finally:
            await conn.close()
        assert [(r["event_type"], r["attempts"], r["done"]) for r in rows] == [
            ("validation.completed", 3, True),
            ("approval.requested", 1, True),
            ("approval.decided", 1, True),
        ]
        # The relay measures the outbox after each pass: delivered, nothing is pending.
        while (await _metrics(server))["mlplane_outbox_pending_events{}"] != 0:
            assert time.monotonic() < deadline, "the outbox gauge never went back to 0"
            await asyncio.sleep(0.05)
        assert (await _metrics(server))["mlplane_outbox_oldest_pending_event_age_seconds{}"] == 0
    finally:
        await rig.stop()


async def test_a_dead_webhook_never_blocks_submissions(rig_dir: Path) -> None:
    rig, server, tokens = await _start(rig_dir, _closed_port_url())
    pg = rig.pg
    try:
        model_id, submit_seconds = await _submit_and_approve(server, tokens)
        assert submit_seconds < 5
        await asyncio.sleep(0.3)  # let the relay try (and fail) a few times
        conn = await asyncpg.connect(pg.dsn())
        try:
            rows = await conn.fetch(
                "SELECT attempts, delivered_time, last_error FROM outbox_events"
                " WHERE model_id = $1::uuid ORDER BY event_pk",
                model_id,
            )
        finally:
            await conn.close()
        assert len(rows) == 3
        assert rows[0]["delivered_time"] is None
        assert rows[0]["attempts"] >= 1
        assert "unreachable" in rows[0]["last_error"]
        # In order per model: the request and the decision wait behind the undelivered
        # validation event.
        assert [r["attempts"] for r in rows[1:]] == [0, 0]
        seen = await _metrics(server)
        assert seen["mlplane_outbox_pending_events{}"] == 3
        assert seen["mlplane_outbox_oldest_pending_event_age_seconds{}"] > 0
        assert seen['mlplane_model_uploads_total{"outcome":"ok"}'] == 1
        assert seen['mlplane_model_upload_bytes_total{"outcome":"ok"}'] == len(linear_model(4))
        assert seen['mlplane_approval_actions_total{"action":"submit","outcome":"ok"}'] == 1
        assert seen['mlplane_approval_actions_total{"action":"approve","outcome":"ok"}'] == 1
        assert seen['mlplane_db_pool_max_connections{"pool":"registry"}'] == 10
        assert seen['mlplane_db_pool_connections{"pool":"registry","state":"idle"}'] >= 1
    finally:
        await rig.stop()
