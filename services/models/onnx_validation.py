"""Validate an uploaded ONNX file without loading its weights into memory.

A 1 GiB model is almost entirely tensor bytes (`TensorProto.raw_data`).
`onnx.load` would pull all of it into memory. Instead the spooled file is
turned into a small "skeleton" model whose large raw_data payloads are
external-data references pointing back at their offsets in the spooled file
(`onnx_skeleton.py`). `onnx.checker` (full check, with shape inference) then
validates the skeleton, and the signature is read from it. Memory is bounded
by the skeleton, whatever the size of the weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.checker
import onnx.defs
import onnx.shape_inference

from services.common.errors import invalid_argument
from services.models.local_files import SKELETON_SUFFIX
from services.models.onnx_skeleton import ELEMENT_TYPES, NotOnnx, model_skeleton

MIN_IR_VERSION = 3
MAX_IR_VERSION = onnx.IR_VERSION
MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()


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
            try:
                skeleton = model_skeleton(handle, size, path.name)
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
        element_type=ELEMENT_TYPES.get(tensor.elem_type, "UNDEFINED"),
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
