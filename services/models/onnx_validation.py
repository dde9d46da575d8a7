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

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import onnx
import onnx.checker
import onnx.defs
import onnx.shape_inference

from services.common.errors import invalid_argument

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
    "Function": {7: "Node"},
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
    "SparseTensor": {1: "Tensor", 2: "Tensor"},
}
_MAX_DEPTH = 64
_RAW_DATA = 9
_EXTERNAL_DATA = 13
_DATA_LOCATION = 14

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
        while pos < end:
            tag_start = pos
            key, pos = self._varint(pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise NotOnnx("field number 0")
            if wire == 0:
                _, pos = self._varint(pos, end)
                out += self._read(tag_start, pos - tag_start)
            elif wire == 1 or wire == 5:
                width = 8 if wire == 1 else 4
                if pos + width > end:
                    raise NotOnnx("a fixed-width field runs past its message")
                pos += width
                out += self._read(tag_start, pos - tag_start)
            elif wire == 2:
                length, body = self._varint(pos, end)
                pos = body + length
                if pos > end:
                    raise NotOnnx("a field runs past the end of its message")
                if kind == "Tensor" and number == _RAW_DATA and length >= _EXTERNAL_THRESHOLD:
                    external = (body, length)
                elif kind == "Tensor" and number in (_EXTERNAL_DATA, _DATA_LOCATION):
                    raise invalid_argument(
                        "ONNX_EXTERNAL_DATA",
                        "the model references external data files; upload a self-contained "
                        "model (onnx.save_model(..., save_as_external_data=False))",
                    )
                elif number in children:
                    child = self.message(children[number], body, pos, depth + 1)
                    out += _key(number, 2) + _varint_bytes(len(child)) + child
                else:
                    out += self._read(tag_start, pos - tag_start)
            else:
                raise NotOnnx(f"unsupported wire type {wire}")
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
    skeleton_path = path.with_name(path.name + ".skeleton.onnx")
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
