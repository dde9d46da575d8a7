"""History export through the real stack: Envoy → QueryService → PostgreSQL.

Expected values always come from PostgreSQL directly (as the admin), never
from the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pyarrow as pa
import pytest
from google.protobuf.duration_pb2 import Duration
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from tests.admin_sql import admin_fetch as _admin_fetch
from tests.query.stack_helpers import iso as _iso
from tests.query.stack_helpers import timestamp as _timestamp
from tests.stack_runner import RunningStack


@pytest.fixture(scope="module")
def window(stack: RunningStack) -> tuple[datetime, datetime]:
    """The last full hour of demo history of pump-001."""
    last = asyncio.run(_admin_fetchval(stack, "SELECT max(ts) FROM tag_data"))
    end = last.replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=1), end


async def _admin_fetchval(stack: RunningStack, sql: str, *args: Any) -> Any:
    rows = await _admin_fetch(stack, sql, *args)
    return rows[0][0] if rows else None


def _expected_rows(
    stack: RunningStack, asset: str, start: datetime, end: datetime, tags: list[str] | None = None
) -> list[tuple[datetime, str, float, int]]:
    rows = asyncio.run(
        _admin_fetch(
            stack,
            """
            SELECT d.ts, t.name, d.value, d.quality
              FROM tag_data d JOIN tags t USING (tag_pk) JOIN assets a ON a.asset_pk = d.asset_pk
             WHERE a.tenant_id = 'demo' AND a.asset_id = $1 AND d.ts >= $2 AND d.ts < $3
               AND ($4::text[] IS NULL OR t.name = ANY($4))
             ORDER BY d.ts, d.tag_pk
            """,
            asset,
            start,
            end,
            tags,
        )
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


# --- ListAssets ------------------------------------------------------------------
def test_list_assets_shows_only_granted_assets(stack: RunningStack, http: httpx.Client) -> None:
    response = http.get("/api/v1/query/assets", headers=stack.tokens.headers("data_scientist"))
    assert response.status_code == 200, response.text
    assets = response.json()["assets"]
    assert [a["assetId"] for a in assets] == [f"pump-{i:03d}" for i in range(1, 9)]
    first = assets[0]
    assert {t["name"] for t in first["tags"]} >= {"vibration_rms", "bearing_temp"}
    assert all(t["unit"] for t in first["tags"])
    assert first["firstTime"] < first["lastTime"]


def test_list_assets_pages(stack: RunningStack, http: httpx.Client) -> None:
    headers = stack.tokens.headers("data_scientist")
    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = http.get(
            "/api/v1/query/assets", params={"pageSize": 3, "pageToken": token}, headers=headers
        ).json()
        seen += [a["assetId"] for a in page["assets"]]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert seen == [f"pump-{i:03d}" for i in range(1, 9)]


def test_forged_page_token_is_400(stack: RunningStack, http: httpx.Client) -> None:
    headers = stack.tokens.headers("data_scientist")
    page = http.get("/api/v1/query/assets", params={"pageSize": 3}, headers=headers).json()
    token = page["nextPageToken"]
    # The first character is all data (the last of base64 may be padding bits).
    forged = ("B" if token[0] != "B" else "C") + token[1:]
    response = http.get(
        "/api/v1/query/assets", params={"pageSize": 3, "pageToken": forged}, headers=headers
    )
    assert response.status_code == 400
    other_tenant = stack.tokens.headers("data_scientist", tenant="other")
    response = http.get(
        "/api/v1/query/assets", params={"pageSize": 3, "pageToken": token}, headers=other_tenant
    )
    assert response.status_code == 400


def test_other_tenant_sees_no_assets(stack: RunningStack, http: httpx.Client) -> None:
    response = http.get(
        "/api/v1/query/assets", headers=stack.tokens.headers("data_scientist", tenant="x")
    )
    assert response.status_code == 200
    assert response.json().get("assets", []) == []


# --- exports: the happy paths -----------------------------------------------------
def test_rest_json_export(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    response = http.get(
        "/api/v1/query/history",
        params={
            "assetId": "pump-001",
            "startTime": _iso(start),
            "endTime": _iso(end),
            "tags": ["bearing_temp", "flow"],
        },
        headers=stack.tokens.headers("data_scientist"),
    )
    assert response.status_code == 200, response.text
    messages = response.json()
    header, manifest = messages[0]["header"], messages[-1]["manifest"]
    samples = [s for m in messages[1:-1] for s in m["samples"]["samples"]]
    expected = _expected_rows(stack, "pump-001", start, end, ["bearing_temp", "flow"])
    assert len(samples) == len(expected) > 0
    for got, (ts, tag, value, quality) in zip(samples, expected, strict=True):
        assert datetime.fromisoformat(got["time"].replace("Z", "+00:00")) == ts
        assert (got["tag"], got["value"], got["quality"]) == (tag, value, quality)
    assert manifest["exportId"] == header["exportId"]
    assert int(manifest["rowCount"]) == len(expected)
    assert manifest["status"] == "COMPLETED"
    assert (header["format"], manifest["format"]) == ("ROWS", "ROWS")
    assert len(manifest["sha256"]) == 64


@pytest.mark.parametrize("fmt", ["ARROW", "arrow"])
def test_rest_format_parameter_takes_the_enum_word(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime], fmt: str
) -> None:
    start, end = window
    params = {"assetId": "pump-001", "startTime": _iso(start), "endTime": _iso(end)}
    response = http.get(
        "/api/v1/query/history",
        params={**params, "tags": "flow", "format": fmt},
        headers=stack.tokens.headers("data_scientist"),
    )
    assert response.status_code == 200, response.text
    messages = response.json()
    assert messages[0]["header"]["format"] == "ARROW"
    assert messages[-1]["manifest"]["format"] == "ARROW"
    assert "arrow" in messages[1]
    csv = http.get(
        "/api/v1/query/history",
        params={**params, "format": "CSV"},
        headers=stack.tokens.headers("data_scientist"),
    )
    assert csv.status_code == 400
    assert csv.json()["message"] == (
        "format must be ROWS or ARROW; CSV is ExportHistoryCsv (GET /api/v1/query/history:csv)"
    )


def test_csv_export_streams_and_matches_manifest(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    start -= timedelta(days=2)  # well over the JSON cap: CSV is not capped
    with http.stream(
        "GET",
        "/api/v1/query/history:csv",
        params={"assetId": "pump-002", "startTime": _iso(start), "endTime": _iso(end)},
        headers=stack.tokens.headers("data_scientist"),
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        export_id = response.headers["x-mlplane-export-id"]
        body = b"".join(response.iter_bytes())
    lines = body.decode().splitlines()
    assert lines[0] == "time,tag,value,quality"
    expected = _expected_rows(stack, "pump-002", start, end)
    assert len(lines) - 1 == len(expected)
    ts, tag, value, quality = lines[1].split(",")
    assert (tag, float(value), int(quality)) == expected[0][1:]
    assert datetime.fromisoformat(ts) == expected[0][0]
    manifest = http.get(
        f"/api/v1/query/exports/{export_id}", headers=stack.tokens.headers("data_scientist")
    ).json()
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert int(manifest["rowCount"]) == len(expected)
    assert manifest["format"] == "CSV"


def test_grpc_arrow_export(
    stack: RunningStack, stub: pb_grpc.QueryServiceStub, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    start -= timedelta(hours=23)
    request = pb.ExportHistoryRequest(
        asset_id="pump-003",
        start_time=_timestamp(start),
        end_time=_timestamp(end),
        format=pb.Export.ARROW,
    )
    responses = list(stub.ExportHistory(request, metadata=stack.tokens.metadata("data_scientist")))
    assert responses[0].WhichOneof("part") == "header"
    assert responses[-1].WhichOneof("part") == "manifest"
    data = b"".join(r.arrow.data for r in responses if r.WhichOneof("part") == "arrow")
    table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
    expected = _expected_rows(stack, "pump-003", start, end)
    assert table.num_rows == len(expected)
    assert table.column("value").to_pylist() == [e[2] for e in expected]
    assert table.column("tag").to_pylist() == [e[1] for e in expected]
    assert table.column("time").to_pylist()[0] == expected[0][0]
    manifest = responses[-1].manifest
    assert manifest.row_count == len(expected)
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.format == pb.Export.ARROW


def test_grpc_aggregates_match_sql(
    stack: RunningStack, stub: pb_grpc.QueryServiceStub, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    start -= timedelta(hours=5)
    request = pb.ExportHistoryRequest(
        asset_id="pump-004",
        start_time=_timestamp(start),
        end_time=_timestamp(end),
        tags=["vibration_rms"],
        resolution=Duration(seconds=3600),
    )
    responses = list(stub.ExportHistory(request, metadata=stack.tokens.metadata("data_scientist")))
    buckets = [
        a
        for r in responses
        if r.WhichOneof("part") == "aggregates"
        for a in r.aggregates.aggregates
    ]
    expected = asyncio.run(
        _admin_fetch(
            stack,
            """
            SELECT date_trunc('hour', d.ts) AS b, avg(value), min(value), max(value), count(*)
              FROM tag_data d JOIN tags t USING (tag_pk) JOIN assets a ON a.asset_pk = d.asset_pk
             WHERE a.asset_id = 'pump-004' AND t.name = 'vibration_rms'
               AND d.ts >= $1 AND d.ts < $2
             GROUP BY 1 ORDER BY 1
            """,
            start,
            end,
        )
    )
    assert len(buckets) == len(expected) == 6
    for got, exp in zip(buckets, expected, strict=True):
        assert got.bucket_time.ToDatetime(UTC) == exp[0]
        assert got.avg == pytest.approx(exp[1], rel=1e-12)
        assert (got.min, got.max, got.count) == (exp[2], exp[3], exp[4])


# --- exports: refusals ---------------------------------------------------------
def test_ungranted_asset_is_403_naming_it_and_audited(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    request_id = f"deny-{time.time_ns()}"
    response = http.get(
        "/api/v1/query/history",
        params={"assetId": "turbine-001", "startTime": _iso(start), "endTime": _iso(end)},
        headers={**stack.tokens.headers("data_scientist"), "x-request-id": request_id},
    )
    assert response.status_code == 403
    body = response.json()
    assert "turbine-001" in body["message"]
    assert body["details"][0]["reason"] == "ASSET_NOT_GRANTED"
    rows = asyncio.run(
        _admin_fetch(
            stack,
            "SELECT outcome, resource, detail FROM audit_log WHERE request_id = $1",
            request_id,
        )
    )
    assert [(r["outcome"], r["resource"]) for r in rows] == [("denied", "asset/turbine-001")]


@pytest.mark.parametrize(("asset", "tenant"), [("pump-999", "demo"), ("pump-001", "other-tenant")])
def test_unknown_asset_is_404(
    stack: RunningStack,
    http: httpx.Client,
    window: tuple[datetime, datetime],
    asset: str,
    tenant: str,
) -> None:
    start, end = window
    response = http.get(
        "/api/v1/query/history:csv",
        params={"assetId": asset, "startTime": _iso(start), "endTime": _iso(end)},
        headers=stack.tokens.headers("data_scientist", tenant=tenant),
    )
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"endTime": "START"}, "endTime"),
        ({"endTime": "BEFORE"}, "endTime"),
        ({"startTime": "LONG_AGO"}, "days"),
        ({"tags": "no_such_tag"}, "no_such_tag"),
        ({"resolution": "-5s"}, "resolution"),
        ({"resolution": "abc"}, "resolution"),
        ({"startTime": "yesterday"}, "startTime"),
        ({"assetId": ""}, "assetId"),
    ],
)
def test_bad_inputs_are_400_naming_the_field(
    stack: RunningStack,
    http: httpx.Client,
    window: tuple[datetime, datetime],
    params: dict[str, str],
    needle: str,
) -> None:
    start, end = window
    values = {
        "START": _iso(start),
        "BEFORE": _iso(start - timedelta(hours=1)),
        "LONG_AGO": _iso(start - timedelta(days=400)),
    }
    query = {"assetId": "pump-001", "startTime": _iso(start), "endTime": _iso(end)}
    query.update({k: values.get(v, v) for k, v in params.items()})
    request_id = f"bad-{time.time_ns()}"
    response = http.get(
        "/api/v1/query/history",
        params=query,
        headers={**stack.tokens.headers("data_scientist"), "x-request-id": request_id},
    )
    assert response.status_code == 400, response.text
    assert needle.lower() in response.text.lower()
    # Refused before anything was read or recorded: no manifest was opened.
    opened = asyncio.run(
        _admin_fetchval(stack, "SELECT count(*) FROM exports WHERE request_id = $1", request_id)
    )
    assert opened == 0


def test_json_export_over_the_row_cap_is_400_pointing_to_csv(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    response = http.get(
        "/api/v1/query/history",
        params={
            "assetId": "pump-001",
            "startTime": _iso(start - timedelta(days=5)),
            "endTime": _iso(end),
        },
        headers=stack.tokens.headers("data_scientist"),
    )
    assert response.status_code == 400
    assert "csv" in response.json()["message"].lower()


# --- cancellation ------------------------------------------------------------------
def test_client_cancel_stops_the_query(
    stack: RunningStack, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    start -= timedelta(days=6)
    with grpc.insecure_channel(stack.gateway_target) as channel:
        call = pb_grpc.QueryServiceStub(channel).ExportHistory(
            pb.ExportHistoryRequest(
                asset_id="pump-005", start_time=_timestamp(start), end_time=_timestamp(end)
            ),
            metadata=stack.tokens.metadata("data_scientist"),
        )
        header = next(call)
        next(call)  # the stream is flowing
        call.cancel()
    export_id = header.header.export_id
    deadline = time.monotonic() + 20
    while True:
        active = asyncio.run(
            _admin_fetch(
                stack,
                "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'mlplane-query'"
                " AND state = 'active' AND query ILIKE '%COPY%'",
            )
        )
        status = asyncio.run(
            _admin_fetchval(
                stack, "SELECT status FROM exports WHERE export_id = $1::uuid", export_id
            )
        )
        if not active and status == "cancelled":
            break
        assert time.monotonic() < deadline, f"still active: {active}, export status {status}"
        time.sleep(0.2)
    audit = asyncio.run(
        _admin_fetchval(
            stack,
            "SELECT outcome FROM audit_log WHERE detail->>'export_id' = $1",
            export_id,
        )
    )
    assert audit == "cancelled"


def test_completed_export_is_audited_with_rows(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    response = http.get(
        "/api/v1/query/history:csv",
        params={"assetId": "pump-006", "startTime": _iso(start), "endTime": _iso(end)},
        headers=stack.tokens.headers("data_scientist"),
    )
    export_id = response.headers["x-mlplane-export-id"]
    deadline = time.monotonic() + 10
    while True:
        row = asyncio.run(
            _admin_fetch(
                stack,
                "SELECT subject, outcome, detail FROM audit_log WHERE detail->>'export_id' = $1",
                export_id,
            )
        )
        if row or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row, "export not audited"
    detail = json.loads(row[0]["detail"])
    assert (row[0]["subject"], row[0]["outcome"]) == ("alice", "completed")
    assert detail["rows"] == len(response.text.splitlines()) - 1


def test_csv_aggregates(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    start -= timedelta(hours=3)
    response = http.get(
        "/api/v1/query/history:csv",
        params={
            "assetId": "pump-001",
            "startTime": _iso(start),
            "endTime": _iso(end),
            "resolution": "3600s",
            "tags": ["flow", "bearing_temp"],
        },
        headers=stack.tokens.headers("data_scientist"),
    )
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    assert lines[0] == "bucket_time,tag,avg,min,max,count"
    assert len(lines) - 1 == 4 * 2
    assert {line.split(",")[1] for line in lines[1:]} == {"flow", "bearing_temp"}


def test_grpc_csv_carries_the_manifest_in_trailers(
    stack: RunningStack, stub: pb_grpc.QueryServiceStub, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    call = stub.ExportHistoryCsv(
        pb.ExportHistoryCsvRequest(
            asset_id="pump-007", start_time=_timestamp(start), end_time=_timestamp(end)
        ),
        metadata=stack.tokens.metadata("data_scientist"),
    )
    bodies = list(call)
    assert bodies[0].content_type.startswith("text/csv")
    data = b"".join(b.data for b in bodies)
    trailers = dict(call.trailing_metadata() or ())
    assert trailers["x-mlplane-export-sha256"] == hashlib.sha256(data).hexdigest()
    assert int(trailers["x-mlplane-export-rows"]) == len(data.splitlines()) - 1


def test_get_asset_reads_one_asset_with_its_range(stack: RunningStack, http: httpx.Client) -> None:
    alice = stack.tokens.headers("data_scientist")
    asset = http.get("/api/v1/query/assets/pump-001", headers=alice)
    assert asset.status_code == 200, asset.text
    body = asset.json()
    listed = next(
        a
        for a in http.get("/api/v1/query/assets", headers=alice).json()["assets"]
        if a["assetId"] == "pump-001"
    )
    assert body == listed  # the same asset, tags and time range as the list shows
    denied = http.get("/api/v1/query/assets/turbine-001", headers=alice)
    assert denied.status_code == 403
    assert "turbine-001" in denied.json()["message"]
    missing = http.get("/api/v1/query/assets/pump-999", headers=alice)
    assert missing.status_code == 404
