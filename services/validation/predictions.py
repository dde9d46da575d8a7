"""Which of a model's outputs feed which metric: the scores, the predicted classes or the
regression predictions, each picked and checked once, when a metric first needs it.

How the model's outputs become metric inputs (binary classification and regression):

* Scores (roc_auc, average_precision, log_loss): a floating-point output of shape [n, 2]
  (probabilities: column 1, the positive class), [n, 1] or [n]. When several outputs
  qualify, one whose name contains "prob" wins; otherwise the caller names it
  (`score_output`).
* Predicted classes (f1, accuracy, precision, recall): the scores thresholded at 0.5
  (score >= 0.5 is positive, as the example notebook computes its F1) when the scores lie
  in [0, 1]; else an integer or boolean output of shape [n] or [n, 1] (a "label" output),
  with values 0/1.
* Regression predictions (rmse, mse, mae, r2): the floating-point output of shape [n] or
  [n, 1] (`prediction_output` when several qualify); labels must be numeric.
* An output used for a metric whose first dimension is not n is EVAL_PREDICTIONS_SHAPE; one
  holding NaN or infinity is EVAL_PREDICTIONS_NOT_FINITE: the evaluation fails.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from services.validation.evaluation_set import Array, EvaluationError, list_names


class Predictions:
    """Picks and checks the outputs each kind of metric needs, once, on demand."""

    def __init__(
        self,
        outputs: Mapping[str, Array],
        rows: int,
        score_output: str | None,
        label_output: str | None,
        prediction_output: str | None,
        threshold: float,
    ) -> None:
        self.outputs = {k: np.asarray(v) for k, v in outputs.items()}
        self.rows = rows
        self.names = {
            "scores": score_output,
            "labels": label_output,
            "regression": prediction_output,
        }
        self.threshold = threshold
        self.used: dict[str, str] = {}
        self._cache: dict[str, Array | str] = {}

    def _column(self, name: str, allow_two: bool) -> Array:
        if name not in self.outputs:
            raise EvaluationError(
                "EVAL_PREDICTIONS_SHAPE",
                f"the model has no output {name!r} (outputs: {list_names(list(self.outputs))})",
            )
        array = self.outputs[name]
        if array.ndim == 0 or array.shape[0] != self.rows:
            raise EvaluationError(
                "EVAL_PREDICTIONS_SHAPE",
                f"output {name!r} has shape {list(array.shape)}; {self.rows:,} rows were fed",
            )
        if array.ndim == 1:
            column = array
        elif array.ndim == 2 and array.shape[1] == 1:
            column = array[:, 0]
        elif array.ndim == 2 and array.shape[1] == 2 and allow_two:
            column = array[:, 1]
        else:
            raise EvaluationError(
                "EVAL_PREDICTIONS_SHAPE",
                f"output {name!r} has shape {list(array.shape)}, which is not [n], [n, 1]"
                + (" or [n, 2]" if allow_two else ""),
            )
        if column.dtype.kind in "fc":
            bad = int(np.count_nonzero(~np.isfinite(column)))
            if bad:
                raise EvaluationError(
                    "EVAL_PREDICTIONS_NOT_FINITE",
                    f"output {name!r} holds {bad:,} NaN or infinite values out of {column.size:,}",
                )
        return column

    def _pick(self, kind: str, candidates: list[str], what: str) -> str:
        chosen = self.names[kind]
        if chosen is not None:
            return chosen
        if len(candidates) > 1:
            preferred = [c for c in candidates if "prob" in c.lower()]
            if len(preferred) == 1 and kind == "scores":
                return preferred[0]
            raise NotComputable(
                f"several outputs could be the {what} ({list_names(candidates)}); "
                "name the one to use"
            )
        if not candidates:
            raise NotComputable(f"the model has no output usable as {what}")
        return candidates[0]

    def _get(self, kind: str) -> Array:
        cached = self._cache.get(kind)
        if isinstance(cached, str):
            raise NotComputable(cached)
        if cached is not None:
            return cached
        try:
            array = self._build(kind)
        except NotComputable as exc:
            self._cache[kind] = str(exc)
            raise
        self._cache[kind] = array
        return array

    def _build(self, kind: str) -> Array:
        floats = [
            n
            for n, a in self.outputs.items()
            if a.dtype.kind == "f" and a.ndim >= 1 and a.shape[0] == self.rows
        ]
        if kind == "scores":
            candidates = [
                n
                for n in floats
                if self.outputs[n].ndim == 1 or self.outputs[n].shape[1:] in ((1,), (2,))
            ]
            name = self._pick("scores", candidates, "scores (probabilities)")
            self.used["scores"] = name
            return self._column(name, allow_two=True).astype(np.float64)
        if kind == "regression":
            candidates = [
                n for n in floats if self.outputs[n].ndim == 1 or self.outputs[n].shape[1:] == (1,)
            ]
            name = self._pick("regression", candidates, "regression predictions")
            self.used["regression"] = name
            return self._column(name, allow_two=False).astype(np.float64)
        # kind == "classes"
        if self.names["labels"] is None:
            try:
                scores = self._get("scores")
            except NotComputable:
                scores = None
            if scores is not None and 0.0 <= scores.min() <= scores.max() <= 1.0:
                self.used["classes"] = f"{self.used['scores']} >= {self.threshold:g}"
                return (scores >= self.threshold).astype(np.int64)
        integers = [
            n
            for n, a in self.outputs.items()
            if a.dtype.kind in "iub" and a.ndim >= 1 and a.shape[0] == self.rows
        ]
        name = self._pick(
            "labels", integers, "predicted classes (probabilities in [0, 1] or a label output)"
        )
        column = self._column(name, allow_two=False)
        if not np.isin(column, (0, 1)).all():
            raise NotComputable(f"output {name!r} holds classes other than 0 and 1")
        self.used["classes"] = name
        return column.astype(np.int64)

    def get(self, kind: str) -> Array:
        return self._get(kind)


class NotComputable(Exception):
    """One metric cannot be computed (the others may)."""
