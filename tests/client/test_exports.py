"""SDK history exports against the real stack, through Envoy and straight to
the QueryService; expected values from PostgreSQL or the CSV export."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pyarrow as pa
import pytest
from mlplane.v1 import query_service_pb2 as qpb

from mlplane_client import (
    Client,
    ExportFormat,
    ExportStatus,
    IntegrityError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Tag,
    Unauthenticated,
)
from mlplane_client.exports import read_arrow_export
from tests.admin_sql import admin_rows
from tests.stack_runner import RunningStack


def _expected_count(stack: RunningStack, asset: str, start: datetime, end: datetime) -> int:
    return int(
        admin_rows(
            stack,
            "SELECT count(*) FROM tag_data d JOIN assets a USING (asset_pk)"
            " WHERE a.tenant_id = 'demo' AND a.asset_id = $1 AND d.ts >= $2 AND d.ts < $3",
            asset,
            start,
            end,
        )[0][0]
    )


def test_list_assets_is_the_granted_pumps(alice: Client, query_direct: Client) -> None:
    for client in (alice, query_direct):
        assets = client.list_assets()
        assert [a.asset_id for a in assets] == [f"pump-{i:03d}" for i in range(1, 9)]
        assert set(assets[0].tag_names) >= {"bearing_temp", "flow"}
        assert isinstance(assets[0].tags[0], Tag)
        first, last = assets[0].first_time, assets[0].last_time
        assert first is not None
        assert last is not None
        assert first.utcoffset() == last.utcoffset() == timedelta(0)
        assert first < last


def test_export_frame_equals_the_csv_export_and_the_manifest(
    stack: RunningStack, alice: Client, window: tuple[datetime, datetime], tmp_path: Path
) -> None:
    start, end = window
    ex = alice.export_history("pump-001", start, end, progress=False)
    frame = ex.frame
    assert list(frame.columns) == ["time", "tag", "value", "quality"]
    assert str(frame["time"].dtype).startswith("datetime64[")
    assert "UTC" in str(frame["time"].dtype)
    assert len(frame) == ex.manifest.rows == _expected_count(stack, "pump-001", start, end)

    csv_path = tmp_path / "pump-001.csv"
    csv_manifest = alice.export_history_csv("pump-001", start, end, csv_path, progress=False)
    assert csv_manifest.sha256 == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    assert csv_manifest.rows == len(frame)
    assert csv_manifest.format == ExportFormat.CSV == "CSV"
    assert csv_manifest.encoding == "csv"  # the field's name before it became `format`
    expected = pd.read_csv(csv_path)
    expected["time"] = pd.to_datetime(expected["time"], utc=True, format="ISO8601")
    actual = frame.assign(tag=frame["tag"].astype(str), time=frame["time"].dt.as_unit("ns"))
    expected = expected.assign(time=expected["time"].dt.as_unit("ns"))
    pd.testing.assert_frame_equal(
        actual.reset_index(drop=True),
        expected[list(frame.columns)].astype({"quality": actual["quality"].dtype}),
        check_dtype=False,
    )

    # The manifest the stream ended with is the one the server stored.
    stored = alice.get_export(ex.export_id)
    assert (stored.rows, stored.sha256, stored.status) == (
        ex.manifest.rows,
        ex.manifest.sha256,
        ExportStatus.COMPLETED,
    )
    assert stored == ex.manifest  # the same fields; `raw` is left out of ==
    assert stored.raw.row_count == stored.row_count == stored.rows
    assert stored.format == "ARROW"
    assert stored.asset_id == "pump-001"
    assert stored.start_time == start
    assert stored.end_time == end
    assert stored.create_time is not None
    assert stored.create_time.utcoffset() == timedelta(0)
    assert stored.to_dict()["status"] == "COMPLETED"
    assert repr(ex).startswith(f"HistoryExport(export_id='{ex.export_id}', asset_id='pump-001',")

    wide = ex.wide()
    assert wide.index.name == "time"
    assert len(wide) == frame["time"].nunique()
    assert list(wide.columns) == list(ex.tags)
    first = frame.iloc[0]
    assert wide.loc[first["time"], str(first["tag"])] == first["value"]


def test_arrow_export_straight_to_the_service_with_tags_and_naive_times(
    stack: RunningStack, query_direct: Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    naive_start = start.astimezone(UTC).replace(tzinfo=None)
    ax = query_direct.export_history_arrow(
        "pump-002", naive_start, end.isoformat(), tags=["flow", "bearing_temp"], progress=False
    )
    assert ax.table.num_rows == ax.manifest.rows > 0
    assert set(ax.table.column("tag").to_pylist()) == {"flow", "bearing_temp"}
    assert set(ax.manifest.tags) == {"flow", "bearing_temp"}
    assert query_direct.get_export(ax.export_id).sha256 == ax.manifest.sha256


def test_aggregates_with_a_resolution(
    stack: RunningStack, alice: Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    ex = alice.export_history(
        "pump-003", start, end, tags=["flow"], resolution=timedelta(minutes=10), progress=True
    )
    assert list(ex.frame.columns) == ["bucket_time", "tag", "avg", "min", "max", "count"]
    assert len(ex.frame) == 6 == ex.manifest.rows
    assert ex.manifest.resolution == timedelta(minutes=10)
    assert int(ex.frame["count"].sum()) == _expected_count_tag(stack, "pump-003", "flow", window)
    assert list(ex.wide("max").columns) == ["flow"]


def _expected_count_tag(
    stack: RunningStack, asset: str, tag: str, window: tuple[datetime, datetime]
) -> int:
    return int(
        admin_rows(
            stack,
            "SELECT count(*) FROM tag_data d JOIN assets a USING (asset_pk)"
            " JOIN tags t USING (tag_pk) WHERE a.tenant_id = 'demo' AND a.asset_id = $1"
            " AND t.name = $2 AND d.ts >= $3 AND d.ts < $4",
            asset,
            tag,
            *window,
        )[0][0]
    )


def test_empty_range_is_an_empty_frame(alice: Client, window: tuple[datetime, datetime]) -> None:
    _, end = window
    ex = alice.export_history(
        "pump-001", end + timedelta(days=400), end + timedelta(days=401), progress=False
    )
    assert ex.frame.empty
    assert ex.manifest.rows == 0
    assert list(ex.frame.columns) == ["time", "tag", "value", "quality"]


def test_failure_events_are_the_database_rows(stack: RunningStack, alice: Client) -> None:
    rows = admin_rows(
        stack,
        "SELECT f.start_time, f.end_time, f.failure_mode, f.description FROM failure_events f"
        " JOIN assets a USING (asset_pk) WHERE a.tenant_id = 'demo' AND a.asset_id = 'pump-004'"
        " ORDER BY f.start_time",
    )
    assert rows, "the demo plant has failures for every pump"
    events = alice.list_failure_events("pump-004")
    assert list(events.columns) == [
        "asset_id",
        "start_time",
        "end_time",
        "failure_mode",
        "description",
    ]
    assert (events["asset_id"] == "pump-004").all()
    assert [t.to_pydatetime() for t in events["start_time"]] == [r[0] for r in rows]
    assert list(events["failure_mode"]) == [r[2] for r in rows]
    later = alice.list_failure_events("pump-004", start=rows[-1][0])
    assert len(later) == 1


def test_typed_errors_carry_the_server_reason(
    stack: RunningStack, alice: Client, query_direct: Client, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    for client in (alice, query_direct):
        with pytest.raises(PermissionDenied) as denied:
            client.export_history("turbine-001", start, end, progress=False)
        assert denied.value.reason == "ASSET_NOT_GRANTED"
        assert denied.value.metadata["assetId"] == "turbine-001"
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert denied.value.domain == "mlplane"
        assert denied.value.request_id
        assert denied.value.hint == ""  # the message names the asset: nothing to add

        with pytest.raises(NotFound) as missing:
            client.export_history("pump-999", start, end, progress=False)
        assert missing.value.reason == "ASSET_NOT_FOUND"
        assert str(missing.value).startswith("NOT_FOUND ASSET_NOT_FOUND: ")
        assert "\n" not in str(missing.value)

        with pytest.raises(InvalidArgument) as bad_range:
            client.export_history("pump-001", end, start, progress=False)
        assert bad_range.value.reason == "INVALID_TIME_RANGE"

    for target in (stack.gateway_target, stack.service_target("query")):
        with Client(target, token=stack.tokens.expired()) as expired:
            with pytest.raises(Unauthenticated):
                expired.list_assets()
        with Client(target) as anonymous:
            with pytest.raises(Unauthenticated):
                anonymous.export_history("pump-001", start, end, progress=False)


def _arrow_stream(manifest: qpb.Export | None) -> tuple[qpb.ExportHeader, list[Any]]:
    table = pa.table({"time": pa.array([1, 2], pa.timestamp("us", "UTC")), "value": [1.0, 2.0]})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data = sink.getvalue()
    parts = [qpb.ExportHistoryResponse(arrow=qpb.ArrowBatch(data=data[i : i + 100])) for i in
             range(0, len(data), 100)]  # fmt: skip
    if manifest is not None:
        manifest.sha256 = manifest.sha256 or hashlib.sha256(data).hexdigest()
        parts.append(qpb.ExportHistoryResponse(manifest=manifest))
    return qpb.ExportHeader(export_id="e1", asset_id="a"), parts


def test_the_received_bytes_are_checked_against_the_manifest() -> None:
    header, parts = _arrow_stream(qpb.Export(export_id="e1", row_count=2))
    assert read_arrow_export(header, iter(parts), progress=False).table.num_rows == 2

    for manifest, reason in [
        (qpb.Export(export_id="e1", row_count=2, sha256="0" * 64), "SHA256_MISMATCH"),
        (qpb.Export(export_id="e1", row_count=3), "SHA256_MISMATCH"),
        (None, "INCOMPLETE_STREAM"),
    ]:
        header, parts = _arrow_stream(manifest)
        with pytest.raises(IntegrityError) as caught:
            read_arrow_export(header, iter(parts), progress=False)
        assert caught.value.reason == reason
