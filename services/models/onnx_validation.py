"""Validate an uploaded ONNX file without loading its weights into memory.

A 1 GiB model is almost entirely tensor bytes (`TensorProto.raw_data`).
`onnx.load` would pull all of it into memory. Instead we walk the protobuf
wire format in the spooled file, copy everything *except* large raw_data
payloads into a small "skeleton" model, and turn each payload into an
external-data reference that points back at its offset in the spooled file.
`onnx.checker` (full check, with shape inference) then validates the
skeleton, and the signature is read from it. Memory is bounded by the
skeleton, whatever the size of the weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import onnx
import onnx.checker
import onnx.defs
import onnx.shape_inference

from services.common.errors import invalid_argument
from services.models.local_files import SKELETON_SUFFIX

# Payloads at least this big become external references; smaller ones stay inline.
_EXTERNAL_THRESHOLD = 1024
# Everything that is not a raw_data payload must fit in this much memory.
_MAX_SKELETON_BYTES = 64 * 1024 * 1024

MIN_IR_VERSION = 3
MAX_IR_VERSION = onnx.IR_VERSION
MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()

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

_ELEMENT_TYPES = {v: k for k, v in onnx.TensorProto.DataType.items()}


class NotOnnx(ValueError):
    """The bytes are not a well-formed ONNX protobuf."""


@dataclass
class TensorSpec:
    name: str
    element_type: str
    shape: list[int | str]


@dataclass
class OnnxSignature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset_imports: list[tuple[str, int]]
    ir_version: int
    producer_name: str
    producer_version: str


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
        type_name = _ELEMENT_TYPES.get(self.data_type, str(self.data_type))
        holds = [f for f, n in self.values.items() if n]
        if self.raw_bytes is not None:
            bits = _ELEMENT_BITS.get(self.data_type)
            if bits is None:
                if self.data_type in _ELEMENT_TYPES and self.data_type != 0:
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


def validate_onnx_file(path: Path, size: int | None = None) -> OnnxSignature:
    """Check the spooled upload at `path`; raise INVALID_ARGUMENT saying why it is not
    an acceptable ONNX model, or return its signature. Writes a skeleton file beside it.

    `size` is where the upload ends: a reused spool may hold an earlier, larger
    upload's bytes after it (default: the file's size)."""
    if size is None:
        size = path.stat().st_size
    if size == 0:
        raise invalid_argument("EMPTY_FILE", "the uploaded file is empty")
    skeleton_path = path.with_name(path.name + SKELETON_SUFFIX)
    try:
        with path.open("rb") as handle:
            walker = _Walker(handle, size, path.name)
            try:
                skeleton = walker.message("Model", 0, size)
            except NotOnnx as exc:
                raise _not_onnx(path, detail=str(exc)) from exc
        skeleton_path.write_bytes(skeleton)
        try:
            model = onnx.load_model(str(skeleton_path), load_external_data=False)
        except Exception as exc:
            raise _not_onnx(path, detail="it does not parse as an ONNX ModelProto") from exc
        _check_versions(model, path)
        try:
            onnx.checker.check_model(str(skeleton_path), full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
            reason = _first_line(exc).replace(f"{skeleton_path.parent}{os.sep}", "")
            raise invalid_argument(
                "ONNX_CHECK_FAILED", f"onnx.checker rejected the model: {reason}"
            ) from exc
        return _bounded(_signature(model))
    finally:
        skeleton_path.unlink(missing_ok=True)


def _check_versions(model: onnx.ModelProto, path: Path) -> None:
    if not model.HasField("graph"):
        raise _not_onnx(path, detail="it has no graph")
    if not MIN_IR_VERSION <= model.ir_version <= MAX_IR_VERSION:
        raise invalid_argument(
            "ONNX_IR_VERSION",
            f"IR version {model.ir_version} is not supported "
            f"(supported: {MIN_IR_VERSION}..{MAX_IR_VERSION})",
        )
    default = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not default:
        raise invalid_argument("ONNX_OPSET", "the model imports no default ONNX opset")
    if not all(MIN_OPSET <= v <= MAX_OPSET for v in default):
        raise invalid_argument(
            "ONNX_OPSET",
            f"opset {default[0]} is not supported (supported: {MIN_OPSET}..{MAX_OPSET})",
        )


# What people upload instead of ONNX, by the first bytes of the file, and what to do.
_CONVERT = (
    "export the model to ONNX first (scikit-learn: skl2onnx.to_onnx(model, X[:1]); "
    "PyTorch: torch.onnx.export; TensorFlow/Keras: tf2onnx) and upload the .onnx file"
)
_LOOKS_LIKE: tuple[tuple[bytes, str], ...] = (
    (b"\x80\x02", "a Python pickle (scikit-learn or joblib .pkl)"),
    (b"\x80\x03", "a Python pickle (scikit-learn or joblib .pkl)"),
    (b"\x80\x04", "a Python pickle (scikit-learn or joblib .pkl)"),
    (b"\x80\x05", "a Python pickle (scikit-learn or joblib .pkl)"),
    (b"PK\x03\x04", "a ZIP archive (a PyTorch .pt/.pth or Keras .keras file?)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (a Keras .h5 model?)"),
    (b"\x1f\x8b", "gzip-compressed (unpack it first)"),
    (b"\x78\x9c", "zlib-compressed (a compressed joblib dump?)"),
    (b"\x93NUMPY", "a NumPy array (.npy), not a model"),
    (b"{", "text or JSON, not a binary ONNX model"),
    (b"[", "text or JSON, not a binary ONNX model"),
)


def _not_onnx(path: Path, *, detail: str) -> Exception:
    """NOT_ONNX, saying what the file looks like and how to convert it; the protobuf
    detail goes in the metadata, not the sentence."""
    with path.open("rb") as handle:
        head = handle.read(16)
    looks = next((what for magic, what in _LOOKS_LIKE if head.startswith(magic)), None)
    if looks is None and len(head) >= 9 and head[8:9] == b"{":
        looks = "safetensors weights, not a model"
    found = f"it looks like {looks}" if looks else "it does not parse as an ONNX model"
    return invalid_argument(
        "NOT_ONNX", f"the file is not an ONNX model: {found}; {_CONVERT}", detail=detail[:200]
    )


# A version's signature is returned with every read of it and every page of versions or
# approvals: bound it so one upload cannot make those unreadable.
MAX_SIGNATURE_TENSORS = 4096
MAX_SIGNATURE_BYTES = 256 * 1024


def _bounded(signature: OnnxSignature) -> OnnxSignature:
    tensors = [*signature.inputs, *signature.outputs]
    text = sum(len(t.name) + len(t.element_type) + 8 * len(t.shape) for t in tensors) + sum(
        len(str(d)) for t in tensors for d in t.shape
    )
    text += len(signature.producer_name) + len(signature.producer_version)
    text += sum(len(domain) + 8 for domain, _ in signature.opset_imports)
    if len(tensors) > MAX_SIGNATURE_TENSORS or text > MAX_SIGNATURE_BYTES:
        raise invalid_argument(
            "SIGNATURE_TOO_LARGE",
            f"the model's inputs and outputs ({len(tensors)} tensors, about {text:,} bytes of "
            f"names and shapes) exceed what the registry stores (at most "
            f"{MAX_SIGNATURE_TENSORS} tensors and {MAX_SIGNATURE_BYTES:,} bytes)",
        )
    return signature


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:500]


def _tensor_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    shape: list[int | str] = []
    if tensor.HasField("shape"):
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            else:
                shape.append(dim.dim_param or "?")
    return TensorSpec(
        name=value.name,
        element_type=_ELEMENT_TYPES.get(tensor.elem_type, "UNDEFINED"),
        shape=shape,
    )


def _signature(model: onnx.ModelProto) -> OnnxSignature:
    initializers = {t.name for t in model.graph.initializer}
    return OnnxSignature(
        inputs=[_tensor_spec(v) for v in model.graph.input if v.name not in initializers],
        outputs=[_tensor_spec(v) for v in model.graph.output],
        opset_imports=[(o.domain, int(o.version)) for o in model.opset_import],
        ir_version=int(model.ir_version),
        producer_name=model.producer_name,
        producer_version=model.producer_version,
    )
