"""ListFailureEvents through the real stack: Envoy (REST and gRPC) → QueryService → PostgreSQL.

Expected values come from PostgreSQL directly (as the admin). The demo week holds few
failures per pump, so paging runs over a tenant of its own, seeded here as the admin.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from services.common.errors import error_info_from_trailers
from tests.admin_sql import admin_fetch as _admin
from tests.query.stack_helpers import iso as _iso
from tests.query.stack_helpers import timestamp as _timestamp
from tests.stack_runner import RunningStack

TENANT = "failtest"
ASSET = "pump-900"
BASE = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
# (hours after BASE, hours down or None while still down, mode): two share a start time,
# so the page position needs the tie-breaker.
SEEDED = [
    (0, 6, "bearing_failure"),
    (30, 4, "cavitation"),
    (30, 5, "seal_leak"),
    (75, 8, "bearing_failure"),
    (120, 12, "cavitation"),
    (200, None, "seal_leak"),
]


def _expected(stack: RunningStack, tenant: str, asset: str) -> list[dict[str, Any]]:
    rows = asyncio.run(
        _admin(
            stack,
            """
            SELECT e.start_time, e.end_time, e.failure_mode, e.description
              FROM failure_events e JOIN assets a USING (asset_pk)
             WHERE a.tenant_id = $1 AND a.asset_id = $2
             ORDER BY e.start_time, e.event_pk
            """,
            tenant,
            asset,
        )
    )
    return [
        {
            "assetId": asset,
            "startTime": _iso(r["start_time"]),
            **({"endTime": _iso(r["end_time"])} if r["end_time"] else {}),
            "failureMode": r["failure_mode"],
            "description": r["description"],
        }
        for r in rows
    ]


def _normalise(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The transcoder prints timestamps as RFC 3339 with Z; compare as instants.
    def fix(event: dict[str, Any]) -> dict[str, Any]:
        out = dict(event)
        for key in ("startTime", "endTime"):
            if key in out:
                out[key] = _iso(datetime.fromisoformat(out[key].replace("Z", "+00:00")))
        return out

    return [fix(e) for e in events]


@pytest.fixture(scope="module")
def seeded(stack: RunningStack) -> Iterator[None]:
    async def seed() -> None:
        conn = await asyncpg.connect(stack.admin_dsn())
        try:
            async with conn.transaction():
                pk = await conn.fetchval(
                    "INSERT INTO assets (tenant_id, asset_id, display_name)"
                    " VALUES ($1, $2, 'Test pump') RETURNING asset_pk",
                    TENANT,
                    ASSET,
                )
                for hours, down, mode in SEEDED:
                    start = BASE + timedelta(hours=hours)
                    await conn.execute(
                        "INSERT INTO failure_events"
                        " (asset_pk, start_time, end_time, failure_mode, description)"
                        " VALUES ($1, $2, $3, $4, $5)",
                        pk,
                        start,
                        None if down is None else start + timedelta(hours=down),
                        mode,
                        f"{mode} at +{hours} h",
                    )
                await conn.execute(
                    "INSERT INTO asset_grants"
                    " (tenant_id, principal_kind, principal, asset_pattern, created_by)"
                    " VALUES ($1, 'role', 'data_scientist', 'pump-*', 'test')",
                    TENANT,
                )
        finally:
            await conn.close()

    async def unseed() -> None:
        conn = await asyncpg.connect(stack.admin_dsn())
        try:
            await conn.execute("DELETE FROM asset_grants WHERE tenant_id = $1", TENANT)
            await conn.execute("DELETE FROM assets WHERE tenant_id = $1", TENANT)
        finally:
            await conn.close()

    asyncio.run(seed())
    try:
        yield
    finally:
        asyncio.run(unseed())


def _path(asset: str) -> str:
    return f"/api/v1/query/assets/{asset}/failureEvents"


# --- reads -----------------------------------------------------------------------------
def test_rest_lists_every_demo_pump_failure(stack: RunningStack, http: httpx.Client) -> None:
    headers = stack.tokens.headers("data_scientist")
    total = 0
    for i in range(1, 9):
        asset = f"pump-{i:03d}"
        response = http.get(_path(asset), headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        events = body.get("failureEvents", [])
        assert _normalise(events) == _expected(stack, "demo", asset)
        assert not body.get("nextPageToken")
        total += len(events)
    assert (
        total
        == asyncio.run(
            _admin(
                stack,
                "SELECT count(*) FROM failure_events JOIN assets USING (asset_pk)"
                " WHERE tenant_id = 'demo' AND asset_id LIKE 'pump-%'",
            )
        )[0][0]
    )


def test_grpc_lists_failures_with_times(
    stack: RunningStack, stub: pb_grpc.QueryServiceStub, seeded: None
) -> None:
    response = stub.ListFailureEvents(
        pb.ListFailureEventsRequest(asset_id=ASSET),
        metadata=stack.tokens.metadata("data_scientist", tenant=TENANT),
        timeout=30,
    )
    assert [e.failure_mode for e in response.failure_events] == [m for _, _, m in SEEDED]
    first, last = response.failure_events[0], response.failure_events[-1]
    assert first.asset_id == ASSET
    assert first.start_time.ToDatetime(tzinfo=UTC) == BASE
    assert first.end_time.ToDatetime(tzinfo=UTC) == BASE + timedelta(hours=6)
    assert first.description == "bearing_failure at +0 h"
    assert not last.HasField("end_time")  # still down
    assert response.next_page_token == ""


@pytest.mark.parametrize("size", [1, 2, 4])
def test_rest_pages_through_ties_without_gaps_or_repeats(
    stack: RunningStack, http: httpx.Client, seeded: None, size: int
) -> None:
    headers = stack.tokens.headers("data_scientist", tenant=TENANT)
    seen: list[dict[str, Any]] = []
    token = ""
    pages = 0
    while True:
        params: dict[str, Any] = {"pageSize": size}
        if token:
            params["pageToken"] = token
        response = http.get(_path(ASSET), params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body.get("failureEvents", [])) <= size
        seen += body.get("failureEvents", [])
        pages += 1
        token = body.get("nextPageToken", "")
        if not token:
            break
        assert pages < 20
    assert _normalise(seen) == _expected(stack, TENANT, ASSET)
    assert pages == -(-len(SEEDED) // size)  # no empty last page


def test_time_filter_selects_by_start_time(
    stack: RunningStack, http: httpx.Client, seeded: None
) -> None:
    start, end = BASE + timedelta(hours=30), BASE + timedelta(hours=120)
    response = http.get(
        _path(ASSET),
        params={"startTime": _iso(start), "endTime": _iso(end)},
        headers=stack.tokens.headers("data_scientist", tenant=TENANT),
    )
    assert response.status_code == 200, response.text
    modes = [e["failureMode"] for e in response.json()["failureEvents"]]
    assert modes == ["cavitation", "seal_leak", "bearing_failure"]  # [start, end)


def test_page_token_is_bound_to_its_query(
    stack: RunningStack, http: httpx.Client, seeded: None
) -> None:
    headers = stack.tokens.headers("data_scientist", tenant=TENANT)
    token = http.get(_path(ASSET), params={"pageSize": 2}, headers=headers).json()["nextPageToken"]
    other_filter = http.get(
        _path(ASSET),
        params={"pageSize": 2, "pageToken": token, "startTime": _iso(BASE)},
        headers=headers,
    )
    assert other_filter.status_code == 400
    assert other_filter.json()["details"][0]["reason"] == "PAGE_TOKEN_MISMATCH"
    # The first character is all data (the last of base64 may be padding bits).
    tampered = ("B" if token[0] != "B" else "C") + token[1:]
    forged = http.get(_path(ASSET), params={"pageSize": 2, "pageToken": tampered}, headers=headers)
    assert forged.status_code == 400
    assert forged.json()["details"][0]["reason"] == "INVALID_PAGE_TOKEN"


def test_reads_are_audited(stack: RunningStack, http: httpx.Client, seeded: None) -> None:
    request_id = f"fe-{uuid.uuid4()}"
    response = http.get(
        _path(ASSET),
        headers={
            **stack.tokens.headers("data_scientist", tenant=TENANT),
            "x-request-id": request_id,
        },
    )
    assert response.status_code == 200, response.text
    rows = asyncio.run(
        _admin(
            stack,
            "SELECT tenant_id, subject, action, resource, outcome, detail"
            " FROM audit_log WHERE request_id = $1",
            request_id,
        )
    )
    assert [
        (r["tenant_id"], r["subject"], r["action"], r["resource"], r["outcome"]) for r in rows
    ] == [(TENANT, "alice", "history.failure_events", f"asset/{ASSET}", "completed")]
    assert '"events": 6' in rows[0]["detail"]


# --- refusals --------------------------------------------------------------------------
def test_ungranted_asset_is_403_naming_it_and_audited(
    stack: RunningStack, http: httpx.Client, stub: pb_grpc.QueryServiceStub
) -> None:
    request_id = f"fe-deny-{time.time_ns()}"
    response = http.get(
        _path("turbine-001"),
        headers={**stack.tokens.headers("data_scientist"), "x-request-id": request_id},
    )
    assert response.status_code == 403, response.text
    body = response.json()
    assert "turbine-001" in body["message"]
    assert body["details"][0]["reason"] == "ASSET_NOT_GRANTED"
    rows = asyncio.run(
        _admin(
            stack,
            "SELECT action, outcome, resource FROM audit_log WHERE request_id = $1",
            request_id,
        )
    )
    assert [tuple(r) for r in rows] == [("history.failure_events", "denied", "asset/turbine-001")]
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListFailureEvents(
            pb.ListFailureEventsRequest(asset_id="turbine-001"),
            metadata=stack.tokens.metadata("data_scientist"),
            timeout=30,
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info_from_trailers(caught.value.trailing_metadata())  # type: ignore[attr-defined]
    assert info is not None
    assert info.reason == "ASSET_NOT_GRANTED"


@pytest.mark.parametrize(
    ("asset", "tenant"), [("pump-999", "demo"), ("pump-001", "other-tenant"), (ASSET, "demo")]
)
def test_unknown_or_other_tenants_asset_is_404(
    stack: RunningStack, http: httpx.Client, seeded: None, asset: str, tenant: str
) -> None:
    response = http.get(_path(asset), headers=stack.tokens.headers("data_scientist", tenant=tenant))
    assert response.status_code == 404, response.text
    assert response.json()["details"][0]["reason"] == "ASSET_NOT_FOUND"


def test_approver_role_is_refused(stack: RunningStack, http: httpx.Client) -> None:
    response = http.get(_path("pump-001"), headers=stack.tokens.headers("model_approver"))
    assert response.status_code == 403, response.text


def test_no_token_is_401(http: httpx.Client) -> None:
    assert http.get(_path("pump-001")).status_code == 401


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"startTime": "2026-01-02T00:00:00Z", "endTime": "2026-01-01T00:00:00Z"}, None),
        ({"pageSize": "-1"}, "INVALID_FIELD"),
        ({"startTime": "yesterday"}, None),
        ({"bogus": "1"}, None),
    ],
)
def test_bad_inputs_are_400(
    stack: RunningStack, http: httpx.Client, params: dict[str, str], reason: str | None
) -> None:
    response = http.get(
        _path("pump-001"), params=params, headers=stack.tokens.headers("data_scientist")
    )
    assert response.status_code == 400, response.text
    if reason:
        assert response.json()["details"][0]["reason"] == reason


def test_inverted_range_names_the_field(
    stack: RunningStack, stub: pb_grpc.QueryServiceStub
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListFailureEvents(
            pb.ListFailureEventsRequest(
                asset_id="pump-001",
                start_time=_timestamp(BASE),
                end_time=_timestamp(BASE - timedelta(days=1)),
            ),
            metadata=stack.tokens.metadata("data_scientist"),
            timeout=30,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "endTime" in (caught.value.details() or "")  # type: ignore[attr-defined]
