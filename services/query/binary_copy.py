"""Decode PostgreSQL's binary COPY stream straight into numpy columns.

The export queries return only fixed-width, NOT NULL columns, so every row has
the same byte layout: a field count, then (length, value) per field, all
big-endian. A numpy structured dtype over that layout turns a chunk of rows
into columns with no Python loop per row, which is what lets the service keep
up with `psql \\copy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER_LEN = len(SIGNATURE) + 8  # flags int32 + header extension length int32
TRAILER = b"\xff\xff"
# Binary COPY timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH_UNIX_MICROS = 946_684_800_000_000


class CopyFormatError(ValueError):
    pass


def row_dtype(columns: list[tuple[str, str]]) -> np.dtype[np.void]:
    """Structured dtype of one row; columns are (name, big-endian numpy type, e.g. '>i8')."""
    fields: list[tuple[str, str]] = [("_nfields", ">i2")]
    for name, kind in columns:
        fields += [(f"_len_{name}", ">i4"), (name, kind)]
    return np.dtype(fields)


@dataclass
class BinaryCopyDecoder:
    """Feed it COPY bytes in arbitrary pieces; get whole rows back as arrays."""

    dtype: np.dtype[np.void]
    _pending: bytearray = field(default_factory=bytearray)
    _header_seen: bool = False

    def feed(self, data: bytes | memoryview) -> npt.NDArray[np.void]:
        self._pending += data
        if not self._header_seen:
            if len(self._pending) < HEADER_LEN:
                return np.empty(0, dtype=self.dtype)
            if bytes(self._pending[: len(SIGNATURE)]) != SIGNATURE:
                raise CopyFormatError("not a binary COPY stream")
            extension = int.from_bytes(self._pending[HEADER_LEN - 4 : HEADER_LEN], "big")
            if len(self._pending) < HEADER_LEN + extension:
                return np.empty(0, dtype=self.dtype)
            del self._pending[: HEADER_LEN + extension]
            self._header_seen = True
        size = self.dtype.itemsize
        whole = len(self._pending) // size
        # The 2-byte trailer (-1) can sit right behind the last row.
        if whole == 0:
            self._check_trailer()
            return np.empty(0, dtype=self.dtype)
        rows = np.frombuffer(bytes(self._pending[: whole * size]), dtype=self.dtype)
        del self._pending[: whole * size]
        expected = (len(self.dtype.names or ()) - 1) // 2
        if not np.all(rows["_nfields"] == expected):
            raise CopyFormatError("unexpected field count (a NULL or variable-width column?)")
        self._check_trailer()
        return rows

    def _check_trailer(self) -> None:
        if bytes(self._pending[:2]) == TRAILER and len(self._pending) == 2:
            self._pending.clear()

    def finish(self) -> None:
        if self._pending:
            raise CopyFormatError(f"{len(self._pending)} trailing bytes in the COPY stream")


def pg_micros_to_unix_micros(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return values.astype(np.int64) + PG_EPOCH_UNIX_MICROS
