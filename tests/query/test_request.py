"""Export request checks that relate fields (the field rules are the contract's, see
tests/common/test_validation.py): every bad input named, before anything is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from services.common.errors import ServiceError
from services.query.request import build_export_query, build_failure_events_query

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _build(**overrides: Any) -> Any:
    args: dict[str, Any] = {
        "asset_id": "pump-001",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "tags": [],
        "resolution": None,
        "encoding": "rows",
        "max_window": timedelta(days=31),
    }
    args.update(overrides)
    return build_export_query(**args)


def test_valid_query() -> None:
    query = _build(tags=["flow", "flow", "bearing_temp"], resolution=timedelta(seconds=60))
    assert query.tags == ("flow", "bearing_temp")
    assert query.resolution_seconds == 60


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        ({"end": T0}, "INVALID_TIME_RANGE", "endTime"),
        ({"end": T0 - timedelta(seconds=1)}, "INVALID_TIME_RANGE", "endTime"),
        ({"end": T0 + timedelta(days=32)}, "TIME_RANGE_TOO_LONG", "endTime"),
        ({"resolution": timedelta(milliseconds=500)}, "INVALID_RESOLUTION", "resolution"),
        ({"resolution": timedelta(seconds=1.5)}, "INVALID_RESOLUTION", "resolution"),
        ({"resolution": timedelta(hours=2)}, "INVALID_RESOLUTION", "resolution"),
    ],
)
def test_invalid_queries(overrides: dict[str, Any], reason: str, field: str) -> None:
    with pytest.raises(ServiceError) as caught:
        _build(**overrides)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.reason == reason
    assert caught.value.metadata["field"] == field


def test_message_names_the_times() -> None:
    with pytest.raises(ServiceError) as caught:
        _build(end=T0 - timedelta(hours=1))
    assert "2026-11-01T00:00:00Z" in caught.value.message


# --- ListFailureEvents ------------------------------------------------------------------
def test_failure_events_query_bounds_are_optional() -> None:
    assert build_failure_events_query(asset_id="pump-001", start=None, end=None).start is None
    query = build_failure_events_query(asset_id="pump-001", start=T0, end=None)
    assert (query.start, query.end) == (T0, None)


@pytest.mark.parametrize(
    ("asset_id", "start", "end", "reason", "field"),
    [
        ("pump-001", T0, T0, "INVALID_TIME_RANGE", "endTime"),
        ("pump-001", T0, T0 - timedelta(days=1), "INVALID_TIME_RANGE", "endTime"),
    ],
)
def test_bad_failure_events_queries_name_the_field(
    asset_id: str, start: datetime | None, end: datetime | None, reason: str, field: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        build_failure_events_query(asset_id=asset_id, start=start, end=end)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.reason, caught.value.metadata["field"]) == (reason, field)
