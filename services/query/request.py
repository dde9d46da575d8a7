"""An export request, validated: every rule that can fail before a row is read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.common.errors import invalid_argument

Encoding = Literal["rows", "arrow", "csv"]

_ASSET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_MAX_TAGS = 256


@dataclass(frozen=True)
class ExportQuery:
    asset_id: str
    start: datetime
    end: datetime
    tags: tuple[str, ...]  # empty = every tag of the asset
    resolution: timedelta | None
    encoding: Encoding

    @property
    def resolution_seconds(self) -> int | None:
        return None if self.resolution is None else int(self.resolution.total_seconds())


def check_asset_id(asset_id: str) -> None:
    if not asset_id:
        raise invalid_argument("MISSING_FIELD", "asset_id is required", field="assetId")
    if not _ASSET_ID.match(asset_id):
        raise invalid_argument(
            "INVALID_ASSET_ID",
            "asset_id must be 1-128 letters, digits, '.', '_', ':' or '-'",
            field="assetId",
        )


@dataclass(frozen=True)
class FailureEventsQuery:
    asset_id: str
    start: datetime | None  # events starting at or after, when set
    end: datetime | None  # events starting before, when set


def build_failure_events_query(
    *, asset_id: str, start: datetime | None, end: datetime | None
) -> FailureEventsQuery:
    check_asset_id(asset_id)
    if start is not None and end is not None and end <= start:
        raise invalid_argument(
            "INVALID_TIME_RANGE",
            f"end_time ({_iso(end)}) must be after start_time ({_iso(start)})",
            field="endTime",
        )
    return FailureEventsQuery(asset_id=asset_id, start=start, end=end)


def build_export_query(
    *,
    asset_id: str,
    start: datetime | None,
    end: datetime | None,
    tags: list[str],
    resolution: timedelta | None,
    encoding: Encoding,
    max_window: timedelta,
) -> ExportQuery:
    check_asset_id(asset_id)
    if start is None:
        raise invalid_argument(
            "MISSING_FIELD", "start_time is required (RFC 3339 in REST)", field="startTime"
        )
    if end is None:
        raise invalid_argument(
            "MISSING_FIELD", "end_time is required (RFC 3339 in REST)", field="endTime"
        )
    if end <= start:
        raise invalid_argument(
            "INVALID_TIME_RANGE",
            f"end_time ({_iso(end)}) must be after start_time ({_iso(start)})",
            field="endTime",
        )
    if end - start > max_window:
        raise invalid_argument(
            "TIME_RANGE_TOO_LONG",
            f"the time range is {_days(end - start)} days; at most {_days(max_window)} days "
            "per export (split the range)",
            field="endTime",
        )
    cleaned: list[str] = []
    for tag in tags:
        if not _TAG.match(tag):
            raise invalid_argument(
                "INVALID_TAG", f"tag {tag[:64]!r} is not a valid tag name", field="tags"
            )
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > _MAX_TAGS:
        raise invalid_argument("TOO_MANY_TAGS", f"at most {_MAX_TAGS} tags", field="tags")
    if resolution == timedelta(0):
        resolution = None  # an unset protobuf Duration
    if resolution is not None:
        if resolution < timedelta(0):
            raise invalid_argument(
                "INVALID_RESOLUTION", "resolution must be positive, e.g. 60s", field="resolution"
            )
        if resolution < timedelta(seconds=1) or resolution.microseconds:
            raise invalid_argument(
                "INVALID_RESOLUTION",
                "resolution must be a whole number of seconds, at least 1s",
                field="resolution",
            )
        if resolution > end - start:
            raise invalid_argument(
                "INVALID_RESOLUTION", "resolution is longer than the time range", field="resolution"
            )
    return ExportQuery(
        asset_id=asset_id,
        start=start,
        end=end,
        tags=tuple(cleaned),
        resolution=resolution,
        encoding=encoding,
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _days(value: timedelta) -> str:
    return f"{value.total_seconds() / 86400:g}"
