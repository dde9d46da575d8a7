"""The binary COPY decoder against a stream built by hand, cut at every awkward place."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from services.query.binary_copy import (
    PG_EPOCH_UNIX_MICROS,
    SIGNATURE,
    BinaryCopyDecoder,
    CopyFormatError,
)
from services.query.encoders import SAMPLE_ROW


def _stream(rows: list[tuple[int, int, float, int]]) -> bytes:
    out = bytearray(SIGNATURE + struct.pack(">ii", 0, 0))
    for ts, tag, value, quality in rows:
        out += struct.pack(">hiqiiidih", 4, 8, ts, 4, tag, 8, value, 2, quality)
    out += struct.pack(">h", -1)
    return bytes(out)


ROWS = [(i * 1_000_000, i % 7, i * 0.5, 192) for i in range(1000)]


@pytest.mark.parametrize("seed", range(5))
def test_decodes_across_arbitrary_chunk_boundaries(seed: int) -> None:
    data = _stream(ROWS)
    rng = random.Random(seed)
    decoder = BinaryCopyDecoder(SAMPLE_ROW)
    parts, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, 97)
        parts.append(decoder.feed(data[pos : pos + step]))
        pos += step
    decoder.finish()
    rows = np.concatenate(parts)
    assert len(rows) == len(ROWS)
    assert rows["ts"].tolist() == [r[0] for r in ROWS]
    assert rows["tag_pk"].tolist() == [r[1] for r in ROWS]
    assert rows["value"].tolist() == [r[2] for r in ROWS]


def test_rejects_garbage() -> None:
    with pytest.raises(CopyFormatError):
        BinaryCopyDecoder(SAMPLE_ROW).feed(b"this is not a COPY stream at all")


def test_rejects_truncated_stream() -> None:
    decoder = BinaryCopyDecoder(SAMPLE_ROW)
    decoder.feed(_stream(ROWS)[:-30])
    with pytest.raises(CopyFormatError):
        decoder.finish()


def test_epoch() -> None:
    assert PG_EPOCH_UNIX_MICROS == 946_684_800 * 1_000_000
