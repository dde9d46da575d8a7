"""Reading an evaluation set: a Parquet file into a model's input arrays and its labels.

Kept whole (about 400 lines): each limit and refusal of an evaluation set sits beside the
read it guards; metrics and predictions are apart (metrics.py, predictions.py).

    eval_set = read_evaluation_set(path, signature)          # EvaluationError if unusable
    eval_set.inputs, eval_set.labels                         # {input name: array}, array

Every refusal is an `EvaluationError` with a reason code (`EVAL_*`) and a sentence.
What becomes of the model's outputs is `metrics.py`'s; `evaluation.py` names both.

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
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from services.validation.compatibility import Signature, TensorSig, is_fixed, parse_signature

Array = npt.NDArray[Any]

MAX_EVAL_BYTES = 64 * 1024 * 1024
MAX_EVAL_ROWS = 1_000_000
MAX_EVAL_COLUMNS = 4096
MAX_EVAL_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
DEFAULT_LABEL_COLUMN = "label"

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
            f"{list_names(names)})",
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


def list_names(names: Sequence[str], limit: int = 20) -> str:
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
                f"name (columns: {list_names(names)})"
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
                f"the evaluation set lacks the feature columns {list_names(missing)}"
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
            f"set has {len(columns)} {how} columns ({list_names(columns)})"
        )
    return columns


def _input_array(spec: TensorSig, columns: list[str], table: pa.Table) -> Array:
    if len(columns) == 1 and columns[0] == spec.name and _is_list(table.column(spec.name).type):
        return _list_column(table.column(spec.name), spec.name, spec)
    parts = [_scalar_column(table.column(c), c, spec.element_type) for c in columns]
    if len(spec.shape) == 1:
        return parts[0]
    return np.stack(parts, axis=1)
