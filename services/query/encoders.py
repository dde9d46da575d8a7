"""Turn decoded export rows into what goes on the wire: Arrow IPC, protobuf
batches or CSV bytes, and hash exactly those bytes for the manifest."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import query_service_pb2 as pb

from services.query.binary_copy import pg_micros_to_unix_micros, row_dtype
from services.query.proto_wire import sample_batch_bytes

SAMPLE_ROW = row_dtype([("ts", ">i8"), ("tag_pk", ">i4"), ("value", ">f8"), ("quality", ">i2")])
AGGREGATE_ROW = row_dtype(
    [
        ("bucket", ">i8"),
        ("tag_pk", ">i4"),
        ("avg", ">f8"),
        ("min", ">f8"),
        ("max", ">f8"),
        ("count", ">i8"),
    ]
)

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("tag", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("quality", pa.int16(), nullable=False),
    ]
)
AGGREGATE_SCHEMA = pa.schema(
    [
        pa.field("bucket_time", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("tag", pa.dictionary(pa.int32(), pa.string()), nullable=False),
        pa.field("avg", pa.float64(), nullable=False),
        pa.field("min", pa.float64(), nullable=False),
        pa.field("max", pa.float64(), nullable=False),
        pa.field("count", pa.int64(), nullable=False),
    ]
)


@dataclass
class TagIndex:
    """Maps tag_pk to a position in the tag dictionary (the header's tag order)."""

    names: list[str]
    tag_pks: list[int]
    _lookup: npt.NDArray[np.int32] = field(init=False)

    def __post_init__(self) -> None:
        size = (max(self.tag_pks) + 1) if self.tag_pks else 1
        self._lookup = np.full(size, -1, dtype=np.int32)
        self._lookup[np.asarray(self.tag_pks, dtype=np.int64)] = np.arange(
            len(self.tag_pks), dtype=np.int32
        )

    def positions(self, tag_pks: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        return self._lookup[tag_pks.astype(np.int64)]


class Digest:
    """SHA-256 and row count over exactly the bytes a client receives."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.rows = 0

    def update(self, data: bytes | bytearray) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class ArrowEncoder:
    """Rows in, Arrow IPC stream bytes out: the schema first, then one record
    batch per call, and the end-of-stream marker from `close`."""

    def __init__(self, tags: TagIndex, *, aggregates: bool) -> None:
        self._aggregates = aggregates
        self._schema = AGGREGATE_SCHEMA if aggregates else SAMPLE_SCHEMA
        self._dictionary = pa.array(tags.names, type=pa.string())
        self._tags = tags
        self._sink = io.BytesIO()
        self._writer = pa.ipc.new_stream(self._sink, self._schema)

    def _take(self) -> bytes:
        data = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        return data

    def encode(self, rows: npt.NDArray[np.void]) -> bytes:
        tag = pa.DictionaryArray.from_arrays(
            pa.array(self._tags.positions(rows["tag_pk"]), type=pa.int32()), self._dictionary
        )
        if self._aggregates:
            columns = [
                pa.array(pg_micros_to_unix_micros(rows["bucket"]), type=pa.timestamp("us", "UTC")),
                tag,
                pa.array(rows["avg"].astype(np.float64)),
                pa.array(rows["min"].astype(np.float64)),
                pa.array(rows["max"].astype(np.float64)),
                pa.array(rows["count"].astype(np.int64)),
            ]
        else:
            columns = [
                pa.array(pg_micros_to_unix_micros(rows["ts"]), type=pa.timestamp("us", "UTC")),
                tag,
                pa.array(rows["value"].astype(np.float64)),
                pa.array(rows["quality"].astype(np.int16)),
            ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self._schema))
        return self._take()

    def close(self) -> bytes:
        self._writer.close()
        return self._take()


def _timestamps(unix_micros: npt.NDArray[np.int64]) -> list[Timestamp]:
    seconds, micros = np.divmod(unix_micros, 1_000_000)
    return [
        Timestamp(seconds=int(s), nanos=int(m) * 1000)
        for s, m in zip(seconds.tolist(), micros.tolist(), strict=True)
    ]


def sample_batch(rows: npt.NDArray[np.void], tags: TagIndex) -> tuple[pb.SampleBatch, bytes]:
    """The batch message and its canonical serialisation (what the manifest hashes)."""
    data = sample_batch_bytes(
        pg_micros_to_unix_micros(rows["ts"]),
        tags.positions(rows["tag_pk"]),
        tags.names,
        rows["value"].astype(np.float64),
        rows["quality"].astype(np.int32),
    )
    return pb.SampleBatch.FromString(data), data


def aggregate_batch(rows: npt.NDArray[np.void], tags: TagIndex) -> tuple[pb.AggregateBatch, bytes]:
    names = [tags.names[i] for i in tags.positions(rows["tag_pk"]).tolist()]
    times = _timestamps(pg_micros_to_unix_micros(rows["bucket"]))
    cols = [rows[c].astype(np.float64).tolist() for c in ("avg", "min", "max")]
    counts = rows["count"].astype(np.int64).tolist()
    message = pb.AggregateBatch(
        aggregates=[
            pb.Aggregate(bucket_time=t, tag=n, avg=a, min=lo, max=hi, count=c)
            for t, n, a, lo, hi, c in zip(times, names, *cols, counts, strict=True)
        ]
    )
    return message, message.SerializeToString(deterministic=True)
