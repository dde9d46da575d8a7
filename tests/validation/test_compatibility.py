"""Signature compatibility: every rule of services/validation/compatibility.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, cast

import pytest

from services.models.onnx_validation import OnnxSignature, TensorSpec
from services.validation.compatibility import (
    Change,
    CompatibilityReport,
    Difference,
    Signature,
    SignatureFormatError,
    TensorSig,
    Verdict,
    compare_signatures,
    parse_signature,
)


def tensor(
    name: str, element_type: str = "FLOAT", shape: list[Any] | None = None
) -> dict[str, Any]:
    return {"name": name, "element_type": element_type, "shape": shape or ["N", 4]}


def sig(
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    opsets: list[list[Any]] | None = None,
) -> dict[str, Any]:
    """A stored signature as it comes back from JSON."""
    return cast(
        dict[str, Any],
        json.loads(
            json.dumps(
                {
                    "inputs": inputs,
                    "outputs": outputs,
                    "opset_imports": opsets if opsets is not None else [["", 17]],
                    "ir_version": 8,
                    "producer_name": "skl2onnx",
                    "producer_version": "1.20.0",
                }
            )
        ),
    )


# The example's random forest, exported by skl2onnx with zipmap=False.
BASE = sig(
    [tensor("X", "FLOAT", ["N", 15])],
    [tensor("label", "INT64", ["N"]), tensor("probabilities", "FLOAT", ["N", 2])],
    [["", 17], ["ai.onnx.ml", 3]],
)


def with_input(**changes: Any) -> dict[str, Any]:
    new = json.loads(json.dumps(BASE))
    new["inputs"][0].update(changes)
    return new


def with_output(index: int, **changes: Any) -> dict[str, Any]:
    new = json.loads(json.dumps(BASE))
    new["outputs"][index].update(changes)
    return new


def only(report: CompatibilityReport) -> Difference:
    differences = report.breaking + report.non_breaking
    assert len(differences) == 1, differences
    return differences[0]


# --- verdicts -----------------------------------------------------------------------------


def test_no_approved_version() -> None:
    report = compare_signatures(BASE, None)
    assert report.verdict == Verdict.NO_APPROVED_VERSION
    assert report.breaking == []
    assert report.non_breaking == []
    assert report.approved_version is None


def test_identical_signatures_are_compatible_with_no_differences() -> None:
    report = compare_signatures(BASE, BASE, approved_version=3)
    assert report.verdict == Verdict.COMPATIBLE
    assert report.breaking == []
    assert report.non_breaking == []
    assert report.approved_version == 3


def test_the_stored_form_of_onnx_signature_is_accepted() -> None:
    stored = OnnxSignature(
        inputs=[TensorSpec("X", "FLOAT", ["N", 15])],
        outputs=[
            TensorSpec("label", "INT64", ["N"]),
            TensorSpec("probabilities", "FLOAT", ["N", 2]),
        ],
        opset_imports=[("", 17), ("ai.onnx.ml", 3)],
        ir_version=8,
        producer_name="skl2onnx",
        producer_version="1.20.0",
    )
    # Straight from asdict (tuples) and through JSON (lists): both are the same signature.
    assert compare_signatures(asdict(stored), BASE).verdict == Verdict.COMPATIBLE
    from_json = json.loads(json.dumps(asdict(stored)))
    assert compare_signatures(from_json, BASE).verdict == Verdict.COMPATIBLE
    parsed = parse_signature(from_json)
    assert parsed.inputs == (TensorSig("X", "FLOAT", ("N", 15)),)
    assert parsed.opset_imports == (("", 17), ("ai.onnx.ml", 3))
    assert parse_signature(parsed) is parsed


def test_producer_and_ir_version_are_not_compared() -> None:
    new = dict(BASE, producer_name="pytorch", producer_version="2.5", ir_version=10)
    assert only_none(compare_signatures(new, BASE))


def only_none(report: CompatibilityReport) -> bool:
    return report.verdict == Verdict.COMPATIBLE and not report.breaking and not report.non_breaking


def test_the_report_is_json_serialisable() -> None:
    new = with_input(element_type="DOUBLE")
    new["outputs"].append(tensor("extra", "FLOAT", ["N"]))
    report = compare_signatures(new, BASE, approved_version=1)
    out = json.loads(json.dumps(report.to_dict()))
    assert out["verdict"] == "BREAKING"
    assert out["approved_version"] == 1
    assert out["breaking"][0]["change"] == "ELEMENT_TYPE_CHANGED"
    assert out["non_breaking"][0]["change"] == "ADDED"
    assert set(out["breaking"][0]) == {
        "change", "side", "tensor", "breaking", "message", "old", "new", "dim",
    }  # fmt: skip


# --- inputs -------------------------------------------------------------------------------


def test_removed_input_is_breaking() -> None:
    old = sig([tensor("a"), tensor("b")], [tensor("y")])
    new = sig([tensor("a")], [tensor("y")])
    d = only(compare_signatures(new, old))
    assert (d.change, d.side, d.tensor, d.breaking) == (Change.REMOVED, "input", "b", True)
    assert "input 'b' was removed" in d.message
    assert d.old == "FLOAT [N, 4]"


def test_added_input_is_breaking() -> None:
    old = sig([tensor("a")], [tensor("y")])
    new = sig([tensor("a"), tensor("mask", "BOOL", ["N"])], [tensor("y")])
    report = compare_signatures(new, old)
    d = only(report)
    assert report.verdict == Verdict.BREAKING
    assert (d.change, d.side, d.tensor, d.breaking) == (Change.ADDED, "input", "mask", True)
    assert "required" in d.message
    assert d.new == "BOOL [N]"


def test_renamed_input_is_a_removal_and_an_addition() -> None:
    report = compare_signatures(with_input(name="features"), BASE)
    assert report.verdict == Verdict.BREAKING
    assert [(d.change, d.tensor) for d in report.breaking] == [
        (Change.REMOVED, "X"),
        (Change.ADDED, "features"),
    ]
    assert report.non_breaking == []


def test_input_element_type_change_is_breaking() -> None:
    d = only(compare_signatures(with_input(element_type="DOUBLE"), BASE))
    assert (d.change, d.side, d.breaking, d.old, d.new) == (
        Change.ELEMENT_TYPE_CHANGED, "input", True, "FLOAT", "DOUBLE",
    )  # fmt: skip
    assert "from FLOAT to DOUBLE" in d.message


def test_input_rank_change_is_breaking() -> None:
    d = only(compare_signatures(with_input(shape=["N", 15, 1]), BASE))
    assert (d.change, d.breaking, d.old, d.new) == (
        Change.RANK_CHANGED, True, "[N, 15]", "[N, 15, 1]",
    )  # fmt: skip
    assert "rank changed from 2" in d.message


def test_input_fixed_dimension_resized_is_breaking() -> None:
    d = only(compare_signatures(with_input(shape=["N", 16]), BASE))
    assert (d.change, d.breaking, d.dim, d.old, d.new) == (
        Change.DIM_SIZE_CHANGED, True, 1, "15", "16",
    )  # fmt: skip
    assert "dimension 1 changed size from 15 to 16" in d.message


def test_input_fixed_dimension_made_dynamic_is_not_breaking() -> None:
    report = compare_signatures(with_input(shape=["N", "k"]), BASE)
    d = only(report)
    assert report.verdict == Verdict.COMPATIBLE
    assert (d.change, d.breaking, d.dim) == (Change.DIM_FIXED_TO_DYNAMIC, False, 1)
    assert "still accepts" in d.message


def test_input_dynamic_dimension_made_fixed_is_breaking() -> None:
    d = only(compare_signatures(with_input(shape=[1, 15]), BASE))
    assert (d.change, d.breaking, d.dim, d.old, d.new) == (
        Change.DIM_DYNAMIC_TO_FIXED, True, 0, "N", "1",
    )  # fmt: skip


def test_input_symbolic_dimension_renamed_is_not_breaking() -> None:
    report = compare_signatures(with_input(shape=["batch", 15]), BASE)
    d = only(report)
    assert report.verdict == Verdict.COMPATIBLE
    assert (d.change, d.breaking, d.old, d.new) == (Change.DIM_RENAMED, False, "N", "batch")


def test_negative_and_unknown_dimensions_are_dynamic() -> None:
    old = sig([tensor("a", shape=[-1, 4])], [tensor("y")])
    new = sig([tensor("a", shape=["?", 4])], [tensor("y")])
    d = only(compare_signatures(new, old))
    assert (d.change, d.breaking) == (Change.DIM_RENAMED, False)


def test_input_order_change_is_not_breaking() -> None:
    old = sig([tensor("a"), tensor("b")], [tensor("y")])
    new = sig([tensor("b"), tensor("a")], [tensor("y")])
    report = compare_signatures(new, old)
    d = only(report)
    assert report.verdict == Verdict.COMPATIBLE
    assert (d.change, d.side, d.breaking) == (Change.ORDER_CHANGED, "input", False)


def test_order_is_compared_among_kept_tensors_only() -> None:
    old = sig([tensor("a"), tensor("b"), tensor("c")], [tensor("y")])
    new = sig([tensor("a"), tensor("c")], [tensor("y")])
    assert [d.change for d in compare_signatures(new, old).breaking] == [Change.REMOVED]


# --- outputs ------------------------------------------------------------------------------


def test_removed_output_is_breaking() -> None:
    new = json.loads(json.dumps(BASE))
    del new["outputs"][1]
    d = only(compare_signatures(new, BASE))
    assert (d.change, d.side, d.tensor, d.breaking) == (
        Change.REMOVED, "output", "probabilities", True,
    )  # fmt: skip


def test_added_output_is_not_breaking() -> None:
    new = json.loads(json.dumps(BASE))
    new["outputs"].append(tensor("explanation", "FLOAT", ["N", 15]))
    report = compare_signatures(new, BASE)
    d = only(report)
    assert report.verdict == Verdict.COMPATIBLE
    assert (d.change, d.side, d.tensor, d.breaking) == (
        Change.ADDED, "output", "explanation", False,
    )  # fmt: skip


def test_renamed_output_is_a_removal_and_an_addition() -> None:
    report = compare_signatures(with_output(1, name="proba"), BASE)
    assert report.verdict == Verdict.BREAKING
    assert [(d.change, d.tensor) for d in report.breaking] == [(Change.REMOVED, "probabilities")]
    assert [(d.change, d.tensor) for d in report.non_breaking] == [(Change.ADDED, "proba")]


def test_output_element_type_change_is_breaking() -> None:
    d = only(compare_signatures(with_output(0, element_type="STRING"), BASE))
    assert (d.change, d.side, d.tensor, d.breaking) == (
        Change.ELEMENT_TYPE_CHANGED, "output", "label", True,
    )  # fmt: skip


def test_output_rank_change_is_breaking() -> None:
    d = only(compare_signatures(with_output(0, shape=["N", 1]), BASE))
    assert (d.change, d.side, d.breaking) == (Change.RANK_CHANGED, "output", True)


def test_output_fixed_dimension_resized_is_breaking() -> None:
    d = only(compare_signatures(with_output(1, shape=["N", 3]), BASE))
    assert (d.change, d.side, d.breaking, d.old, d.new) == (
        Change.DIM_SIZE_CHANGED, "output", True, "2", "3",
    )  # fmt: skip


def test_output_fixed_dimension_made_dynamic_is_breaking() -> None:
    d = only(compare_signatures(with_output(1, shape=["N", "classes"]), BASE))
    assert (d.change, d.side, d.breaking, d.dim) == (
        Change.DIM_FIXED_TO_DYNAMIC, "output", True, 1,
    )  # fmt: skip
    assert "rely on the old size" in d.message


def test_output_dynamic_dimension_made_fixed_is_not_breaking() -> None:
    report = compare_signatures(with_output(0, shape=[1]), BASE)
    d = only(report)
    assert report.verdict == Verdict.COMPATIBLE
    assert (d.change, d.side, d.breaking) == (Change.DIM_DYNAMIC_TO_FIXED, "output", False)


def test_output_symbolic_dimension_renamed_is_not_breaking() -> None:
    d = only(compare_signatures(with_output(0, shape=["batch"]), BASE))
    assert (d.change, d.side, d.breaking) == (Change.DIM_RENAMED, "output", False)


def test_output_order_change_is_breaking() -> None:
    new = json.loads(json.dumps(BASE))
    new["outputs"].reverse()
    d = only(compare_signatures(new, BASE))
    assert (d.change, d.side, d.breaking) == (Change.ORDER_CHANGED, "output", True)
    assert "by position" in d.message
    assert (d.old, d.new) == ("label, probabilities", "probabilities, label")


# --- the rest -----------------------------------------------------------------------------


def test_opset_change_is_listed_not_breaking() -> None:
    new = dict(BASE, opset_imports=[["ai.onnx.ml", 3], ["", 21]])
    d = only(compare_signatures(new, BASE))
    assert (d.change, d.side, d.breaking) == (Change.OPSETS_CHANGED, "model", False)
    assert "ai.onnx 17" in d.message
    assert "ai.onnx 21" in d.message
    # The same imports in another order are the same imports.
    reordered = dict(BASE, opset_imports=[["ai.onnx.ml", 3], ["", 17]])
    assert only_none(compare_signatures(reordered, BASE))


def test_every_difference_is_listed_and_split_by_severity() -> None:
    new = sig(
        [tensor("X", "DOUBLE", ["batch", 15]), tensor("mask", "BOOL", ["batch"])],
        [tensor("probabilities", "FLOAT", ["batch", 2]), tensor("score", "FLOAT", ["batch"])],
        [["", 17], ["ai.onnx.ml", 3]],
    )
    report = compare_signatures(new, BASE, approved_version=2)
    assert report.verdict == Verdict.BREAKING
    assert sorted((d.side, d.tensor, d.change) for d in report.breaking) == [
        ("input", "X", Change.ELEMENT_TYPE_CHANGED),
        ("input", "mask", Change.ADDED),
        ("output", "label", Change.REMOVED),
    ]
    assert sorted((d.side, d.tensor, d.change) for d in report.non_breaking) == [
        ("input", "X", Change.DIM_RENAMED),
        ("output", "probabilities", Change.DIM_RENAMED),
        ("output", "score", Change.ADDED),
    ]
    assert all(d.message for d in report.breaking + report.non_breaking)


def test_a_scalar_and_a_missing_shape_compare_as_rank_zero() -> None:
    old = sig([tensor("a", shape=["N"])], [tensor("y", shape=["N"])])
    new = json.loads(json.dumps(old))
    new["outputs"][0]["shape"] = []
    d = only(compare_signatures(new, old))
    assert (d.change, d.breaking, d.new) == (Change.RANK_CHANGED, True, "[]")


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ([], "not an object"),
        ({"outputs": []}, "inputs is not a list"),
        ({"inputs": [], "outputs": "y"}, "outputs is not a list"),
        ({"inputs": [1], "outputs": []}, "inputs[0] is not an object"),
        ({"inputs": [{"name": 1, "element_type": "FLOAT", "shape": []}], "outputs": []}, "name"),
        ({"inputs": [{"name": "a", "shape": []}], "outputs": []}, "element_type"),
        (
            {"inputs": [{"name": "a", "element_type": "FLOAT", "shape": "N"}], "outputs": []},
            "shape",
        ),
        (
            {"inputs": [{"name": "a", "element_type": "FLOAT", "shape": [1.5]}], "outputs": []},
            "shape[0]",
        ),
        (
            {"inputs": [{"name": "a", "element_type": "FLOAT", "shape": [True]}], "outputs": []},
            "shape[0]",
        ),
        ({"inputs": [tensor("a"), tensor("a")], "outputs": []}, "repeat a name"),
        ({"inputs": [], "outputs": [], "opset_imports": [["", "17"]]}, "opset_imports[0]"),
    ],
)
def test_a_malformed_signature_is_refused(bad: Any, says: str) -> None:
    with pytest.raises(
        SignatureFormatError,
    ) as caught:
        compare_signatures(bad, BASE)
    assert says in str(caught.value)
    with pytest.raises(SignatureFormatError):
        compare_signatures(BASE, bad)


def test_signature_objects_are_accepted_as_is() -> None:
    new = Signature(inputs=(TensorSig("X", "FLOAT", ("N", 15)),), outputs=())
    report = compare_signatures(new, BASE)
    assert [d.tensor for d in report.breaking] == ["label", "probabilities"]
