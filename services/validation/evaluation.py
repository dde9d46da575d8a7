"""Reproduced metrics: read an evaluation set, compute the metrics a version claims, compare.

The model is run elsewhere (in the sandbox); reading the evaluation set into the model's
input arrays is `evaluation_set.py`, turning the model's outputs into verified metrics and
comparing them with the claims is `metrics.py`. Both are named here:

    eval_set = read_evaluation_set(path, signature)          # EvaluationError if unusable
    outputs = <run the model on eval_set.inputs>             # {output name: array}
    report = verify_metrics(claimed, outputs, eval_set.labels)
    report.passed, report.to_dict()                          # JSON for the version's report

Every refusal is an `EvaluationError` with a reason code (`EVAL_*`) and a sentence.
"""

from __future__ import annotations

from services.validation.evaluation_set import (
    DEFAULT_LABEL_COLUMN,
    MAX_EVAL_BYTES,
    MAX_EVAL_COLUMNS,
    MAX_EVAL_ROWS,
    MAX_EVAL_UNCOMPRESSED_BYTES,
    Array,
    EvaluationError,
    EvaluationSet,
    EvaluationSetSummary,
    read_evaluation_set,
)
from services.validation.metrics import (
    ABSOLUTE_TOLERANCE,
    ALIASES,
    METRICS,
    RELATIVE_TOLERANCE,
    THRESHOLD,
    MetricComparison,
    MetricsReport,
    Status,
    ToleranceKind,
    VerifiedMetric,
    canonical_metric,
    compare_metrics,
    compute_metrics,
    tolerance_for,
    verify_metrics,
)

__all__ = [
    "ABSOLUTE_TOLERANCE",
    "ALIASES",
    "DEFAULT_LABEL_COLUMN",
    "MAX_EVAL_BYTES",
    "MAX_EVAL_COLUMNS",
    "MAX_EVAL_ROWS",
    "MAX_EVAL_UNCOMPRESSED_BYTES",
    "METRICS",
    "RELATIVE_TOLERANCE",
    "THRESHOLD",
    "Array",
    "EvaluationError",
    "EvaluationSet",
    "EvaluationSetSummary",
    "MetricComparison",
    "MetricsReport",
    "Status",
    "ToleranceKind",
    "VerifiedMetric",
    "canonical_metric",
    "compare_metrics",
    "compute_metrics",
    "read_evaluation_set",
    "tolerance_for",
    "verify_metrics",
]
