"""The upload stream regrouped into blocks: same bytes, bounded block size, early 413."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from services.common.errors import ServiceError
from services.models.upload import BLOCK_BYTES, _blocks


async def _pieces(sizes: list[int], consumed: list[int]) -> AsyncIterator[bytes]:
    for n, size in enumerate(sizes):
        consumed.append(n)
        yield bytes([n % 256]) * size


async def test_small_pieces_are_gathered_without_losing_a_byte() -> None:
    sizes = [16 * 1024] * 600 + [7]
    consumed: list[int] = []
    blocks = [b async for b in _blocks(_pieces(sizes, consumed), max_bytes=1 << 30)]
    expected = b"".join(bytes([n % 256]) * size for n, size in enumerate(sizes))
    assert b"".join(piece for block in blocks for piece in block) == expected
    sizes_of = [sum(map(len, block)) for block in blocks]
    assert all(size >= BLOCK_BYTES for size in sizes_of[:-1])
    assert all(size < BLOCK_BYTES + 16 * 1024 for size in sizes_of)
    assert len(blocks) == -(-sum(sizes) // BLOCK_BYTES)


async def test_empty_pieces_are_dropped() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b"", b"ab", b"", b"c", b""):
            yield piece

    assert [b async for b in _blocks(pieces(), max_bytes=100)] == [[b"ab", b"c"]]

    async def nothing() -> AsyncIterator[bytes]:
        for piece in (b"", b""):
            yield piece

    assert [b async for b in _blocks(nothing(), max_bytes=100)] == []


async def test_the_piece_that_crosses_the_limit_stops_the_stream() -> None:
    consumed: list[int] = []
    with pytest.raises(ServiceError) as error:
        async for _ in _blocks(_pieces([1000] * 100, consumed), max_bytes=5_500):
            pass
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.value.reason == "MODEL_TOO_LARGE"
    assert consumed == [0, 1, 2, 3, 4, 5]  # the 6th piece crossed 5,500; nothing read after it
