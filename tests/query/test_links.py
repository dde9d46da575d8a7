"""Download links, without a server: what they carry, and every way one is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from services.common.auth import Principal
from services.common.errors import ServiceError
from services.query.links import ExportLinks
from services.query.request import ExportQuery

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
ALICE = Principal(subject="alice", tenant="demo", roles=frozenset({"data_scientist"}))
QUERY = ExportQuery(
    asset_id="pump-001",
    start=NOW - timedelta(days=1),
    end=NOW,
    tags=("flow", "bearing_temp"),
    resolution=timedelta(minutes=15),
    encoding="csv",
)


def _token(url: str) -> str:
    return url.split("?link=", 1)[1]


def test_a_link_carries_its_creator_and_query() -> None:
    links = ExportLinks(b"k" * 32, timedelta(minutes=5))
    issued = links.issue(ALICE, QUERY, NOW)
    assert issued.expires == NOW + timedelta(minutes=5)
    assert issued.url.startswith(f"/api/v1/query/downloads/{issued.export_id}?link=")
    grant = links.verify(_token(issued.url), issued.export_id, NOW + timedelta(minutes=4))
    assert grant.principal == ALICE
    assert grant.query == QUERY


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("expired", "expired"),
        ("other export", "another export"),
        ("other key", "not valid"),
        ("edited", "not valid"),
        ("garbage", "not valid"),
    ],
)
def test_refused_links_say_why(change: str, message: str) -> None:
    links = ExportLinks(b"k" * 32, timedelta(minutes=5))
    issued = links.issue(ALICE, QUERY, NOW)
    token, export_id, now = _token(issued.url), issued.export_id, NOW
    if change == "expired":
        now = NOW + timedelta(minutes=5)
    elif change == "other export":
        export_id = links.issue(ALICE, QUERY, NOW).export_id
    elif change == "other key":
        links = ExportLinks(b"j" * 32, timedelta(minutes=5))
    elif change == "edited":
        body, mac = token.split(".")
        token = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    else:
        token = "not-a-link"
    with pytest.raises(ServiceError) as refused:
        links.verify(token, export_id, now)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.reason == "LINK_INVALID"
    assert message in refused.value.message
    assert refused.value.message.endswith("create a new one")
