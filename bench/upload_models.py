"""Valid ONNX models of a chosen size, written to disk without holding the weights in memory.

The model is ``Y = X @ W`` with one large float32 initializer ``W``. Protobuf merges a message
from fields in any order, so the file is the model's small fields, then the graph's small
fields, then the initializer whose ``raw_data`` is streamed from a seeded generator 16 MiB at
a time. The file parses exactly like ``onnx.save`` of the same model would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.checker
from onnx import TensorProto, helper

MIB = 1024 * 1024
_COLUMNS = 256  # W is (rows, 256): Y = X[batch, rows] @ W
_FLOATS_PER_CHUNK = 4 * MIB  # 16 MiB of float32 per write
_RAW_DATA = 9  # TensorProto.raw_data
_INITIALIZER = 5  # GraphProto.initializer
_GRAPH = 7  # ModelProto.graph


@dataclass(frozen=True)
class ModelFile:
    path: Path
    size: int  # bytes of the whole file
    sha256: str
    weight_bytes: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _length_delimited(number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field (wire type 2)."""
    return _varint((number << 3) | 2) + _varint(length)


def write_matmul_model(path: Path, approx_bytes: int, *, seed: int = 0) -> ModelFile:
    """Write a ~``approx_bytes`` ONNX model to ``path``; memory stays ~16 MiB whatever the size."""
    rows = max(1, approx_bytes // (4 * _COLUMNS))
    weight_bytes = rows * _COLUMNS * 4
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "bench_matmul",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", _COLUMNS])],
    )
    model = helper.make_model(
        graph, producer_name="mlplane-bench", opset_imports=[helper.make_opsetid("", 17)]
    )
    model.producer_version = "1.0"
    model.ClearField("graph")
    head = model.SerializeToString()
    graph_fields = graph.SerializeToString()
    tensor_head = TensorProto(name="W", dims=[rows, _COLUMNS], data_type=TensorProto.FLOAT)
    tensor_fields = tensor_head.SerializeToString()

    tensor_len = len(tensor_fields) + len(_length_delimited(_RAW_DATA, weight_bytes)) + weight_bytes
    graph_len = len(graph_fields) + len(_length_delimited(_INITIALIZER, tensor_len)) + tensor_len
    prefix = b"".join(
        [
            head,
            _length_delimited(_GRAPH, graph_len),
            graph_fields,
            _length_delimited(_INITIALIZER, tensor_len),
            tensor_fields,
            _length_delimited(_RAW_DATA, weight_bytes),
        ]
    )
    digest = hashlib.sha256(prefix)
    rng = np.random.default_rng(seed)
    floats_left = rows * _COLUMNS
    with path.open("wb") as out:
        out.write(prefix)
        while floats_left > 0:
            n = min(floats_left, _FLOATS_PER_CHUNK)
            # Little-endian float32 is ONNX's raw_data layout.
            block = rng.random(n, dtype=np.float32).astype("<f4", copy=False).tobytes()
            out.write(block)
            digest.update(block)
            floats_left -= n
    size = path.stat().st_size
    if size != len(prefix) + weight_bytes:
        raise RuntimeError(f"{path}: wrote {size} bytes, expected {len(prefix) + weight_bytes}")
    return ModelFile(path=path, size=size, sha256=digest.hexdigest(), weight_bytes=weight_bytes)


def check(model: ModelFile) -> None:
    """onnx.checker on the file itself (full check, with shape inference)."""
    onnx.checker.check_model(str(model.path), full_check=True)
