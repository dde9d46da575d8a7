"""The numpy SampleBatch encoder produces exactly protobuf's own bytes."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import query_service_pb2 as pb

from services.query.proto_wire import sample_batch_bytes, varints


def _reference(
    micros: np.ndarray,
    tag_index: np.ndarray,
    names: list[str],
    values: np.ndarray,
    quality: np.ndarray,
) -> bytes:
    samples = []
    for us, index, value, q in zip(
        micros.tolist(), tag_index.tolist(), values.tolist(), quality.tolist(), strict=True
    ):
        seconds, rest = divmod(us, 1_000_000)
        samples.append(
            pb.Sample(
                time=Timestamp(seconds=seconds, nanos=rest * 1000),
                tag=names[index],
                value=value,
                quality=q,
            )
        )
    return pb.SampleBatch(samples=samples).SerializeToString(deterministic=True)


@pytest.mark.parametrize("seed", range(4))
def test_matches_protobuf_serialisation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2000
    micros = rng.integers(-(2**40), 2**52, n).astype(np.int64)
    micros[:4] = [0, -1, 1, 1_795_000_000_000_000]  # epoch, negatives, round seconds
    names = ["flow", "", "t" * 200, "bearing_temp"]
    tag_index = rng.integers(0, len(names), n).astype(np.int32)
    values = rng.normal(size=n)
    values[::5] = 0.0
    values[1::9] = -0.0
    values[2] = np.inf
    quality = rng.choice([0, 192, 64, -5, 2**31 - 1], n).astype(np.int32)
    ours = sample_batch_bytes(micros, tag_index, names, values, quality)
    assert ours == _reference(micros, tag_index, names, values, quality)


def test_empty_batch() -> None:
    empty = np.array([], dtype=np.int64)
    assert sample_batch_bytes(empty, empty.astype(np.int32), ["x"], empty * 1.0, empty) == b""


def test_varints() -> None:
    matrix, lengths = varints(np.array([0, 1, 127, 128, 300, -1], dtype=np.int64))
    assert lengths.tolist() == [1, 1, 1, 2, 2, 10]
    assert bytes(matrix[4, :2]) == b"\xac\x02"
