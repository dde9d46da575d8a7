"""Reproduced metrics: read an evaluation set, compute the metrics a version claims, compare.

The model is run elsewhere (in the sandbox); this module only reads the evaluation set into
the model's input arrays and turns the model's outputs into verified metrics:

    eval_set = read_evaluation_set(path, signature)          # EvaluationError if unusable
    outputs = <run the model on eval_set.inputs>             # {output name: array}
    report = verify_metrics(claimed, outputs, eval_set.labels)
    report.passed, report.to_dict()                          # JSON for the version's report

Every refusal is an `EvaluationError` with a reason code (`EVAL_*`) and a sentence.

## The evaluation set

A Parquet file of at most `MAX_EVAL_BYTES` (64 MiB) on disk, `MAX_EVAL_ROWS` (1,000,000)
rows, `MAX_EVAL_COLUMNS` (4,096) columns and `MAX_EVAL_UNCOMPRESSED_BYTES` (512 MiB) of
column data once decoded. The size is checked before the file is opened, the row and column
counts and the decoded size from the Parquet footer before any column is read. A held-out
tabular set is usually well under a MiB (the example's pump is a few hundred rows); 64 MiB of
Parquet is a million rows of ~15 numeric features, which the sandboxed model scores in
seconds; the decoded bound stops a file that compresses very well from being read into GiBs.

One label column, `label` unless the caller names another (`label_column`).

Which columns feed which model input (the stored signature holds no column names):

* An input whose name is a column of the file takes that column. A rank-1 input
  ([batch]) takes a scalar column; a rank-2 input ([batch, k]) takes a list column of k
  values a row, or a scalar column when k is 1.
* Otherwise, a model with exactly ONE input, of rank 2 ([batch, k]) — what scikit-learn
  models exported with skl2onnx have (input "X", [None, k]) — takes k feature columns
  stacked in order: the caller's `feature_columns` when given (they win over a column
  named like the input), else every numeric or
  boolean column of the file in file order, except the label and any pandas index column.
  Their number must equal k when k is fixed. This is how the example notebook writes its
  held-out set: `test[FEATURES + ["label"]].to_parquet(...)` is the feature columns in
  training order and the label. (Version labels cannot carry the column list: values are
  at most 256 characters, and the example's 15 names are longer.)
* Any other input without a column of its name is EVAL_COLUMNS_MISMATCH.

Arrays are cast to the input's element type (FLOAT -> float32, ...). A null in a floating
point column becomes NaN (pandas writes NaN as null; the model decides what NaN means); a
null in an integer, boolean or string column, or in the label, is refused. The arrays hold
every row along axis 0; a runner feeding a model whose first dimension is fixed splits them.

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

How the model's outputs become metric inputs (binary classification and regression):

* Scores (roc_auc, average_precision, log_loss): a floating-point output of shape [n, 2]
  (probabilities: column 1, the positive class), [n, 1] or [n]. When several outputs
  qualify, one whose name contains "prob" wins; otherwise the caller names it
  (`score_output`).
* Predicted classes (f1, accuracy, precision, recall): the scores thresholded at 0.5
  (score >= 0.5 is positive, as the example notebook computes its F1) when the scores lie
  in [0, 1]; else an integer or boolean output of shape [n] or [n, 1] (a "label" output),
  with values 0/1.
* Labels for classification metrics must be boolean or 0/1; otherwise those metrics are
  NOT_COMPUTED with the reason (multi-class is not supported yet). ROC AUC and average
  precision need both classes in the labels.
* Regression predictions (rmse, mse, mae, r2): the floating-point output of shape [n] or
  [n, 1] (`prediction_output` when several qualify); labels must be numeric.
* An output used for a metric whose first dimension is not n is EVAL_PREDICTIONS_SHAPE; one
  holding NaN or infinity is EVAL_PREDICTIONS_NOT_FINITE: the evaluation fails.

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
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sklearn import metrics as skm  # type: ignore[import-untyped]

from services.validation.compatibility import Signature, TensorSig, is_fixed, parse_signature

Array = npt.NDArray[Any]

MAX_EVAL_BYTES = 64 * 1024 * 1024
MAX_EVAL_ROWS = 1_000_000
MAX_EVAL_COLUMNS = 4096
MAX_EVAL_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
DEFAULT_LABEL_COLUMN = "label"
THRESHOLD = 0.5
ABSOLUTE_TOLERANCE = 0.01
RELATIVE_TOLERANCE = 0.02
_FLOAT_SLACK = 1e-9

_PARQUET_MAGIC = b"PAR1"

# ONNX element type -> numpy dtype for the arrays fed to the model.
_NUMPY_TYPES: dict[str, npt.DTypeLike] = {
    "FLOAT": np.float32,
    "DOUBLE": np.float64,
    "FLOAT16": np.float16,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "BOOL": np.bool_,
    "STRING": np.object_,
}
_FLOATING_INPUTS = {"FLOAT", "DOUBLE", "FLOAT16"}


class EvaluationError(Exception):
    """The evaluation set or the model's outputs cannot be evaluated: a FAILED reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class EvaluationSetSummary:
    """What was read, for the report (JSON-serialisable)."""

    rows: int
    size_bytes: int
    label_column: str
    # input name -> the columns that feed it, in order
    input_columns: dict[str, list[str]]


@dataclass(frozen=True)
class EvaluationSet:
    """The model's input arrays (input name -> array, rows along axis 0) and the labels."""

    inputs: dict[str, Array]
    labels: Array
    summary: EvaluationSetSummary


# ---------------------------------------------------------------------------------------
# Reading the evaluation set


def _refuse_columns(message: str) -> EvaluationError:
    return EvaluationError("EVAL_COLUMNS_MISMATCH", message)


def _open_parquet(path: Path, max_bytes: int) -> tuple[pq.ParquetFile, int]:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise EvaluationError("EVAL_UNREADABLE", "the evaluation set cannot be read") from exc
    if size > max_bytes:
        raise EvaluationError(
            "EVAL_TOO_LARGE",
            f"the evaluation set is {size:,} bytes; at most {max_bytes:,} bytes are accepted",
        )
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(size - 4, 0))
        tail = handle.read(4)
    if size < 12 or head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        raise EvaluationError(
            "EVAL_NOT_PARQUET",
            "the evaluation set is not a Parquet file (write it with "
            "DataFrame.to_parquet or pyarrow.parquet.write_table)",
        )
    try:
        return pq.ParquetFile(path), size
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad footer
        raise EvaluationError(
            "EVAL_NOT_PARQUET", "the evaluation set is not a readable Parquet file"
        ) from exc


def _index_columns(schema: pa.Schema) -> set[str]:
    """Columns pandas wrote for the DataFrame's index (not features)."""
    try:
        metadata = schema.pandas_metadata
    except ValueError:  # malformed JSON under b"pandas"
        return set()
    if not isinstance(metadata, dict):
        return set()
    return {c for c in metadata.get("index_columns", []) if isinstance(c, str)}


def _is_scalar_numeric(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_boolean(data_type)
    )


def _is_list(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(data_type)
        or pa.types.is_large_list(data_type)
        or pa.types.is_fixed_size_list(data_type)
    )


def _scalar_column(column: pa.ChunkedArray, name: str, element_type: str) -> Array:
    data_type = column.type
    if element_type == "STRING":
        if not (pa.types.is_string(data_type) or pa.types.is_large_string(data_type)):
            raise _refuse_columns(f"column {name!r} is {data_type}; the input wants strings")
    elif element_type == "BOOL":
        if not pa.types.is_boolean(data_type):
            raise _refuse_columns(f"column {name!r} is {data_type}; the input wants booleans")
    elif element_type in _FLOATING_INPUTS:
        if not _is_scalar_numeric(data_type):
            raise _refuse_columns(f"column {name!r} is {data_type}; the input wants numbers")
    elif element_type in _NUMPY_TYPES:
        if not (pa.types.is_integer(data_type) or pa.types.is_boolean(data_type)):
            raise _refuse_columns(
                f"column {name!r} is {data_type}; the input wants {element_type} integers"
            )
    else:
        raise EvaluationError(
            "EVAL_UNSUPPORTED_INPUT", f"inputs of element type {element_type} are not supported"
        )
    if column.null_count:
        if element_type not in _FLOATING_INPUTS:
            raise EvaluationError(
                "EVAL_MISSING_VALUES",
                f"column {name!r} has {column.null_count:,} missing values, which a "
                f"{element_type} input cannot represent",
            )
        column = column.cast(pa.float64())
    values = column.to_numpy()
    if element_type in _FLOATING_INPUTS and values.dtype == np.bool_:
        values = values.astype(np.float64)
    return np.asarray(values, dtype=_NUMPY_TYPES[element_type])


def _list_column(column: pa.ChunkedArray, name: str, spec: TensorSig) -> Array:
    width = spec.shape[1]
    array = column.combine_chunks()
    if array.null_count:
        raise EvaluationError(
            "EVAL_MISSING_VALUES", f"column {name!r} has {array.null_count:,} missing rows"
        )
    lengths = np.asarray(pc.list_value_length(array).to_numpy())
    wanted = int(width) if is_fixed(width) else int(lengths[0])
    if not np.all(lengths == wanted):
        raise _refuse_columns(
            f"column {name!r} holds lists of {sorted(set(lengths.tolist()))[:5]} values; "
            f"input {spec.name!r} {list(spec.shape)} wants {wanted} a row"
        )
    flat = _scalar_column(pa.chunked_array([array.flatten()]), name, spec.element_type)
    return flat.reshape(len(array), wanted)


def read_evaluation_set(
    path: Path | str,
    signature: Signature | Mapping[str, Any],
    *,
    label_column: str = DEFAULT_LABEL_COLUMN,
    feature_columns: Sequence[str] | None = None,
    max_bytes: int = MAX_EVAL_BYTES,
    max_rows: int = MAX_EVAL_ROWS,
    max_columns: int = MAX_EVAL_COLUMNS,
    max_uncompressed_bytes: int = MAX_EVAL_UNCOMPRESSED_BYTES,
) -> EvaluationSet:
    """Read the Parquet evaluation set at `path` into the inputs of the model whose stored
    signature is `signature` (see the module's docstring for the column mapping).

    Raises EvaluationError (EVAL_NOT_PARQUET, EVAL_TOO_LARGE, EVAL_EMPTY, EVAL_NO_LABEL,
    EVAL_COLUMNS_MISMATCH, EVAL_MISSING_VALUES, EVAL_UNSUPPORTED_INPUT, EVAL_UNREADABLE)."""
    path = Path(path)
    sig = parse_signature(signature)
    parquet, size = _open_parquet(path, max_bytes)
    meta = parquet.metadata
    if meta.num_rows > max_rows:
        raise EvaluationError(
            "EVAL_TOO_LARGE",
            f"the evaluation set has {meta.num_rows:,} rows; at most {max_rows:,} are accepted",
        )
    if meta.num_columns > max_columns:
        raise EvaluationError(
            "EVAL_TOO_LARGE",
            f"the evaluation set has {meta.num_columns:,} columns; at most {max_columns:,} "
            "are accepted",
        )
    decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if decoded > max_uncompressed_bytes:
        raise EvaluationError(
            "EVAL_TOO_LARGE",
            f"the evaluation set decodes to {decoded:,} bytes; at most "
            f"{max_uncompressed_bytes:,} are accepted",
        )
    if meta.num_rows == 0:
        raise EvaluationError("EVAL_EMPTY", "the evaluation set has no rows")
    try:
        schema = parquet.schema_arrow
    except Exception as exc:
        raise EvaluationError(
            "EVAL_NOT_PARQUET", "the evaluation set's schema cannot be read"
        ) from exc
    names = list(schema.names)
    if label_column not in names:
        raise EvaluationError(
            "EVAL_NO_LABEL",
            f"the evaluation set has no label column {label_column!r} (columns: "
            f"{_list_names(names)})",
        )
    if not sig.inputs:
        raise EvaluationError("EVAL_UNSUPPORTED_INPUT", "the model has no inputs")
    plan = _plan_columns(sig, schema, names, label_column, feature_columns)
    wanted = sorted({c for columns in plan.values() for c in columns} | {label_column})
    try:
        table = parquet.read(columns=wanted)
    except Exception as exc:
        raise EvaluationError(
            "EVAL_UNREADABLE", "the evaluation set's columns cannot be decoded"
        ) from exc
    labels_column = table.column(label_column)
    if not (_is_scalar_numeric(labels_column.type)):
        raise EvaluationError(
            "EVAL_NO_LABEL",
            f"the label column {label_column!r} is {labels_column.type}; it must hold "
            "numbers or booleans",
        )
    if labels_column.null_count:
        raise EvaluationError(
            "EVAL_MISSING_VALUES",
            f"the label column {label_column!r} has {labels_column.null_count:,} missing values",
        )
    inputs = {spec.name: _input_array(spec, plan[spec.name], table) for spec in sig.inputs}
    return EvaluationSet(
        inputs=inputs,
        labels=np.asarray(labels_column.to_numpy()),
        summary=EvaluationSetSummary(
            rows=table.num_rows,
            size_bytes=size,
            label_column=label_column,
            input_columns={name: list(columns) for name, columns in plan.items()},
        ),
    )


def _list_names(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _plan_columns(
    sig: Signature,
    schema: pa.Schema,
    names: list[str],
    label_column: str,
    feature_columns: Sequence[str] | None,
) -> dict[str, list[str]]:
    """input name -> the columns that feed it."""
    plan: dict[str, list[str]] = {}
    # Named feature columns are for a single-input model, whatever its columns' names.
    single_with_features = feature_columns is not None and len(sig.inputs) == 1
    for spec in sig.inputs:
        rank = len(spec.shape)
        if rank not in (1, 2):
            raise EvaluationError(
                "EVAL_UNSUPPORTED_INPUT",
                f"input {spec.name!r} has shape {list(spec.shape)}: only inputs of rank 1 "
                "([batch]) or 2 ([batch, k]) can be fed from columns",
            )
        if spec.element_type not in _NUMPY_TYPES:
            raise EvaluationError(
                "EVAL_UNSUPPORTED_INPUT",
                f"input {spec.name!r} is {spec.element_type}, which columns cannot feed",
            )
        if spec.name in names and spec.name != label_column and not single_with_features:
            data_type = schema.field(spec.name).type
            width = spec.shape[1] if rank == 2 else 1
            if _is_list(data_type) and rank == 2:
                plan[spec.name] = [spec.name]
                continue
            if not _is_list(data_type) and (rank == 1 or width == 1):
                plan[spec.name] = [spec.name]
                continue
            raise _refuse_columns(
                f"column {spec.name!r} ({data_type}) cannot feed input {spec.name!r} "
                f"{list(spec.shape)}"
            )
        if len(sig.inputs) != 1 or rank != 2:
            raise _refuse_columns(
                f"the model's input {spec.name!r} {list(spec.shape)} has no column of that "
                f"name (columns: {_list_names(names)})"
            )
        plan[spec.name] = _feature_columns(spec, schema, names, label_column, feature_columns)
    return plan


def _feature_columns(
    spec: TensorSig,
    schema: pa.Schema,
    names: list[str],
    label_column: str,
    feature_columns: Sequence[str] | None,
) -> list[str]:
    width = spec.shape[1]
    if feature_columns is not None:
        columns = list(feature_columns)
        missing = [c for c in columns if c not in names]
        if missing:
            raise _refuse_columns(
                f"the evaluation set lacks the feature columns {_list_names(missing)}"
            )
        if label_column in columns:
            raise _refuse_columns(f"the label column {label_column!r} is also a feature column")
        if len(set(columns)) != len(columns):
            raise _refuse_columns("the feature columns repeat a name")
        how = "named"
    else:
        skip = _index_columns(schema) | {label_column}
        columns = [n for n in names if n not in skip and _is_scalar_numeric(schema.field(n).type)]
        how = "numeric non-label"
    if not columns:
        raise _refuse_columns(f"the evaluation set has no {how} feature columns")
    if is_fixed(width) and len(columns) != width:
        raise _refuse_columns(
            f"input {spec.name!r} {list(spec.shape)} takes {width} features; the evaluation "
            f"set has {len(columns)} {how} columns ({_list_names(columns)})"
        )
    return columns


def _input_array(spec: TensorSig, columns: list[str], table: pa.Table) -> Array:
    if len(columns) == 1 and columns[0] == spec.name and _is_list(table.column(spec.name).type):
        return _list_column(table.column(spec.name), spec.name, spec)
    parts = [_scalar_column(table.column(c), c, spec.element_type) for c in columns]
    if len(spec.shape) == 1:
        return parts[0]
    return np.stack(parts, axis=1)


# ---------------------------------------------------------------------------------------
# Metrics


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


class _Predictions:
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
                f"the model has no output {name!r} (outputs: {_list_names(list(self.outputs))})",
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
            raise _NotComputable(
                f"several outputs could be the {what} ({_list_names(candidates)}); "
                "name the one to use"
            )
        if not candidates:
            raise _NotComputable(f"the model has no output usable as {what}")
        return candidates[0]

    def _get(self, kind: str) -> Array:
        cached = self._cache.get(kind)
        if isinstance(cached, str):
            raise _NotComputable(cached)
        if cached is not None:
            return cached
        try:
            array = self._build(kind)
        except _NotComputable as exc:
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
            except _NotComputable:
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
            raise _NotComputable(f"output {name!r} holds classes other than 0 and 1")
        self.used["classes"] = name
        return column.astype(np.int64)

    def get(self, kind: str) -> Array:
        return self._get(kind)


class _NotComputable(Exception):
    """One metric cannot be computed (the others may)."""


def _binary_labels(labels: Array) -> Array:
    if labels.dtype == np.bool_:
        return labels.astype(np.int64)
    if labels.dtype.kind in "iuf" and np.isin(labels, (0, 1)).all():
        return labels.astype(np.int64)
    distinct = np.unique(labels)
    raise _NotComputable(
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
    predictions = _Predictions(
        outputs, y.shape[0], score_output, label_output, prediction_output, threshold
    )
    wanted = sorted({m for m in (canonical_metric(n) for n in names) if m is not None})
    verified: dict[str, VerifiedMetric] = {}
    for metric in wanted:
        spec = METRICS[metric]
        try:
            if spec.needs == "regression":
                if y.dtype.kind not in "biuf":
                    raise _NotComputable("regression metrics need numeric labels")
                truth = y.astype(np.float64)
                if not np.isfinite(truth).all():
                    raise _NotComputable("the labels hold NaN or infinity")
            else:
                truth = _binary_labels(y)
                if spec.needs == "scores" and np.unique(truth).size < 2:
                    raise _NotComputable(
                        f"{metric} needs both classes in the labels; they hold only {int(truth[0])}"
                    )
            value = spec.compute(truth, predictions.get(spec.needs))
            if not math.isfinite(value):
                raise _NotComputable(f"{metric} is not finite on this set")
            verified[metric] = VerifiedMetric(metric=metric, value=value)
        except _NotComputable as exc:
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
