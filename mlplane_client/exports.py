"""History exports as pandas / Arrow, with the manifest to cite as lineage."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import query_service_pb2 as qpb

from mlplane_client._progress import Progress
from mlplane_client._record import Record, utc
from mlplane_client.enums import ExportFormat, ExportStatus
from mlplane_client.errors import IntegrityError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    import pyarrow as pa

TimeLike = datetime | str
ResolutionLike = timedelta | int | float


def to_timestamp(value: TimeLike) -> Timestamp:
    """A datetime (tz-aware, or naive = UTC) or an ISO 8601 string as a Timestamp.

    >>> to_timestamp("2026-11-20T00:00:00Z").ToJsonString()
    '2026-11-20T00:00:00Z'
    >>> to_timestamp(datetime(2026, 11, 20, 1, 30)).ToJsonString()
    '2026-11-20T01:30:00Z'
    """
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def to_duration(value: ResolutionLike) -> Duration:
    """A timedelta or a number of seconds as a Duration.

    >>> to_duration(60).ToJsonString()
    '60s'
    >>> to_duration(timedelta(minutes=15)).ToJsonString()
    '900s'
    """
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    duration = Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    return duration


@dataclass(frozen=True, slots=True, repr=False)
class ExportManifest(Record):
    """What the server recorded about one export: cite `export_id` as lineage.

    `sha256` is the hex SHA-256 of exactly the bytes received (the Arrow IPC
    stream for `export_history`, the CSV document for `export_history_csv`);
    `rows` the number of data rows (samples, or buckets with a resolution).
    `format` and `status` are words (`ExportFormat`, `ExportStatus`); `raw` is
    the `Export` message as received.

    >>> m = ExportManifest.from_proto(qpb.Export(
    ...     export_id="5b0c", asset_id="pump-001", row_count=3600, format=qpb.Export.CSV,
    ...     status=qpb.Export.COMPLETED, sha256="9f2c"))
    >>> m
    ExportManifest(export_id='5b0c', asset_id='pump-001', rows=3600, format=CSV, status=COMPLETED, sha256='9f2c')
    >>> m.status == "COMPLETED", m.to_dict()["format"]
    (True, 'CSV')
    """  # noqa: E501 (a repr is one line)

    export_id: str
    rows: int
    sha256: str
    asset_id: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    tags: tuple[str, ...] = ()
    resolution: timedelta | None = None
    format: ExportFormat = ExportFormat.FORMAT_UNSPECIFIED
    status: ExportStatus = ExportStatus.STATUS_UNSPECIFIED
    created_by: str = ""
    create_time: datetime | None = None
    raw: qpb.Export = field(default_factory=qpb.Export, kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "export_id",
        "asset_id",
        "rows",
        "format",
        "status",
        "start_time",
        "end_time",
        "tags",
        "resolution",
        "sha256",
    )

    @classmethod
    def from_proto(cls, message: qpb.Export) -> ExportManifest:
        return cls(
            export_id=message.export_id,
            rows=int(message.row_count),
            sha256=message.sha256,
            asset_id=message.asset_id,
            start_time=utc(message.start_time) if message.HasField("start_time") else None,
            end_time=utc(message.end_time) if message.HasField("end_time") else None,
            tags=tuple(message.tags),
            resolution=message.resolution.ToTimedelta() if message.HasField("resolution") else None,
            format=ExportFormat.from_proto(message.format),
            status=ExportStatus.from_proto(message.status),
            created_by=message.created_by,
            create_time=utc(message.create_time) if message.HasField("create_time") else None,
            raw=message,
        )

    @property
    def row_count(self) -> int:
        """`rows`, by the protobuf field's name."""
        return self.rows

    @property
    def encoding(self) -> str:
        """The format in lower case (`"arrow"`, `"csv"`): the field's name and
        spelling before the contract named it `format`."""
        return self.format.value.lower()


@dataclass(frozen=True, repr=False)
class ArrowExport:
    """An export as a `pyarrow.Table`, with its manifest.

    Raw samples: columns `time` (timestamp[us, UTC]), `tag` (dictionary),
    `value` (float64), `quality` (int16). With a resolution: `bucket_time`,
    `tag`, `avg`, `min`, `max`, `count`.
    """

    table: pa.Table
    manifest: ExportManifest
    tags: tuple[str, ...] = ()

    @property
    def export_id(self) -> str:
        return self.manifest.export_id

    def __repr__(self) -> str:
        return _export_repr(self, self.table.column_names)


@dataclass(frozen=True, repr=False)
class HistoryExport:
    """An export as a long pandas DataFrame (one row per sample or bucket), with
    its manifest.

    >>> ex = c.export_history("pump-001", "2026-11-20", "2026-11-21")  # doctest: +SKIP
    >>> ex.frame.columns.tolist()  # doctest: +SKIP
    ['time', 'tag', 'value', 'quality']
    >>> ex.wide()[["flow", "bearing_temp"]].describe()  # doctest: +SKIP
    """

    frame: pd.DataFrame
    manifest: ExportManifest
    tags: tuple[str, ...] = field(default=())

    @property
    def export_id(self) -> str:
        return self.manifest.export_id

    @property
    def aggregated(self) -> bool:
        return "bucket_time" in self.frame.columns

    def __repr__(self) -> str:
        return _export_repr(self, [str(c) for c in self.frame.columns])

    def wide(self, values: str | None = None) -> pd.DataFrame:
        """One row per time, one column per tag (in the export's tag order).

        `values` picks the column to spread: `value` for raw samples (the
        default), `avg` (default), `min`, `max` or `count` for aggregates. The
        index is named `time` in both cases.
        """
        time_column = "bucket_time" if self.aggregated else "time"
        values = values or ("avg" if self.aggregated else "value")
        long = self.frame.assign(tag=self.frame["tag"].astype(str))
        wide = long.pivot(index=time_column, columns="tag", values=values)
        present = [t for t in self.tags if t in wide.columns]
        wide = wide.reindex(columns=present + [c for c in wide.columns if c not in present])
        wide.index.name = "time"
        wide.columns.name = "tag"
        return wide


def _export_repr(export: ArrowExport | HistoryExport, columns: list[str]) -> str:
    # The data itself stays out: `.frame` / `.table` show it.
    m = export.manifest
    return (
        f"{type(export).__name__}(export_id={m.export_id!r}, asset_id={m.asset_id!r}, "
        f"rows={m.rows}, columns={columns!r})"
    )


class _ArrowBytes(io.RawIOBase):
    """The `ArrowBatch.data` of an export stream as one readable byte stream,
    hashed as it passes; stops at the manifest and keeps it."""

    def __init__(self, messages: Iterator[qpb.ExportHistoryResponse]) -> None:
        self._messages = messages
        self._buffer = memoryview(b"")
        self.digest = hashlib.sha256()
        self.nbytes = 0
        self.manifest: qpb.Export | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        # Fill `target` completely unless the stream ends: pyarrow takes a
        # short read for the end of the file, and Arrow messages may span
        # several gRPC messages.
        view = memoryview(target).cast("B")
        filled = 0
        while filled < len(view):
            if not self._buffer and not self._pull():
                break
            size = min(len(view) - filled, len(self._buffer))
            view[filled : filled + size] = self._buffer[:size]
            self._buffer = self._buffer[size:]
            filled += size
        return filled

    def _pull(self) -> bool:
        if self.manifest is not None:
            return False
        for message in self._messages:
            part = message.WhichOneof("part")
            if part == "arrow":
                data = message.arrow.data
                self.digest.update(data)
                self.nbytes += len(data)
                self._buffer = memoryview(data)
                return True
            if part == "manifest":
                self.manifest = message.manifest
                return False
        return False

    def drain(self) -> None:
        """Read what follows the Arrow end-of-stream marker (the manifest)."""
        while self._pull():
            self._buffer = memoryview(b"")


def read_arrow_export(
    header: qpb.ExportHeader,
    messages: Iterator[qpb.ExportHistoryResponse],
    *,
    progress: bool,
) -> ArrowExport:
    """Decode an `ExportHistory` stream (format ARROW) after its header message,
    batch by batch, verifying the manifest's SHA-256 over the received bytes."""
    import pyarrow as pa

    raw = _ArrowBytes(messages)
    batches = []
    with Progress(progress, desc=f"export {header.asset_id}", rows=True) as bar:
        reader = pa.ipc.open_stream(raw)
        before = 0
        for batch in reader:
            batches.append(batch)
            bar.update(rows=batch.num_rows, nbytes=raw.nbytes - before)
            before = raw.nbytes
        raw.drain()
        bar.update(nbytes=raw.nbytes - before)
        table = pa.Table.from_batches(batches, schema=reader.schema)
    manifest = raw.manifest
    if manifest is None:
        raise IntegrityError(
            f"export {header.export_id} ended without its manifest",
            reason="INCOMPLETE_STREAM",
            metadata={"exportId": header.export_id},
        )
    received = raw.digest.hexdigest()
    if manifest.sha256 != received or manifest.row_count != table.num_rows:
        raise IntegrityError(
            f"export {header.export_id}: received {table.num_rows} rows hashing to "
            f"{received}, the manifest says {manifest.row_count} rows hashing to "
            f"{manifest.sha256 or 'nothing'}",
            reason="SHA256_MISMATCH",
            metadata={"exportId": header.export_id},
        )
    return ArrowExport(
        table=table,
        manifest=ExportManifest.from_proto(manifest),
        tags=tuple(t.name for t in header.tags),
    )
