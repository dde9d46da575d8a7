"""Download links and the list of one's exports, through the real stack.

A browser's download cannot send a bearer token: `CreateExportLink` signs a short-lived link
scoped to the caller and the query, and `GET /api/v1/query/downloads/{id}?link=…` streams the
CSV with no Authorization header at all, recorded and audited as the link's creator.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.admin_sql import admin_fetch
from tests.query.stack_helpers import iso
from tests.stack_runner import RunningStack


@pytest.fixture(scope="module")
def window(stack: RunningStack) -> tuple[datetime, datetime]:
    rows = asyncio.run(admin_fetch(stack, "SELECT max(ts) FROM tag_data"))
    end = rows[0][0].replace(minute=0, second=0, microsecond=0)
    return end - timedelta(hours=2), end


def _link(
    stack: RunningStack,
    http: httpx.Client,
    window: tuple[datetime, datetime],
    *,
    subject: str = "alice",
    asset: str = "pump-001",
    tags: tuple[str, ...] = ("flow",),
) -> dict[str, str]:
    start, end = window
    headers = stack.tokens.headers("data_scientist", subject=subject)
    response = http.post(
        "/api/v1/query/history:link",
        json={"assetId": asset, "startTime": iso(start), "endTime": iso(end), "tags": list(tags)},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_link_downloads_the_csv_once_without_a_token(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    link = _link(stack, http, window, subject="link-user")
    assert link["url"].startswith(f"/api/v1/query/downloads/{link['exportId']}?link=")
    expires = datetime.fromisoformat(link["expireTime"].replace("Z", "+00:00"))
    assert timedelta(seconds=200) < expires - datetime.now(UTC) <= timedelta(seconds=300)

    download = http.get(link["url"])  # no Authorization header
    assert download.status_code == 200, download.text
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith('attachment; filename="pump-001-')
    assert download.headers["x-mlplane-export-id"] == link["exportId"]

    manifest = http.get(
        f"/api/v1/query/exports/{link['exportId']}",
        headers=stack.tokens.headers(subject="link-user"),
    ).json()
    assert manifest["status"] == "COMPLETED"
    assert manifest["createdBy"] == "link-user"  # recorded as the link's creator
    assert manifest["sha256"] == hashlib.sha256(download.content).hexdigest()
    assert int(manifest["rowCount"]) == len(download.content.splitlines()) - 1 > 0
    audit = asyncio.run(
        admin_fetch(
            stack,
            "SELECT subject, outcome FROM audit_log WHERE action = 'history.export'"
            " AND detail->>'export_id' = $1",
            link["exportId"],
        )
    )
    assert [(r["subject"], r["outcome"]) for r in audit] == [("link-user", "completed")]

    again = http.get(link["url"])
    assert again.status_code == 401
    assert again.json()["details"][0]["reason"] == "LINK_INVALID"
    assert "used already" in again.json()["message"]


def test_a_tampered_or_borrowed_link_is_refused_and_records_nothing(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    link = _link(stack, http, window)
    token = parse_qs(urlsplit(link["url"]).query)["link"][0]
    body, mac = token.split(".")
    other = _link(stack, http, window)
    cases = {
        "another export's id": f"/api/v1/query/downloads/{other['exportId']}?link={token}",
        "edited payload": f"/api/v1/query/downloads/{link['exportId']}?link=x{body[1:]}.{mac}",
        "no link": f"/api/v1/query/downloads/{link['exportId']}",
        "random id": f"/api/v1/query/downloads/{uuid.uuid4()}?link={token}",
    }
    for what, url in cases.items():
        response = http.get(url)
        assert response.status_code in (400, 401), (what, response.text)
    for export_id in (link["exportId"], other["exportId"]):
        rows = asyncio.run(
            admin_fetch(stack, "SELECT 1 FROM exports WHERE export_id = $1", uuid.UUID(export_id))
        )
        assert rows == [], "a refused link recorded an export"


def test_a_link_is_checked_against_the_grants_when_made_and_when_used(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    refused = http.post(
        "/api/v1/query/history:link",
        json={"assetId": "turbine-001", "startTime": iso(start), "endTime": iso(end)},
        headers=stack.tokens.headers("data_scientist"),
    )
    assert refused.status_code == 403
    assert refused.json()["details"][0]["reason"] == "ASSET_NOT_GRANTED"
    # A grant revoked between making and using the link: the download is refused.
    subject = f"revoked-{uuid.uuid4().hex[:6]}"
    grant = asyncio.run(
        admin_fetch(
            stack,
            "INSERT INTO asset_grants (tenant_id, principal_kind, principal, asset_pattern,"
            " created_by) VALUES ('demo', 'subject', $1, 'turbine-001', 'test')"
            " RETURNING grant_pk",
            subject,
        )
    )[0][0]
    link = _link(stack, http, window, subject=subject, asset="turbine-001", tags=())
    asyncio.run(admin_fetch(stack, "DELETE FROM asset_grants WHERE grant_pk = $1", grant))
    response = http.get(link["url"])
    assert response.status_code == 403
    assert response.json()["details"][0]["reason"] == "ASSET_NOT_GRANTED"


def test_the_access_log_never_holds_a_link(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    link = _link(stack, http, window)
    assert http.get(link["url"]).status_code == 200
    token = parse_qs(urlsplit(link["url"]).query)["link"][0]
    signature = token.split(".")[1]
    logs = stack.state_dir / "logs"
    for log in logs.glob("*.log"):
        assert signature not in log.read_text(errors="replace"), log.name


def test_list_exports_shows_ones_own_newest_first_and_pages(
    stack: RunningStack, http: httpx.Client, window: tuple[datetime, datetime]
) -> None:
    subject = f"lister-{uuid.uuid4().hex[:6]}"
    headers = stack.tokens.headers("data_scientist", subject=subject)
    start, end = window
    made = []
    for _ in range(3):
        csv = http.get(
            "/api/v1/query/history:csv",
            params={"assetId": "pump-001", "startTime": iso(start), "endTime": iso(end)},
            headers=headers,
        )
        assert csv.status_code == 200
        made.append(csv.headers["x-mlplane-export-id"])
    first = http.get("/api/v1/query/exports", params={"pageSize": 2}, headers=headers).json()
    assert [e["exportId"] for e in first["exports"]] == made[::-1][:2]
    assert {e["createdBy"] for e in first["exports"]} == {subject}
    rest = http.get(
        "/api/v1/query/exports",
        params={"pageSize": 2, "pageToken": first["nextPageToken"]},
        headers=headers,
    ).json()
    assert [e["exportId"] for e in rest["exports"]] == [made[0]]
    assert rest["nextPageToken"] == ""
    stranger = http.get("/api/v1/query/exports", headers=stack.tokens.headers("data_scientist"))
    assert not {e["exportId"] for e in stranger.json()["exports"]} & set(made)
