"""Reproduced metrics: reading evaluation sets, computing metrics, comparing with claims."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.validation.evaluation import (
    ABSOLUTE_TOLERANCE,
    RELATIVE_TOLERANCE,
    EvaluationError,
    Status,
    ToleranceKind,
    canonical_metric,
    compare_metrics,
    compute_metrics,
    read_evaluation_set,
    verify_metrics,
)

# The example's model: skl2onnx's export of a binary classifier with zipmap=False.
EXAMPLE_SIGNATURE: dict[str, Any] = {
    "inputs": [{"name": "X", "element_type": "FLOAT", "shape": ["N", 3]}],
    "outputs": [
        {"name": "label", "element_type": "INT64", "shape": ["N"]},
        {"name": "probabilities", "element_type": "FLOAT", "shape": ["N", 2]},
    ],
    "opset_imports": [["", 17], ["ai.onnx.ml", 3]],
    "ir_version": 8,
    "producer_name": "skl2onnx",
    "producer_version": "1.20.0",
}

# Four rows computed by hand (see each test).
Y = np.array([0, 0, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8], dtype=np.float32)


def probabilities(scores: np.ndarray) -> np.ndarray:
    return np.stack([1 - scores, scores], axis=1).astype(np.float32)


def classifier_outputs(scores: np.ndarray = SCORES) -> dict[str, np.ndarray]:
    return {"label": (scores > 0.5).astype(np.int64), "probabilities": probabilities(scores)}


def signature(*inputs: dict[str, Any]) -> dict[str, Any]:
    return {"inputs": list(inputs), "outputs": [], "opset_imports": [["", 17]]}


def x_input(element_type: str, shape: list[Any]) -> dict[str, Any]:
    return {"name": "x", "element_type": element_type, "shape": shape}


def write(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def refused(code: str, call: Any, *args: Any, **kwargs: Any) -> EvaluationError:
    with pytest.raises(EvaluationError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value
    return caught.value


# --- metrics, against hand computation ----------------------------------------------------


def test_classification_metrics_match_hand_computation() -> None:
    verified, used = compute_metrics(
        ["roc_auc", "average_precision", "f1", "accuracy", "precision", "recall", "log_loss"],
        classifier_outputs(),
        Y,
    )
    values = {k: v.value for k, v in verified.items()}
    # Positive/negative pairs: 0.35 beats 0.1, loses to 0.4; 0.8 beats both: 3 of 4.
    assert values["roc_auc"] == pytest.approx(0.75)
    # Ranked 0.8(+) 0.4(-) 0.35(+) 0.1(-): precision 1 at recall 0.5, 2/3 at recall 1.
    assert values["average_precision"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Scores >= 0.5 -> [0, 0, 0, 1]: TP 1, FP 0, FN 1, TN 2.
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["precision"] == pytest.approx(1.0)
    assert values["recall"] == pytest.approx(0.5)
    assert values["f1"] == pytest.approx(2 / 3)
    expected_loss = -np.mean(np.log([0.9, 0.6, 0.35, 0.8]))
    assert values["log_loss"] == pytest.approx(expected_loss, rel=1e-6)
    assert used == {"scores": "probabilities", "classes": "probabilities >= 0.5"}


def test_regression_metrics_match_hand_computation() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    outputs = {"variable": np.array([[1.5], [2.0], [2.0], [5.0]], dtype=np.float32)}
    verified, used = compute_metrics(["rmse", "mse", "mae", "r2"], outputs, y)
    values = {k: v.value for k, v in verified.items()}
    # Errors 0.5, 0, -1, 1.
    assert values["mae"] == pytest.approx(2.5 / 4)
    assert values["mse"] == pytest.approx(2.25 / 4)
    assert values["rmse"] == pytest.approx(0.75)
    # 1 - 2.25 / sum((y - 2.5)^2) = 1 - 2.25 / 5.
    assert values["r2"] == pytest.approx(0.55)
    assert used == {"regression": "variable"}


@pytest.mark.parametrize("shape", ["n", "n1", "n2"])
def test_scores_may_be_n_n1_or_probabilities(shape: str) -> None:
    scores = {"n": SCORES, "n1": SCORES[:, None], "n2": probabilities(SCORES)}[shape]
    verified, _ = compute_metrics(["auc", "f1"], {"score": scores}, Y)
    assert verified["roc_auc"].value == pytest.approx(0.75)
    assert verified["f1"].value == pytest.approx(2 / 3)


def test_the_threshold_is_inclusive_at_one_half() -> None:
    verified, _ = compute_metrics(["accuracy"], {"p": np.array([0.5, 0.49, 0.5, 0.51])}, Y)
    # >= 0.5 -> [1, 0, 1, 1]: rows 1, 2 (0-based) and 3 right.
    assert verified["accuracy"].value == pytest.approx(0.75)


def test_boolean_labels_are_binary() -> None:
    verified, _ = compute_metrics(["roc_auc"], classifier_outputs(), Y.astype(bool))
    assert verified["roc_auc"].value == pytest.approx(0.75)


def test_classes_come_from_a_label_output_when_there_are_no_scores() -> None:
    outputs = {"label": np.array([0, 1, 1, 1], dtype=np.int64)}
    verified, used = compute_metrics(["accuracy", "f1", "roc_auc"], outputs, Y)
    assert verified["accuracy"].value == pytest.approx(0.75)
    assert verified["f1"].value == pytest.approx(0.8)  # TP 2, FP 1, FN 0
    assert verified["roc_auc"].value is None
    assert "no output usable as scores" in (verified["roc_auc"].reason or "")
    assert used == {"classes": "label"}


def test_scores_outside_0_1_are_not_thresholded() -> None:
    outputs = {"margin": np.array([-2.0, 1.0, 0.2, 3.0]), "label": np.array([0, 1, 1, 1])}
    verified, used = compute_metrics(["roc_auc", "accuracy"], outputs, Y)
    assert verified["roc_auc"].value == pytest.approx(0.75)
    assert verified["accuracy"].value == pytest.approx(0.75)  # from "label", not margin >= 0.5
    assert used["classes"] == "label"


def test_a_label_output_named_by_the_caller_wins_over_scores() -> None:
    outputs = classifier_outputs()
    outputs["label"] = np.array([1, 1, 1, 1])
    verified, _ = compute_metrics(["accuracy"], outputs, Y, label_output="label")
    assert verified["accuracy"].value == pytest.approx(0.5)


def test_non_binary_labels_make_classification_metrics_not_computed() -> None:
    verified, _ = compute_metrics(
        ["auc", "f1", "mae"], classifier_outputs(), np.array([0, 1, 2, 1])
    )
    assert verified["roc_auc"].value is None
    assert "0/1 or booleans" in (verified["roc_auc"].reason or "")
    assert verified["f1"].value is None
    # A regression metric on the same outputs: ambiguous? No: "probabilities" is [n, 2].
    assert verified["mae"].value is None
    assert "no output usable as regression" in (verified["mae"].reason or "")


def test_one_class_only_leaves_ranking_metrics_not_computed() -> None:
    verified, _ = compute_metrics(["auc", "ap", "accuracy"], classifier_outputs(), np.zeros(4))
    assert verified["roc_auc"].value is None
    assert "both classes" in (verified["roc_auc"].reason or "")
    assert verified["average_precision"].value is None
    assert verified["accuracy"].value == pytest.approx(0.75)


def test_several_candidate_outputs() -> None:
    outputs = {"a": SCORES, "b": SCORES[::-1].copy()}
    verified, _ = compute_metrics(["auc"], outputs, Y)
    assert verified["roc_auc"].value is None
    assert "several outputs" in (verified["roc_auc"].reason or "")
    verified, used = compute_metrics(["auc"], outputs, Y, score_output="a")
    assert verified["roc_auc"].value == pytest.approx(0.75)
    assert used["scores"] == "a"
    # A name holding "prob" is preferred.
    verified, used = compute_metrics(["auc"], {"raw": SCORES, "class_prob": SCORES}, Y)
    assert used["scores"] == "class_prob"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_predictions_fail_the_evaluation(bad: float) -> None:
    scores = SCORES.copy()
    scores[2] = bad
    error = refused(
        "EVAL_PREDICTIONS_NOT_FINITE", compute_metrics, ["auc"], classifier_outputs(scores), Y
    )
    assert "'probabilities' holds 1 NaN or infinite values out of 4" in error.message


def test_predictions_of_the_wrong_length_fail_the_evaluation() -> None:
    error = refused(
        "EVAL_PREDICTIONS_SHAPE", compute_metrics, ["auc"], {"p": SCORES[:3]}, Y, score_output="p"
    )
    assert "4 rows were fed" in error.message
    refused("EVAL_PREDICTIONS_SHAPE", compute_metrics, ["auc"], {}, Y, score_output="missing")


def test_labels_with_nan_leave_regression_metrics_not_computed() -> None:
    verified, _ = compute_metrics(["rmse"], {"y": np.ones(2)}, np.array([1.0, math.nan]))
    assert verified["rmse"].value is None


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimed", "metric"),
    [
        ("auc", "roc_auc"), ("roc_auc", "roc_auc"), ("ROC AUC", "roc_auc"), ("ROC-AUC", "roc_auc"),
        ("AUROC", "roc_auc"), ("roc_auc_score", "roc_auc"),
        ("ap", "average_precision"), ("average_precision", "average_precision"),
        ("Average Precision", "average_precision"),
        ("f1", "f1"), ("F1", "f1"), ("f1_score", "f1"), ("F1-score", "f1"),
        ("accuracy", "accuracy"), ("acc", "accuracy"), ("Accuracy", "accuracy"),
        ("rmse", "rmse"), ("RMSE", "rmse"), ("root_mean_squared_error", "rmse"),
        ("mae", "mae"), ("MAE", "mae"), ("mean_absolute_error", "mae"),
        ("mse", "mse"), ("r2", "r2"), ("R^2", None), ("precision", "precision"),
        ("recall", "recall"), ("logloss", "log_loss"),
        ("baseline_roc_auc", None), ("pr_auc", None), ("loss", None), ("", None),
    ],
)  # fmt: skip
def test_metric_names(claimed: str, metric: str | None) -> None:
    assert canonical_metric(claimed) == metric


def test_unknown_claims_are_listed_not_errors() -> None:
    claimed = {"roc_auc": 0.75, "baseline_roc_auc": 0.5, "pr_auc": 0.6}
    report = verify_metrics(claimed, classifier_outputs(), Y)
    assert report.unknown == ["baseline_roc_auc", "pr_auc"]
    assert [c.name for c in report.comparisons] == ["roc_auc"]
    assert report.passed


def test_two_spellings_of_one_metric_are_both_compared() -> None:
    report = verify_metrics({"auc": 0.75, "ROC AUC": 0.9}, classifier_outputs(), Y)
    by_name = {c.name: c.status for c in report.comparisons}
    assert by_name == {"auc": Status.MATCH, "ROC AUC": Status.MISMATCH}
    assert not report.passed


# --- tolerance ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimed", "status"),
    [
        (0.75, Status.MATCH),
        (0.76, Status.MATCH),  # exactly 0.01 away: in (0.76 - 0.75 is 0.010000000000000009)
        (0.74, Status.MATCH),
        (0.7601, Status.MISMATCH),
        (0.7399, Status.MISMATCH),
        (0.9, Status.MISMATCH),
    ],
)
def test_absolute_tolerance_boundary(claimed: float, status: Status) -> None:
    report = verify_metrics({"roc_auc": claimed}, classifier_outputs(), Y)
    (comparison,) = report.comparisons
    assert comparison.status == status
    assert comparison.tolerance == ABSOLUTE_TOLERANCE
    assert comparison.tolerance_kind == ToleranceKind.ABSOLUTE
    assert comparison.difference == pytest.approx(0.75 - claimed)
    assert report.passed is (status == Status.MATCH)


@pytest.mark.parametrize(
    ("claimed", "status"),
    [
        (0.75, Status.MATCH),
        (0.765, Status.MATCH),  # 2% of the verified 0.75 is 0.015
        (0.735, Status.MATCH),
        (0.7651, Status.MISMATCH),
        (0.7349, Status.MISMATCH),
    ],
)
def test_relative_tolerance_boundary(claimed: float, status: Status) -> None:
    outputs = {"variable": np.array([1.5, 2.0, 2.0, 5.0])}
    report = verify_metrics({"rmse": claimed}, outputs, np.array([1.0, 2.0, 3.0, 4.0]))
    (comparison,) = report.comparisons
    assert comparison.status == status
    assert comparison.tolerance == pytest.approx(RELATIVE_TOLERANCE * 0.75)
    assert comparison.tolerance_kind == ToleranceKind.RELATIVE


def test_a_perfect_regression_needs_an_almost_exact_claim() -> None:
    outputs = {"variable": np.array([1.0, 2.0])}
    labels = np.array([1.0, 2.0])
    assert verify_metrics({"mae": 0.0}, outputs, labels).passed
    assert not verify_metrics({"mae": 0.001}, outputs, labels).passed


def test_not_computed_fails_the_report_with_the_reason() -> None:
    report = verify_metrics({"auc": 0.9, "accuracy": 0.75}, classifier_outputs(), np.ones(4))
    by_name = {c.name: c for c in report.comparisons}
    assert by_name["accuracy"].status == Status.MISMATCH  # scores >= 0.5: 1 of 4 right
    assert by_name["auc"].status == Status.NOT_COMPUTED
    assert by_name["auc"].verified is None
    assert "both classes" in by_name["auc"].message
    assert not report.passed
    assert {c.name for c in report.mismatches} == {"auc", "accuracy"}


def test_compare_metrics_without_a_verified_value() -> None:
    comparisons, unknown = compare_metrics({"f1": 0.5, "zzz": 1.0}, {})
    assert unknown == ["zzz"]
    assert comparisons[0].status == Status.NOT_COMPUTED


def test_the_report_is_json_serialisable() -> None:
    claimed = {"roc_auc": 0.75, "f1": 0.9, "auc_baseline": 0.5}
    report = verify_metrics(claimed, classifier_outputs(), Y)
    out = json.loads(json.dumps(report.to_dict()))
    assert out["passed"] is False
    assert out["unknown"] == ["auc_baseline"]
    assert out["threshold"] == 0.5
    assert out["outputs_used"] == {"scores": "probabilities", "classes": "probabilities >= 0.5"}
    f1 = next(c for c in out["comparisons"] if c["name"] == "f1")
    assert f1["status"] == "MISMATCH"
    assert f1["tolerance_kind"] == "ABSOLUTE"
    assert f1["verified"] == pytest.approx(2 / 3)
    assert "differs by more than ±0.01" in f1["message"]
    error = EvaluationError("EVAL_TOO_LARGE", "too big")
    assert json.loads(json.dumps(error.to_dict())) == {
        "code": "EVAL_TOO_LARGE",
        "message": "too big",
    }


# --- reading the evaluation set -----------------------------------------------------------


def example_frame(rows: int = 6) -> pd.DataFrame:
    """Like the example's held-out pump: float features, a boolean label, a time index."""
    index = pd.date_range("2025-01-01", periods=rows, freq="1h", tz="UTC", name="time")
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "vibration_rms_median_6h": rng.random(rows),
            "bearing_temp_median_6h": rng.random(rows),
            "flow_std_1h": rng.random(rows),
            "label": [False, True] * (rows // 2),
        },
        index=index,
    )


def test_the_example_layout_feeds_the_single_input(tmp_path: Path) -> None:
    frame = example_frame()
    frame.to_parquet(tmp_path / "holdout.parquet")
    eval_set = read_evaluation_set(tmp_path / "holdout.parquet", EXAMPLE_SIGNATURE)
    x = eval_set.inputs["X"]
    assert x.dtype == np.float32
    assert x.shape == (6, 3)
    assert np.array_equal(x, frame.iloc[:, :3].to_numpy(dtype=np.float32))
    assert eval_set.labels.tolist() == frame["label"].tolist()
    summary = eval_set.summary
    assert summary.rows == 6
    assert summary.label_column == "label"
    assert summary.input_columns == {"X": list(frame.columns[:3])}
    assert summary.size_bytes == (tmp_path / "holdout.parquet").stat().st_size


def test_an_integer_index_written_by_pandas_is_not_a_feature(tmp_path: Path) -> None:
    frame = example_frame().reset_index(drop=True)
    frame.index = frame.index + 100  # not a RangeIndex from 0: stored as a column
    frame.to_parquet(tmp_path / "e.parquet")
    eval_set = read_evaluation_set(tmp_path / "e.parquet", EXAMPLE_SIGNATURE)
    assert eval_set.summary.input_columns["X"] == list(frame.columns[:3])


def test_non_numeric_columns_are_not_features(tmp_path: Path) -> None:
    frame = example_frame()
    frame.insert(1, "asset_id", "pump-001")
    frame.to_parquet(tmp_path / "e.parquet")
    eval_set = read_evaluation_set(tmp_path / "e.parquet", EXAMPLE_SIGNATURE)
    assert "asset_id" not in eval_set.summary.input_columns["X"]


def test_named_feature_columns_in_the_given_order(tmp_path: Path) -> None:
    frame = example_frame()
    frame["extra"] = 1.0
    frame.to_parquet(tmp_path / "e.parquet")
    order = ["flow_std_1h", "vibration_rms_median_6h", "bearing_temp_median_6h"]
    eval_set = read_evaluation_set(tmp_path / "e.parquet", EXAMPLE_SIGNATURE, feature_columns=order)
    assert np.array_equal(eval_set.inputs["X"], frame[order].to_numpy(dtype=np.float32))
    error = refused(
        "EVAL_COLUMNS_MISMATCH",
        read_evaluation_set,
        tmp_path / "e.parquet",
        EXAMPLE_SIGNATURE,
        feature_columns=["flow_std_1h", "nope", "label"],
    )
    assert "'nope'" in error.message


def test_named_feature_columns_win_over_a_column_named_like_the_input(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", {"X": [9.0], "a": [1.0], "b": [2.0], "label": [1]})
    sig = signature({"name": "X", "element_type": "FLOAT", "shape": ["N", 2]})
    refused("EVAL_COLUMNS_MISMATCH", read_evaluation_set, path, sig)  # X is a scalar column
    eval_set = read_evaluation_set(path, sig, feature_columns=["b", "a"])
    assert eval_set.inputs["X"].tolist() == [[2.0, 1.0]]


def test_a_custom_label_column(tmp_path: Path) -> None:
    frame = example_frame().rename(columns={"label": "fails_48h"})
    frame.to_parquet(tmp_path / "e.parquet")
    refused("EVAL_NO_LABEL", read_evaluation_set, tmp_path / "e.parquet", EXAMPLE_SIGNATURE)
    eval_set = read_evaluation_set(
        tmp_path / "e.parquet", EXAMPLE_SIGNATURE, label_column="fails_48h"
    )
    assert eval_set.inputs["X"].shape == (6, 3)


def test_missing_label_is_refused(tmp_path: Path) -> None:
    example_frame().drop(columns="label").to_parquet(tmp_path / "e.parquet")
    error = refused("EVAL_NO_LABEL", read_evaluation_set, tmp_path / "e.parquet", EXAMPLE_SIGNATURE)
    assert "no label column 'label'" in error.message
    assert "'flow_std_1h'" in error.message


def test_a_text_label_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", {"a": [1.0], "b": [2.0], "c": [3.0], "label": ["yes"]})
    refused("EVAL_NO_LABEL", read_evaluation_set, path, EXAMPLE_SIGNATURE)


def test_missing_labels_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", {"a": [1.0], "b": [2.0], "c": [3.0], "label": [None]})
    # An all-null column has Arrow type null: not numbers.
    refused("EVAL_NO_LABEL", read_evaluation_set, path, EXAMPLE_SIGNATURE)
    path = write(
        tmp_path / "f.parquet",
        {"a": [1.0, 2.0], "b": [2.0, 3.0], "c": [3.0, 4.0], "label": pa.array([1, None])},
    )
    error = refused("EVAL_MISSING_VALUES", read_evaluation_set, path, EXAMPLE_SIGNATURE)
    assert "1 missing values" in error.message


def test_wrong_number_of_feature_columns(tmp_path: Path) -> None:
    example_frame().drop(columns="flow_std_1h").to_parquet(tmp_path / "e.parquet")
    error = refused(
        "EVAL_COLUMNS_MISMATCH", read_evaluation_set, tmp_path / "e.parquet", EXAMPLE_SIGNATURE
    )
    assert "takes 3 features; the evaluation set has 2 numeric non-label columns" in error.message


def test_no_feature_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", {"name": ["a"], "label": [1]})
    error = refused("EVAL_COLUMNS_MISMATCH", read_evaluation_set, path, EXAMPLE_SIGNATURE)
    assert "no numeric non-label feature columns" in error.message


def test_a_dynamic_feature_dimension_takes_every_numeric_column(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", {"a": [1, 2], "b": [True, False], "label": [0, 1]})
    sig = signature({"name": "input", "element_type": "DOUBLE", "shape": ["N", "k"]})
    eval_set = read_evaluation_set(path, sig)
    assert eval_set.inputs["input"].tolist() == [[1.0, 1.0], [2.0, 0.0]]
    assert eval_set.inputs["input"].dtype == np.float64


def test_null_features_become_nan_for_float_inputs(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.parquet",
        {"a": pa.array([1.0, None]), "b": pa.array([1, None]), "c": [0.0, 1.0], "label": [0, 1]},
    )
    x = read_evaluation_set(path, EXAMPLE_SIGNATURE).inputs["X"]
    assert np.isnan(x[1, 0])
    assert np.isnan(x[1, 1])


def test_several_named_inputs_take_their_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.parquet",
        {
            "temperature": [20.5, 21.0],
            "pressure": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float64())),
            "count": pa.array([3, 4], pa.int32()),
            "site": ["a", "b"],
            "label": [0.5, 1.5],
        },
    )
    sig = signature(
        {"name": "temperature", "element_type": "FLOAT", "shape": ["N"]},
        {"name": "pressure", "element_type": "FLOAT", "shape": ["N", 2]},
        {"name": "count", "element_type": "INT64", "shape": ["N", 1]},
        {"name": "site", "element_type": "STRING", "shape": ["N"]},
    )
    eval_set = read_evaluation_set(path, sig)
    assert eval_set.inputs["temperature"].tolist() == [20.5, 21.0]
    assert eval_set.inputs["pressure"].dtype == np.float32
    assert eval_set.inputs["pressure"].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert eval_set.inputs["count"].dtype == np.int64
    assert eval_set.inputs["count"].tolist() == [[3], [4]]
    assert eval_set.inputs["site"].tolist() == ["a", "b"]
    assert eval_set.summary.input_columns == {
        "temperature": ["temperature"], "pressure": ["pressure"], "count": ["count"],
        "site": ["site"],
    }  # fmt: skip


def test_a_named_input_without_its_column_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "e.parquet", {"a": [1.0], "label": [1]})
    sig = signature(
        {"name": "a", "element_type": "FLOAT", "shape": ["N"]},
        {"name": "b", "element_type": "FLOAT", "shape": ["N"]},
    )
    error = refused("EVAL_COLUMNS_MISMATCH", read_evaluation_set, path, sig)
    assert "input 'b'" in error.message


@pytest.mark.parametrize(
    ("columns", "spec", "code"),
    [
        # A list column of the wrong width.
        (
            {"x": pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float32()))},
            x_input("FLOAT", ["N", 2]),
            "EVAL_COLUMNS_MISMATCH",
        ),
        # A scalar column for a [N, 2] input.
        ({"x": [1.0]}, x_input("FLOAT", ["N", 2]), "EVAL_COLUMNS_MISMATCH"),
        # Floats for an integer input.
        ({"x": [1.5]}, x_input("INT64", ["N"]), "EVAL_COLUMNS_MISMATCH"),
        # Text for a float input.
        ({"x": ["1.5"]}, x_input("FLOAT", ["N"]), "EVAL_COLUMNS_MISMATCH"),
        # Numbers for a boolean input.
        ({"x": [1]}, x_input("BOOL", ["N"]), "EVAL_COLUMNS_MISMATCH"),
        # Numbers for a string input.
        ({"x": [1]}, x_input("STRING", ["N"]), "EVAL_COLUMNS_MISMATCH"),
        # A null in an integer input.
        ({"x": pa.array([1, None])}, x_input("INT64", ["N"]), "EVAL_MISSING_VALUES"),
        # Images are not columns.
        ({"x": [1.0]}, x_input("FLOAT", ["N", 3, 4]), "EVAL_UNSUPPORTED_INPUT"),
        ({"x": [1.0]}, x_input("FLOAT", []), "EVAL_UNSUPPORTED_INPUT"),
        ({"x": [1.0]}, x_input("COMPLEX64", ["N"]), "EVAL_UNSUPPORTED_INPUT"),
    ],
)  # fmt: skip
def test_columns_that_cannot_feed_an_input(
    tmp_path: Path, columns: dict[str, Any], spec: dict[str, Any], code: str
) -> None:
    rows = len(next(iter(columns.values())))
    path = write(tmp_path / "e.parquet", {**columns, "label": [1] * rows})
    refused(code, read_evaluation_set, path, signature(spec))


@pytest.mark.parametrize(
    "content",
    [
        b"a,b,c,label\n1,2,3,0\n",  # CSV
        b"\x08\x08\x12\x07skl2onnx",  # ONNX-ish protobuf
        b"PAR1",  # magic only
        b"PAR1" + b"\x00" * 20 + b"PAR1",  # magic around garbage
        b"",
    ],
)
def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "e.parquet"
    path.write_bytes(content)
    error = refused("EVAL_NOT_PARQUET", read_evaluation_set, path, EXAMPLE_SIGNATURE)
    assert "Parquet" in error.message


def test_a_truncated_parquet_file_is_refused(tmp_path: Path) -> None:
    example_frame().to_parquet(tmp_path / "e.parquet")
    data = (tmp_path / "e.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    refused("EVAL_NOT_PARQUET", read_evaluation_set, tmp_path / "cut.parquet", EXAMPLE_SIGNATURE)


def test_a_missing_file_is_unreadable(tmp_path: Path) -> None:
    refused("EVAL_UNREADABLE", read_evaluation_set, tmp_path / "none.parquet", EXAMPLE_SIGNATURE)


def test_too_many_bytes_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    path.write_bytes(b"x" * 2048)  # not Parquet either: the size is checked first
    error = refused("EVAL_TOO_LARGE", read_evaluation_set, path, EXAMPLE_SIGNATURE, max_bytes=1024)
    assert "2,048 bytes; at most 1,024" in error.message


def test_too_many_rows_is_refused_from_the_footer(tmp_path: Path) -> None:
    example_frame(rows=10).to_parquet(tmp_path / "e.parquet")
    error = refused(
        "EVAL_TOO_LARGE", read_evaluation_set, tmp_path / "e.parquet", EXAMPLE_SIGNATURE, max_rows=9
    )
    assert "10 rows; at most 9" in error.message
    read_evaluation_set(tmp_path / "e.parquet", EXAMPLE_SIGNATURE, max_rows=10)


def test_too_many_columns_or_decoded_bytes_is_refused(tmp_path: Path) -> None:
    example_frame().to_parquet(tmp_path / "e.parquet")
    path = tmp_path / "e.parquet"
    refused("EVAL_TOO_LARGE", read_evaluation_set, path, EXAMPLE_SIGNATURE, max_columns=4)
    error = refused(
        "EVAL_TOO_LARGE", read_evaluation_set, path, EXAMPLE_SIGNATURE, max_uncompressed_bytes=10
    )
    assert "decodes to" in error.message


def test_an_empty_set_is_refused(tmp_path: Path) -> None:
    example_frame().iloc[:0].to_parquet(tmp_path / "e.parquet")
    refused("EVAL_EMPTY", read_evaluation_set, tmp_path / "e.parquet", EXAMPLE_SIGNATURE)


# --- end to end, with a real exported model ------------------------------------------------


def test_a_scikit_learn_model_exported_to_onnx_reproduces_its_metrics(tmp_path: Path) -> None:
    """The example's path in miniature: train, export with skl2onnx, write the held-out set,
    read it back, run ONNX Runtime, verify the claimed metrics."""
    onnxruntime = pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    from services.models.onnx_validation import _signature

    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=400) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(
        x[:300], y[:300]
    )
    p = model.predict_proba(x[300:])[:, 1]
    claimed = {
        "roc_auc": roc_auc_score(y[300:], p),
        "average_precision": average_precision_score(y[300:], p),
        "f1": f1_score(y[300:], p >= 0.5),
        "baseline_f1": 0.5,
    }
    onnx_model = skl2onnx.to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    stored = json.loads(json.dumps(asdict(_signature(onnx_model))))
    holdout = pd.DataFrame(x[300:], columns=["f0", "f1", "f2"]).assign(label=y[300:] == 1)
    holdout.to_parquet(tmp_path / "holdout.parquet")

    eval_set = read_evaluation_set(tmp_path / "holdout.parquet", stored)
    session = onnxruntime.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, eval_set.inputs), strict=True))
    report = verify_metrics(claimed, outputs, eval_set.labels)

    assert report.passed, report.to_dict()
    assert report.unknown == ["baseline_f1"]
    for comparison in report.comparisons:
        assert comparison.difference == pytest.approx(0.0, abs=1e-5)
