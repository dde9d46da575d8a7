"""Reproduced metrics: the metrics a version claims, computed from the model's outputs on
its evaluation set (`evaluation_set.py`) and compared with the claims.

    report = verify_metrics(claimed, outputs, eval_set.labels)
    report.passed, report.to_dict()                          # JSON for the version's report

The model itself runs elsewhere (in the sandbox). These are not the services' Prometheus
metrics (services/common/metrics.py).

## Metrics

Claimed metric names are matched case-insensitively after turning every run of characters
other than letters and digits into "_" ("ROC AUC", "roc-auc" -> "roc_auc"):

  roc_auc            auc, roc_auc, rocauc, auroc, auc_roc, roc_auc_score
  average_precision  ap, average_precision, avg_precision, average_precision_score
  f1                 f1, f1_score, f1score, f_1
  accuracy           accuracy, acc, accuracy_score
  precision          precision, precision_score
  recall             recall, recall_score, sensitivity, tpr
  log_loss           log_loss, logloss, cross_entropy
  rmse               rmse, root_mean_squared_error
  mse                mse, mean_squared_error
  mae                mae, mean_absolute_error
  r2                 r2, r2_score, r_squared

Other names (e.g. "baseline_roc_auc", "pr_auc", which is not average precision) are listed as
unknown, which is not an error. The computations are scikit-learn's (`sklearn.metrics`).

Which of the model's outputs feeds a metric (the scores, the predicted classes or the
regression predictions) is `predictions.py`'s. Labels for classification metrics must be
boolean or 0/1; otherwise those metrics are NOT_COMPUTED with the reason (multi-class is not
supported yet). ROC AUC and average precision need both classes in the labels; regression
metrics need numeric labels.

## Tolerance

Claimed and verified values match when |claimed - verified| <= tolerance (plus 1e-9 for
binary floating point: 0.91 - 0.90 is 0.010000000000000009):

* roc_auc, average_precision, f1, accuracy, precision, recall, r2: ABSOLUTE 0.01. They live in
  [0, 1] (r2 at most 1). Recomputing on the same rows is exact up to float32 rounding of the
  ONNX conversion (the notebook checks 1e-5 on probabilities), but people claim values rounded
  to two decimals (up to 0.005 off), and a float32 probability landing on the other side of
  0.5 flips a predicted class: 0.01 absorbs both, and one flipped row in a hundred. A
  difference of 0.01 in AUC is already one an approver should hear about.
* rmse, mse, mae, log_loss: RELATIVE 2% of the verified value (at least 1e-9). They are in the
  label's units (or unbounded), so an absolute tolerance means nothing across models;
  2% absorbs rounding to three significant figures (at most 0.5%) and float32 predictions,
  while a model that is really 2% worse than claimed is flagged.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sklearn import metrics as skm  # type: ignore[import-untyped]

from services.validation.evaluation_set import Array, EvaluationError
from services.validation.predictions import NotComputable, Predictions

THRESHOLD = 0.5
ABSOLUTE_TOLERANCE = 0.01
RELATIVE_TOLERANCE = 0.02
_FLOAT_SLACK = 1e-9


class ToleranceKind(enum.StrEnum):
    ABSOLUTE = "ABSOLUTE"
    RELATIVE = "RELATIVE"


class Status(enum.StrEnum):
    MATCH = "MATCH"
    MISMATCH = "MISMATCH"
    NOT_COMPUTED = "NOT_COMPUTED"


@dataclass(frozen=True)
class _Metric:
    needs: str  # "scores", "classes" or "regression"
    tolerance: ToleranceKind
    compute: Callable[[Array, Array], float]


def _f1(y: Array, p: Array) -> float:
    return float(skm.f1_score(y, p, zero_division=0.0))


def _accuracy(y: Array, p: Array) -> float:
    return float(skm.accuracy_score(y, p))


def _precision(y: Array, p: Array) -> float:
    return float(skm.precision_score(y, p, zero_division=0.0))


def _recall(y: Array, p: Array) -> float:
    return float(skm.recall_score(y, p, zero_division=0.0))


def _roc_auc(y: Array, s: Array) -> float:
    return float(skm.roc_auc_score(y, s))


def _average_precision(y: Array, s: Array) -> float:
    return float(skm.average_precision_score(y, s))


def _log_loss(y: Array, s: Array) -> float:
    return float(skm.log_loss(y, s, labels=[0, 1]))


def _rmse(y: Array, p: Array) -> float:
    return float(skm.root_mean_squared_error(y, p))


def _mse(y: Array, p: Array) -> float:
    return float(skm.mean_squared_error(y, p))


def _mae(y: Array, p: Array) -> float:
    return float(skm.mean_absolute_error(y, p))


def _r2(y: Array, p: Array) -> float:
    return float(skm.r2_score(y, p))


_A, _R = ToleranceKind.ABSOLUTE, ToleranceKind.RELATIVE
METRICS: dict[str, _Metric] = {
    "roc_auc": _Metric("scores", _A, _roc_auc),
    "average_precision": _Metric("scores", _A, _average_precision),
    "log_loss": _Metric("scores", _R, _log_loss),
    "f1": _Metric("classes", _A, _f1),
    "accuracy": _Metric("classes", _A, _accuracy),
    "precision": _Metric("classes", _A, _precision),
    "recall": _Metric("classes", _A, _recall),
    "rmse": _Metric("regression", _R, _rmse),
    "mse": _Metric("regression", _R, _mse),
    "mae": _Metric("regression", _R, _mae),
    "r2": _Metric("regression", _A, _r2),
}

ALIASES: dict[str, str] = {
    alias: metric
    for metric, aliases in {
        "roc_auc": ("auc", "roc_auc", "rocauc", "auroc", "auc_roc", "roc_auc_score"),
        "average_precision": (
            "ap",
            "average_precision",
            "avg_precision",
            "average_precision_score",
        ),
        "f1": ("f1", "f1_score", "f1score", "f_1"),
        "accuracy": ("accuracy", "acc", "accuracy_score"),
        "precision": ("precision", "precision_score"),
        "recall": ("recall", "recall_score", "sensitivity", "tpr"),
        "log_loss": ("log_loss", "logloss", "cross_entropy"),
        "rmse": ("rmse", "root_mean_squared_error"),
        "mse": ("mse", "mean_squared_error"),
        "mae": ("mae", "mean_absolute_error"),
        "r2": ("r2", "r2_score", "r_squared"),
    }.items()
    for alias in aliases
}


def canonical_metric(name: str) -> str | None:
    """The metric a claimed name means ("ROC AUC" -> "roc_auc"), or None if unknown."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    return ALIASES.get(key)


@dataclass(frozen=True)
class VerifiedMetric:
    metric: str
    value: float | None
    reason: str | None = None  # why it could not be computed, when value is None


@dataclass(frozen=True)
class MetricComparison:
    name: str  # as claimed
    metric: str  # canonical
    claimed: float
    verified: float | None
    difference: float | None  # verified - claimed
    tolerance: float | None  # the allowed |difference|, in the metric's units
    tolerance_kind: ToleranceKind
    status: Status
    message: str


@dataclass(frozen=True)
class MetricsReport:
    comparisons: list[MetricComparison]
    unknown: list[str] = field(default_factory=list)  # claimed names not known here
    threshold: float = THRESHOLD
    # "scores" / "classes" / "regression" -> the output used ("classes" may be
    # "probabilities >= 0.5")
    outputs_used: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every known claimed metric was computed and matched (vacuously true when none
        was known: see `comparisons`)."""
        return all(c.status == Status.MATCH for c in self.comparisons)

    @property
    def mismatches(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.status != Status.MATCH]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (enums as their values), with `passed`."""
        out = asdict(self)
        for item in out["comparisons"]:
            item["tolerance_kind"] = item["tolerance_kind"].value
            item["status"] = item["status"].value
        out["passed"] = self.passed
        return out


def _binary_labels(labels: Array) -> Array:
    if labels.dtype == np.bool_:
        return labels.astype(np.int64)
    if labels.dtype.kind in "iuf" and np.isin(labels, (0, 1)).all():
        return labels.astype(np.int64)
    distinct = np.unique(labels)
    raise NotComputable(
        f"classification metrics need labels that are 0/1 or booleans; the labels hold "
        f"{distinct.size:,} distinct values ({', '.join(str(v) for v in distinct[:5])}"
        + (", …" if distinct.size > 5 else "")
        + ")"
    )


def compute_metrics(
    names: Iterable[str],
    outputs: Mapping[str, Array],
    labels: Array,
    *,
    score_output: str | None = None,
    label_output: str | None = None,
    prediction_output: str | None = None,
    threshold: float = THRESHOLD,
) -> tuple[dict[str, VerifiedMetric], dict[str, str]]:
    """Compute each known metric among `names` (claimed names, any spelling) from the
    model's outputs (output name -> array, rows along axis 0) and the labels.

    Returns ({canonical metric: VerifiedMetric}, {"scores"/"classes"/"regression": the
    output used}). Raises EvaluationError (EVAL_PREDICTIONS_SHAPE,
    EVAL_PREDICTIONS_NOT_FINITE) when an output needed is unusable."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.size == 0:
        raise EvaluationError("EVAL_NO_LABEL", f"the labels have shape {list(y.shape)}")
    predictions = Predictions(
        outputs, y.shape[0], score_output, label_output, prediction_output, threshold
    )
    wanted = sorted({m for m in (canonical_metric(n) for n in names) if m is not None})
    verified: dict[str, VerifiedMetric] = {}
    for metric in wanted:
        spec = METRICS[metric]
        try:
            if spec.needs == "regression":
                if y.dtype.kind not in "biuf":
                    raise NotComputable("regression metrics need numeric labels")
                truth = y.astype(np.float64)
                if not np.isfinite(truth).all():
                    raise NotComputable("the labels hold NaN or infinity")
            else:
                truth = _binary_labels(y)
                if spec.needs == "scores" and np.unique(truth).size < 2:
                    raise NotComputable(
                        f"{metric} needs both classes in the labels; they hold only {int(truth[0])}"
                    )
            value = spec.compute(truth, predictions.get(spec.needs))
            if not math.isfinite(value):
                raise NotComputable(f"{metric} is not finite on this set")
            verified[metric] = VerifiedMetric(metric=metric, value=value)
        except NotComputable as exc:
            verified[metric] = VerifiedMetric(metric=metric, value=None, reason=str(exc))
    return verified, dict(predictions.used)


def tolerance_for(metric: str, verified: float) -> tuple[ToleranceKind, float]:
    """(kind, allowed |claimed - verified|) for a known metric."""
    kind = METRICS[metric].tolerance
    if kind == ToleranceKind.ABSOLUTE:
        return kind, ABSOLUTE_TOLERANCE
    return kind, max(RELATIVE_TOLERANCE * abs(verified), _FLOAT_SLACK)


def compare_metrics(
    claimed: Mapping[str, float], verified: Mapping[str, VerifiedMetric]
) -> tuple[list[MetricComparison], list[str]]:
    """Compare each claimed metric with its verified value: (comparisons in claimed-name
    order, claimed names that are not known metrics)."""
    comparisons: list[MetricComparison] = []
    unknown: list[str] = []
    for name in sorted(claimed):
        claim = float(claimed[name])
        metric = canonical_metric(name)
        if metric is None:
            unknown.append(name)
            continue
        result = verified.get(metric)
        kind = METRICS[metric].tolerance
        if result is None or result.value is None:
            reason = result.reason if result is not None else "it was not computed"
            comparisons.append(
                MetricComparison(
                    name=name,
                    metric=metric,
                    claimed=claim,
                    verified=None,
                    difference=None,
                    tolerance=None,
                    tolerance_kind=kind,
                    status=Status.NOT_COMPUTED,
                    message=f"{name}: claimed {claim:.6g}, could not be verified: {reason}",
                )
            )
            continue
        kind, allowed = tolerance_for(metric, result.value)
        difference = result.value - claim
        shown = f"{allowed:.6g}" + (
            f" ({RELATIVE_TOLERANCE:.0%} of the verified value)"
            if kind == ToleranceKind.RELATIVE
            else ""
        )
        within = math.isfinite(claim) and abs(difference) <= allowed + _FLOAT_SLACK
        status = Status.MATCH if within else Status.MISMATCH
        message = (
            f"{name}: claimed {claim:.6g}, verified {result.value:.6g} "
            + ("(within" if within else "(differs by more than")
            + f" ±{shown})"
        )
        comparisons.append(
            MetricComparison(
                name=name,
                metric=metric,
                claimed=claim,
                verified=result.value,
                difference=difference,
                tolerance=allowed,
                tolerance_kind=kind,
                status=status,
                message=message,
            )
        )
    return comparisons, unknown


def verify_metrics(
    claimed: Mapping[str, float],
    outputs: Mapping[str, Array],
    labels: Array,
    *,
    score_output: str | None = None,
    label_output: str | None = None,
    prediction_output: str | None = None,
    threshold: float = THRESHOLD,
) -> MetricsReport:
    """Compute the claimed metrics this module knows from the model's outputs and compare
    them with the claims. Raises EvaluationError when the outputs are unusable."""
    verified, used = compute_metrics(
        claimed,
        outputs,
        labels,
        score_output=score_output,
        label_output=label_output,
        prediction_output=prediction_output,
        threshold=threshold,
    )
    comparisons, unknown = compare_metrics(claimed, verified)
    return MetricsReport(
        comparisons=comparisons, unknown=unknown, threshold=threshold, outputs_used=used
    )
