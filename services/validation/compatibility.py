"""Signature compatibility: is a new version a drop-in replacement for the approved one?

Input is the signature exactly as the registry stores it (`OnnxSignature` from
`services.models.onnx_validation`, saved with `dataclasses.asdict` and read back from JSON):

    {"inputs":  [{"name": "X", "element_type": "FLOAT", "shape": ["N", 15]}, ...],
     "outputs": [{"name": "label", "element_type": "INT64", "shape": ["N"]}, ...],
     "opset_imports": [["", 17], ["ai.onnx.ml", 3]], "ir_version": 8,
     "producer_name": "skl2onnx", "producer_version": "1.17.0"}

A dimension is fixed when it is an integer >= 0, dynamic when it is a string (a symbolic
name such as "N", or "?" for an anonymous unknown) or a negative integer (some exporters
write -1). Only `inputs` and `outputs` are required; the rest is compared when present.

The rules, and why (a caller of the approved version must keep working unchanged):

Inputs: the new model must accept everything callers already send.
  * removed input: BREAKING. ONNX Runtime refuses a feed whose name is not a model input.
  * added input: BREAKING. Every graph input in the stored signature is required
    (initialiser-backed optional inputs are left out of it), and callers do not send it.
  * element type changed: BREAKING. ONNX Runtime does not cast feeds.
  * rank changed: BREAKING. A feed of the old rank is refused.
  * fixed dimension changed to another size: BREAKING.
  * dynamic dimension became fixed: BREAKING. Callers may send any size there (for example
    a batch of 64 where the new model only takes 1).
  * fixed dimension became dynamic: not breaking. The new model takes the old size too.
  * symbolic dimension renamed (N -> batch): not breaking, listed for information.
  * order of inputs changed: not breaking. Feeds are a name -> array mapping.
Outputs: callers must still get what they read.
  * removed output: BREAKING. Callers that fetch it by name fail.
  * added output: not breaking. Nobody reads it yet.
  * element type changed, rank changed, fixed size changed: BREAKING.
  * fixed dimension became dynamic: BREAKING. Callers may rely on the size (for example
    reading column 1 of probabilities [N, 2]).
  * dynamic dimension became fixed: not breaking. A fixed size is one of the sizes callers
    already handle.
  * symbolic dimension renamed: not breaking, listed for information.
  * order of outputs changed: BREAKING. `session.run(None, feeds)` returns outputs by
    position, and unpacking them (`labels, proba = session.run(None, feeds)`, as the example
    notebook does) would silently swap them.
  * a renamed input or output is a removal plus an addition: the signature carries no
    identity beyond the name.
Other: a changed set of opset imports is listed, not breaking (a serving runtime may need an
upgrade, which the runtime check of the new version covers).

A tensor stored without shape information has shape [] (as a true scalar does): the two
cannot be told apart, so [] is compared as rank 0.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Dim = int | str
Side = Literal["input", "output"]


class SignatureFormatError(ValueError):
    """A stored signature does not have the shape of `OnnxSignature`."""


@dataclass(frozen=True)
class TensorSig:
    name: str
    element_type: str
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSig, ...]
    outputs: tuple[TensorSig, ...]
    opset_imports: tuple[tuple[str, int], ...] = ()


def _tensor(value: object, where: str) -> TensorSig:
    if not isinstance(value, Mapping):
        raise SignatureFormatError(f"{where} is not an object")
    name, element_type, shape = value.get("name"), value.get("element_type"), value.get("shape")
    if not isinstance(name, str):
        raise SignatureFormatError(f"{where}.name is not a string")
    if not isinstance(element_type, str):
        raise SignatureFormatError(f"{where}.element_type is not a string")
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise SignatureFormatError(f"{where}.shape is not a list")
    dims: list[Dim] = []
    for i, dim in enumerate(shape):
        if isinstance(dim, bool) or not isinstance(dim, int | str):
            raise SignatureFormatError(f"{where}.shape[{i}] is not an integer or a string")
        dims.append(dim)
    return TensorSig(name=name, element_type=element_type, shape=tuple(dims))


def _tensors(obj: Mapping[str, Any], key: str) -> tuple[TensorSig, ...]:
    values = obj.get(key)
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise SignatureFormatError(f"the signature's {key} is not a list")
    tensors = tuple(_tensor(v, f"{key}[{i}]") for i, v in enumerate(values))
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise SignatureFormatError(f"the signature's {key} repeat a name")
    return tensors


def parse_signature(obj: Signature | Mapping[str, Any]) -> Signature:
    """A `Signature` from a stored signature (the JSON object of `OnnxSignature`)."""
    if isinstance(obj, Signature):
        return obj
    if not isinstance(obj, Mapping):
        raise SignatureFormatError("the signature is not an object")
    opsets: list[tuple[str, int]] = []
    raw_opsets = obj.get("opset_imports", [])
    if not isinstance(raw_opsets, Sequence) or isinstance(raw_opsets, str):
        raise SignatureFormatError("the signature's opset_imports is not a list")
    for i, entry in enumerate(raw_opsets):
        if (
            not isinstance(entry, Sequence)
            or isinstance(entry, str)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or isinstance(entry[1], bool)
            or not isinstance(entry[1], int)
        ):
            raise SignatureFormatError(f"opset_imports[{i}] is not a [domain, version] pair")
        opsets.append((entry[0], entry[1]))
    return Signature(
        inputs=_tensors(obj, "inputs"),
        outputs=_tensors(obj, "outputs"),
        opset_imports=tuple(opsets),
    )


def is_fixed(dim: Dim) -> bool:
    """Whether a dimension has a fixed size (an integer >= 0)."""
    return isinstance(dim, int) and dim >= 0


class Verdict(enum.StrEnum):
    COMPATIBLE = "COMPATIBLE"
    BREAKING = "BREAKING"
    NO_APPROVED_VERSION = "NO_APPROVED_VERSION"


class Change(enum.StrEnum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    ELEMENT_TYPE_CHANGED = "ELEMENT_TYPE_CHANGED"
    RANK_CHANGED = "RANK_CHANGED"
    DIM_SIZE_CHANGED = "DIM_SIZE_CHANGED"
    DIM_FIXED_TO_DYNAMIC = "DIM_FIXED_TO_DYNAMIC"
    DIM_DYNAMIC_TO_FIXED = "DIM_DYNAMIC_TO_FIXED"
    DIM_RENAMED = "DIM_RENAMED"
    ORDER_CHANGED = "ORDER_CHANGED"
    OPSETS_CHANGED = "OPSETS_CHANGED"


@dataclass(frozen=True)
class Difference:
    """One difference between the approved and the new signature.

    `side` is "input", "output" or "model" (opsets); `tensor` the input's or output's name
    ("" for order and opset changes); `dim` the axis for dimension changes."""

    change: Change
    side: str
    tensor: str
    breaking: bool
    message: str
    old: str | None = None
    new: str | None = None
    dim: int | None = None


@dataclass(frozen=True)
class CompatibilityReport:
    verdict: Verdict
    approved_version: int | None
    breaking: list[Difference] = field(default_factory=list)
    non_breaking: list[Difference] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (enums as their names)."""
        out = asdict(self)
        out["verdict"] = self.verdict.value
        for key in ("breaking", "non_breaking"):
            for item in out[key]:
                item["change"] = item["change"].value
        return out


def _shape_text(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _dims(side: Side, name: str, old: TensorSig, new: TensorSig) -> list[Difference]:
    out: list[Difference] = []
    what = f"{side} {name!r}"
    for axis, (a, b) in enumerate(zip(old.shape, new.shape, strict=True)):
        if a == b:
            continue
        if is_fixed(a) and is_fixed(b):
            change, breaking = Change.DIM_SIZE_CHANGED, True
            message = f"{what}: dimension {axis} changed size from {a} to {b}"
        elif is_fixed(a):
            change, breaking = Change.DIM_FIXED_TO_DYNAMIC, side == "output"
            reason = (
                "callers may rely on the old size"
                if breaking
                else "the new model still accepts the old size"
            )
            message = f"{what}: dimension {axis} was fixed at {a}, is now dynamic ({b}); {reason}"
        elif is_fixed(b):
            change, breaking = Change.DIM_DYNAMIC_TO_FIXED, side == "input"
            reason = (
                "callers may send other sizes, which the new model refuses"
                if breaking
                else "a fixed size is one callers already handle"
            )
            message = f"{what}: dimension {axis} was dynamic ({a}), is now fixed at {b}; {reason}"
        else:
            change, breaking = Change.DIM_RENAMED, False
            message = f"{what}: dynamic dimension {axis} renamed from {a} to {b}"
        out.append(
            Difference(
                change,
                side=side,
                tensor=name,
                breaking=breaking,
                message=message,
                old=str(a),
                new=str(b),
                dim=axis,
            )
        )
    return out


def _tensor_differences(
    side: Side, old: Sequence[TensorSig], new: Sequence[TensorSig]
) -> list[Difference]:
    out: list[Difference] = []
    old_by_name = {t.name: t for t in old}
    new_by_name = {t.name: t for t in new}
    for tensor in old:
        if tensor.name in new_by_name:
            continue
        consequence = (
            "callers still send it, and ONNX Runtime refuses an unknown input"
            if side == "input"
            else "callers that read it get nothing"
        )
        out.append(
            Difference(
                Change.REMOVED,
                side=side,
                tensor=tensor.name,
                breaking=True,
                message=f"{side} {tensor.name!r} was removed: {consequence}",
                old=f"{tensor.element_type} {_shape_text(tensor.shape)}",
            )
        )
    for tensor in new:
        if tensor.name in old_by_name:
            continue
        breaking = side == "input"
        consequence = (
            "it is required, and callers do not send it"
            if breaking
            else "callers that do not read it are unaffected"
        )
        out.append(
            Difference(
                Change.ADDED,
                side=side,
                tensor=tensor.name,
                breaking=breaking,
                message=f"{side} {tensor.name!r} was added: {consequence}",
                new=f"{tensor.element_type} {_shape_text(tensor.shape)}",
            )
        )
    for before in old:
        after = new_by_name.get(before.name)
        if after is None:
            continue
        what = f"{side} {before.name!r}"
        if before.element_type != after.element_type:
            out.append(
                Difference(
                    Change.ELEMENT_TYPE_CHANGED,
                    side=side,
                    tensor=before.name,
                    breaking=True,
                    message=f"{what}: element type changed from {before.element_type} to "
                    f"{after.element_type}",
                    old=before.element_type,
                    new=after.element_type,
                )
            )
        if len(before.shape) != len(after.shape):
            out.append(
                Difference(
                    Change.RANK_CHANGED,
                    side=side,
                    tensor=before.name,
                    breaking=True,
                    message=f"{what}: rank changed from {len(before.shape)} "
                    f"{_shape_text(before.shape)} to {len(after.shape)} "
                    f"{_shape_text(after.shape)}",
                    old=_shape_text(before.shape),
                    new=_shape_text(after.shape),
                )
            )
        else:
            out.extend(_dims(side, before.name, before, after))
    kept_old = [t.name for t in old if t.name in new_by_name]
    kept_new = [t.name for t in new if t.name in old_by_name]
    if kept_old != kept_new:
        breaking = side == "output"
        consequence = (
            "callers that unpack session.run(None, ...) by position get them swapped"
            if breaking
            else "feeds are passed by name"
        )
        out.append(
            Difference(
                Change.ORDER_CHANGED,
                side=side,
                tensor="",
                breaking=breaking,
                message=f"the order of the {side}s changed from {kept_old} to {kept_new}: "
                f"{consequence}",
                old=", ".join(kept_old),
                new=", ".join(kept_new),
            )
        )
    return out


def compare_signatures(
    new: Signature | Mapping[str, Any],
    approved: Signature | Mapping[str, Any] | None,
    *,
    approved_version: int | None = None,
) -> CompatibilityReport:
    """Compare a new version's signature with the approved version's (None when the model
    has no approved version). Both may be stored signatures (dicts from JSON).

    Raises SignatureFormatError for a signature that is not of the stored shape."""
    new_sig = parse_signature(new)
    if approved is None:
        return CompatibilityReport(verdict=Verdict.NO_APPROVED_VERSION, approved_version=None)
    old_sig = parse_signature(approved)
    differences = _tensor_differences("input", old_sig.inputs, new_sig.inputs)
    differences += _tensor_differences("output", old_sig.outputs, new_sig.outputs)
    if sorted(old_sig.opset_imports) != sorted(new_sig.opset_imports):

        def text(opsets: tuple[tuple[str, int], ...]) -> str:
            return ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(opsets))

        differences.append(
            Difference(
                Change.OPSETS_CHANGED,
                side="model",
                tensor="",
                breaking=False,
                message=f"opset imports changed from {text(old_sig.opset_imports)} to "
                f"{text(new_sig.opset_imports)}: a serving runtime must support them",
                old=text(old_sig.opset_imports),
                new=text(new_sig.opset_imports),
            )
        )
    breaking = [d for d in differences if d.breaking]
    return CompatibilityReport(
        verdict=Verdict.BREAKING if breaking else Verdict.COMPATIBLE,
        approved_version=approved_version,
        breaking=breaking,
        non_breaking=[d for d in differences if not d.breaking],
    )
