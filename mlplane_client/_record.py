"""What every typed result shares: a short `repr`, an HTML table for Jupyter and
`to_dict()` with plain JSON values."""

from __future__ import annotations

import html
from dataclasses import Field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from google.protobuf.timestamp_pb2 import Timestamp

from mlplane_client.enums import ProtoWord


class Record:
    """Base of the frozen dataclasses the SDK returns.

    `_SHOWN` names the attributes `repr` shows (empty ones are left out, so a
    line stays short); `to_dict()` and the HTML table show every field but `raw`.
    """

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]
    _SHOWN: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every field but `raw` as plain JSON values: enums as their names,
        times as ISO 8601 (UTC, `Z`), durations in seconds, nested results as
        dicts, tuples as lists."""
        return {name: plain(getattr(self, name)) for name in self._field_names()}

    def __repr__(self) -> str:
        shown = (
            f"{name}={brief(value)}"
            for name in self._SHOWN
            if not is_empty(value := getattr(self, name))
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    def _repr_html_(self) -> str:
        # Jupyter renders the object a cell returns with this; inside a list it
        # uses the one-line repr.
        rows = "".join(
            f'<tr><th style="text-align:left">{html.escape(name)}</th>'
            f'<td style="text-align:left">{html.escape(cell(value)).replace(chr(10), "<br>")}'
            "</td></tr>"
            for name in self._field_names()
            if not is_empty(value := getattr(self, name))
        )
        return f"<b>{html.escape(type(self).__name__)}</b><table>{rows}</table>"

    def _field_names(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "raw"]


def utc(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`.

    >>> iso(datetime(2026, 11, 20, 1, 30, tzinfo=UTC))
    '2026-11-20T01:30:00Z'
    """
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_empty(value: object) -> bool:
    if isinstance(value, ProtoWord):
        return value.number == 0
    return value is None or (isinstance(value, str | tuple | list | dict) and not value)


def plain(value: object) -> Any:
    if isinstance(value, ProtoWord):
        return value.value
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def brief(value: object) -> str:
    """How `repr` shows one value: words bare, times to the second."""
    if isinstance(value, ProtoWord):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    return repr(value)


def binary_size(size: int) -> str:
    """Bytes in MiB, or GiB from 1 GiB on.

    >>> binary_size(89_434_112), binary_size(2**30), binary_size(3 * 2**29)
    ('85.3 MiB', '1 GiB', '1.5 GiB')
    """
    if size >= 2**30:
        return f"{size / 2**30:.3g} GiB"
    return f"{size / 2**20:.1f} MiB"


def brief_number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def cell(value: object) -> str:
    """How the HTML table shows one value: nested results by their `str`."""
    if isinstance(value, tuple | list):
        return "\n".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={brief_number(v)}" for k, v in value.items())
    if isinstance(value, ProtoWord | datetime | timedelta):
        return brief(value)
    return str(value)
