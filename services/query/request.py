"""An export request, checked: the rules that can fail before a row is read.

The field rules (id and tag patterns, required times, how many tags, a resolution of at
least 1s) are in the contract and checked by the validation interceptor before this runs;
what stays here relates fields to each other or to the deployment's limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from services.common.errors import invalid_argument

Encoding = Literal["rows", "arrow", "csv"]


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


@dataclass(frozen=True)
class FailureEventsQuery:
    asset_id: str
    start: datetime | None  # events starting at or after, when set
    end: datetime | None  # events starting before, when set


def build_failure_events_query(
    *, asset_id: str, start: datetime | None, end: datetime | None
) -> FailureEventsQuery:
    if start is not None and end is not None and end <= start:
        raise invalid_argument(
            "INVALID_TIME_RANGE",
            f"endTime ({_iso(end)}) must be after startTime ({_iso(start)})",
            field="endTime",
        )
    return FailureEventsQuery(asset_id=asset_id, start=start, end=end)


def build_export_query(
    *,
    asset_id: str,
    start: datetime,
    end: datetime,
    tags: list[str],
    resolution: timedelta | None,
    encoding: Encoding,
    max_window: timedelta,
) -> ExportQuery:
    if end <= start:
        raise invalid_argument(
            "INVALID_TIME_RANGE",
            f"endTime ({_iso(end)}) must be after startTime ({_iso(start)})",
            field="endTime",
        )
    if end - start > max_window:
        raise invalid_argument(
            "TIME_RANGE_TOO_LONG",
            f"the time range is {_days(end - start)} days; at most {_days(max_window)} days "
            "per export (split the range)",
            field="endTime",
        )
    if resolution is not None:
        if resolution.microseconds:
            raise invalid_argument(
                "INVALID_RESOLUTION",
                "resolution must be a whole number of seconds, e.g. 60s",
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
        tags=tuple(dict.fromkeys(tags)),
        resolution=resolution,
        encoding=encoding,
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _days(value: timedelta) -> str:
    return f"{value.total_seconds() / 86400:g}"
