"""Reproduce a version's claimed metrics: its model run on its evaluation set, in the sandbox.

`run_evaluation(model, evaluation_set, ...)` is the worker's call (blocking): it runs
`evaluate_model` in a sandboxed child (services/validation/sandbox.py), which reads the
Parquet set into the model's inputs (`evaluation.read_evaluation_set`: the untrusted file is
parsed in the child too, under its limits), runs the model on every row in batches, and
compares the metrics it can compute with the claimed ones (`evaluation.verify_metrics`).

The answer is the report's `metrics` object: `passed`, `reason` (an `EVAL_*` code,
`METRICS_MISMATCH`, or a sandbox reason such as `TIME_LIMIT`), `message`, `rows`,
`label_column`, and the comparisons (`MetricsReport.to_dict()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.validation.runtime_check import MODEL_FILE, session_options
from services.validation.sandbox import SandboxLimits, run_sandboxed

EVALUATION_FILE = "evaluation.parquet"
METRICS_MISMATCH = "METRICS_MISMATCH"
EVALUATION_FAILED = "EVALUATION_FAILED"
# Rows per inference call: bounds the memory of the outputs' intermediate tensors.
BATCH_ROWS = 8192


def run_evaluation(
    model: Path,
    evaluation_set: Path,
    *,
    signature: Mapping[str, Any],
    claimed: Mapping[str, float],
    label_column: str,
    limits: SandboxLimits,
    scratch_root: Path | None = None,
) -> dict[str, Any]:
    """The `metrics` part of a validation report. Blocking."""
    outcome = run_sandboxed(
        evaluate_model,
        {
            "signature": dict(signature),
            "claimed": dict(claimed),
            "label_column": label_column,
            "threads": limits.threads,
        },
        limits=limits,
        files={MODEL_FILE: model, EVALUATION_FILE: evaluation_set},
        scratch_root=scratch_root,
    )
    if outcome.ok and isinstance(outcome.result, dict):
        return outcome.result
    return _failed(outcome.reason or EVALUATION_FAILED, outcome.message, label_column)


def _failed(reason: str, message: str, label_column: str, **values: Any) -> dict[str, Any]:
    return {
        "passed": False,
        "reason": reason,
        "message": message,
        "label_column": label_column,
        "comparisons": [],
        "unknown": [],
        **values,
    }


def evaluate_model(payload: dict[str, Any]) -> dict[str, Any]:
    """Runs in the sandboxed child (its working directory holds both files)."""
    import numpy as np
    import onnxruntime as ort  # type: ignore[import-untyped]

    from services.validation.evaluation import (
        EvaluationError,
        read_evaluation_set,
        verify_metrics,
    )

    label_column = str(payload["label_column"])
    try:
        data = read_evaluation_set(EVALUATION_FILE, payload["signature"], label_column=label_column)
    except EvaluationError as exc:
        return _failed(exc.code, exc.message, label_column)
    rows = data.summary.rows
    try:
        session = ort.InferenceSession(
            MODEL_FILE, session_options(int(payload["threads"])), providers=["CPUExecutionProvider"]
        )
        names = [node.name for node in session.get_outputs()]
        collected: dict[str, list[Any]] = {name: [] for name in names}
        for start in range(0, rows, BATCH_ROWS):
            feeds = {k: v[start : start + BATCH_ROWS] for k, v in data.inputs.items()}
            for name, value in zip(names, session.run(None, feeds), strict=True):
                collected[name].append(value)
    except Exception as exc:
        text = " ".join(str(exc).split())[:500]
        return _failed(
            "INFERENCE_FAILED", f"the model failed on the evaluation set: {text}", label_column
        )
    # Only tensors can be scored (a scikit-learn ZipMap output is a list of dicts).
    outputs = {
        name: np.concatenate(parts)
        for name, parts in collected.items()
        if parts and all(isinstance(p, np.ndarray) for p in parts)
    }
    try:
        report = verify_metrics(payload["claimed"], outputs, data.labels)
    except EvaluationError as exc:
        return _failed(exc.code, exc.message, label_column, rows=rows)
    result = report.to_dict()
    mismatches = report.mismatches
    if mismatches:
        first = mismatches[0]
        reason, message = (
            METRICS_MISMATCH,
            (
                f"{len(mismatches)} claimed metric(s) not reproduced on the evaluation set; "
                f"first: {first.message}"
            ),
        )
    else:
        reason, message = None, ""
    return {
        **result,
        "reason": reason,
        "message": message,
        "rows": rows,
        "label_column": label_column,
    }
