"""An ONNX model's skeleton: the model re-serialised without its large tensor payloads.

The spooled file's protobuf wire format is walked field by field; everything *except*
`TensorProto.raw_data` payloads of at least 1 KiB is copied into the skeleton, and each such
payload becomes an external-data reference to its offset in the spooled file. Raw data is never
read, so memory is bounded by the skeleton (`_MAX_SKELETON_BYTES`), whatever the weights' size.
Each tensor's declared type and dimensions are checked against the data it holds on the way,
since onnx.checker only sees what stayed inline. `onnx_validation.py` checks the skeleton.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import onnx

from services.common.errors import invalid_argument

# Payloads at least this big become external references; smaller ones stay inline.
_EXTERNAL_THRESHOLD = 1024
# Everything that is not a raw_data payload must fit in this much memory.
_MAX_SKELETON_BYTES = 64 * 1024 * 1024

# Which length-delimited fields are messages we must walk into, by message type:
# {type: {field number: child type}}. Everything else is copied as is.
_SCHEMA: dict[str, dict[int, str]] = {
    "Model": {7: "Graph", 20: "TrainingInfo", 25: "Function"},
    "TrainingInfo": {1: "Graph", 2: "Graph"},
    # Nodes, and default values of the function's attributes (which may hold tensors).
    "Function": {7: "Node", 11: "Attribute"},
    "Graph": {1: "Node", 5: "Tensor", 15: "SparseTensor"},
    "Node": {5: "Attribute"},
    "Attribute": {
        5: "Tensor",
        6: "Graph",
        10: "Tensor",
        11: "Graph",
        22: "SparseTensor",
        23: "SparseTensor",
    },
    # Shape inference reads a sparse tensor's indices: they stay inline (in the budget).
    "SparseTensor": {1: "Tensor", 2: "InlineTensor"},
}
_MAX_DEPTH = 64
# TensorProto's fields.
_DIMS = 1
_DATA_TYPE = 2
_FLOAT_DATA = 4
_INT32_DATA = 5
_STRING_DATA = 6
_INT64_DATA = 7
_NAME = 8
_RAW_DATA = 9
_DOUBLE_DATA = 10
_UINT64_DATA = 11
_EXTERNAL_DATA = 13
_DATA_LOCATION = 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# Bits per element of each data type, for raw_data (TensorProto.DataType numbers; the 4- and
# 2-bit types are packed, two or four a byte). STRING (8) has no raw form.
_T = onnx.TensorProto
_ELEMENT_BITS: dict[int, int] = {
    _T.FLOAT: 32, _T.UINT8: 8, _T.INT8: 8, _T.UINT16: 16, _T.INT16: 16, _T.INT32: 32,
    _T.INT64: 64, _T.BOOL: 8, _T.FLOAT16: 16, _T.DOUBLE: 64, _T.UINT32: 32, _T.UINT64: 64,
    _T.COMPLEX64: 64, _T.COMPLEX128: 128, _T.BFLOAT16: 16, _T.FLOAT8E4M3FN: 8,
    _T.FLOAT8E4M3FNUZ: 8, _T.FLOAT8E5M2: 8, _T.FLOAT8E5M2FNUZ: 8, _T.UINT4: 4, _T.INT4: 4,
}  # fmt: skip
_KNOWN_TYPES = dict(onnx.TensorProto.DataType.items())
for _name, _bits in (("FLOAT4E2M1", 4), ("FLOAT8E8M0", 8), ("UINT2", 2), ("INT2", 2)):
    if _name in _KNOWN_TYPES:  # newer onnx releases
        _ELEMENT_BITS[_KNOWN_TYPES[_name]] = _bits

_ONE_PER_INT32 = (
    _T.INT32, _T.INT16, _T.INT8, _T.UINT16, _T.UINT8, _T.BOOL, _T.FLOAT16, _T.BFLOAT16,
    _T.FLOAT8E4M3FN, _T.FLOAT8E4M3FNUZ, _T.FLOAT8E5M2, _T.FLOAT8E5M2FNUZ,
)  # fmt: skip
# Typed value fields: which element types each may hold, and how many values an element
# takes (complex numbers are two). Types packed into int32_data (4- and 2-bit) are left to
# onnx.checker, which sees every typed field (they are never externalised).
_TYPED_FIELDS: dict[int, dict[int, int]] = {
    _FLOAT_DATA: {_T.FLOAT: 1, _T.COMPLEX64: 2},
    _DOUBLE_DATA: {_T.DOUBLE: 1, _T.COMPLEX128: 2},
    _INT64_DATA: {_T.INT64: 1},
    _UINT64_DATA: {_T.UINT32: 1, _T.UINT64: 1},
    _STRING_DATA: {_T.STRING: 1},
    _INT32_DATA: dict.fromkeys(_ONE_PER_INT32, 1),
}
# Bytes per value of the fixed-width typed fields; the others are varints.
_FIXED_WIDTH = {_FLOAT_DATA: 4, _DOUBLE_DATA: 8}

ELEMENT_TYPES = {v: k for k, v in onnx.TensorProto.DataType.items()}


class NotOnnx(ValueError):
    """The bytes are not a well-formed ONNX protobuf."""


def model_skeleton(file: BinaryIO, size: int, data_file_name: str) -> bytes:
    """The skeleton of the model in the first `size` bytes of `file`, its large raw_data
    referring to `data_file_name`. Raises NotOnnx for bytes that are not a well-formed ONNX
    protobuf, INVALID_ARGUMENT for a tensor whose data does not fit it, external data, or a
    graph too large."""
    return _Walker(file, size, data_file_name).message("Model", 0, size)


@dataclass
class _TensorFacts:
    """What a TensorProto says about itself, gathered while it is walked: its shape and
    type, and how much data it holds (raw bytes, or values in each typed field). Only
    lengths are kept; raw data is never read."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_bytes: int | None = None
    values: dict[int, int] = field(default_factory=dict)  # typed field -> value count

    def scalar(self, number: int, value: int) -> None:
        if number == _DIMS:
            self.dims.append(_signed(value))
        elif number == _DATA_TYPE:
            self.data_type = value
        elif number in _TYPED_FIELDS:
            self.values[number] = self.values.get(number, 0) + 1

    def length_delimited(self, number: int, payload: bytes) -> None:
        """A packed repeated field, a string, or the name (never raw data)."""
        if number == _NAME:
            self.name = payload[:256].decode("utf-8", "replace")
        elif number == _DIMS:
            self.dims.extend(_signed(v) for v in _packed_varints(payload))
        elif number == _STRING_DATA:
            self.values[number] = self.values.get(number, 0) + 1
        elif number in _FIXED_WIDTH:
            self.values[number] = self.values.get(number, 0) + len(payload) // _FIXED_WIDTH[number]
        elif number in _TYPED_FIELDS:
            # Packed varints: one ends at each byte without the continuation bit.
            self.values[number] = self.values.get(number, 0) + sum(b < 0x80 for b in payload)

    def check(self) -> None:
        """Refuse a tensor whose data does not fit its type and dimensions: onnx.checker
        only sees the raw data that stayed inline, and a declared size is what runtimes
        allocate."""
        if any(d < 0 for d in self.dims):
            self._refuse(f"has a negative dimension {self.dims[:8]}")
        elements = math.prod(self.dims)
        type_name = ELEMENT_TYPES.get(self.data_type, str(self.data_type))
        holds = [f for f, n in self.values.items() if n]
        if self.raw_bytes is not None:
            bits = _ELEMENT_BITS.get(self.data_type)
            if bits is None:
                if self.data_type in ELEMENT_TYPES and self.data_type != 0:
                    self._refuse(f"holds {type_name} values as raw_data, which cannot be")
                return  # an unknown type: onnx.checker refuses it
            expected = -(-elements * bits // 8)
            if self.raw_bytes != expected:
                self._mismatch(elements, type_name, expected, self.raw_bytes)
            return
        if not holds:
            if elements:
                self._mismatch(elements, type_name, self._bytes_for(elements), 0)
            return
        for number in holds:
            per_element = _TYPED_FIELDS[number].get(self.data_type)
            if per_element is None:
                continue  # a type this field cannot hold, or a packed one: onnx.checker's
            if self.values[number] != elements * per_element:
                held = self.values[number] // per_element
                self._mismatch(
                    elements, type_name, self._bytes_for(elements), self._bytes_for(held)
                )

    def _bytes_for(self, elements: int) -> int:
        return -(-elements * _ELEMENT_BITS.get(self.data_type, 8) // 8)

    def _mismatch(self, elements: int, type_name: str, expected: int, held: int) -> None:
        dims = "x".join(str(d) for d in self.dims[:8]) + ("x…" if len(self.dims) > 8 else "")
        self._refuse(
            f"declares {elements:,} {type_name} values ([{dims or 'scalar'}], "
            f"{expected:,} bytes) but holds {held:,} bytes"
        )

    def _refuse(self, what: str) -> None:
        shown = self.name[:64] + ("…" if len(self.name) > 64 else "")
        raise invalid_argument(
            "ONNX_TENSOR_SIZE",
            f"tensor {shown!r} {what}: its data does not match its type and dimensions",
            tensor=shown,
        )


@dataclass
class _Walker:
    file: BinaryIO
    size: int
    data_file_name: str
    budget: int = _MAX_SKELETON_BYTES
    externalised: int = field(default=0)

    def _read(self, offset: int, length: int) -> bytes:
        if offset + length > self.size:
            raise NotOnnx("the file is truncated")
        self.budget -= length
        if self.budget < 0:
            raise invalid_argument(
                "ONNX_TOO_COMPLEX",
                "the model's graph (everything but its raw tensor data) exceeds "
                f"{_MAX_SKELETON_BYTES // (1024 * 1024)} MiB",
            )
        self.file.seek(offset)
        return self.file.read(length)

    def _varint(self, pos: int, end: int) -> tuple[int, int]:
        result = shift = 0
        self.file.seek(pos)
        while True:
            if pos >= end:
                raise NotOnnx("a varint runs past the end of its message")
            byte = self.file.read(1)
            if not byte:
                raise NotOnnx("the file is truncated")
            pos += 1
            result |= (byte[0] & 0x7F) << shift
            if not byte[0] & 0x80:
                return result, pos
            shift += 7
            if shift > 63:
                raise NotOnnx("malformed varint")

    def message(self, kind: str, start: int, end: int, depth: int = 0) -> bytes:
        """Re-serialise the message in [start, end) with large raw_data externalised."""
        if depth > _MAX_DEPTH:
            raise NotOnnx("messages nested too deeply")
        children = _SCHEMA.get(kind, {})
        out = bytearray()
        pos = start
        external: tuple[int, int] | None = None
        tensor = _TensorFacts() if kind in ("Tensor", "InlineTensor") else None
        while pos < end:
            tag_start = pos
            key, pos = self._varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise NotOnnx("field number 0")
            if wire == 0:
                scalar, pos = self._varint(pos, end)
                out += self._read(tag_start, pos - tag_start)
                if tensor is not None:
                    if number == _DATA_LOCATION and scalar == _EXTERNAL:
                        raise _external_data()
                    tensor.scalar(number, scalar)
            elif wire == 1 or wire == 5:
                width = 8 if wire == 1 else 4
                if pos + width > end:
                    raise NotOnnx("a fixed-width field runs past its message")
                pos += width
                out += self._read(tag_start, pos - tag_start)
                if tensor is not None and number in _TYPED_FIELDS:
                    tensor.values[number] = tensor.values.get(number, 0) + 1
            elif wire == 2:
                length, body = self._varint(pos, end)
                pos = body + length
                if pos > end:
                    raise NotOnnx("a field runs past the end of its message")
                if tensor is not None and number == _RAW_DATA:
                    tensor.raw_bytes = length
                    if length >= _EXTERNAL_THRESHOLD and kind == "Tensor":
                        external = (body, length)
                    else:
                        out += self._read(tag_start, pos - tag_start)
                elif tensor is not None and number in (_EXTERNAL_DATA, _DATA_LOCATION):
                    raise _external_data()
                elif number in children:
                    child = self.message(children[number], body, pos, depth + 1)
                    out += _key(number, 2) + _varint_bytes(len(child)) + child
                else:
                    field_bytes = self._read(tag_start, pos - tag_start)
                    out += field_bytes
                    if tensor is not None:
                        tensor.length_delimited(number, field_bytes[body - tag_start :])
            else:
                raise NotOnnx(f"unsupported wire type {wire}")
        if tensor is not None:
            tensor.check()
        if external is not None:
            offset, length = external
            self.externalised += length
            for key_name, value in (
                ("location", self.data_file_name),
                ("offset", str(offset)),
                ("length", str(length)),
            ):
                entry = _string_field(1, key_name) + _string_field(2, value)
                out += _key(_EXTERNAL_DATA, 2) + _varint_bytes(len(entry)) + entry
            out += _key(_DATA_LOCATION, 0) + _varint_bytes(1)  # EXTERNAL
        return bytes(out)


def _external_data() -> Exception:
    return invalid_argument(
        "ONNX_EXTERNAL_DATA",
        "the model references external data files; upload a self-contained "
        "model (onnx.save_model(..., save_as_external_data=False))",
    )


def _signed(value: int) -> int:
    """An int64 field's value from its varint (two's complement in 64 bits)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _packed_varints(payload: bytes) -> Iterator[int]:
    value = shift = 0
    for byte in payload:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            yield value
            value = shift = 0
        elif shift > 63:
            raise NotOnnx("malformed varint")
    if shift:
        raise NotOnnx("a packed field ends inside a varint")


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint_bytes((number << 3) | wire)


def _string_field(number: int, value: str) -> bytes:
    data = value.encode()
    return _key(number, 2) + _varint_bytes(len(data)) + data
