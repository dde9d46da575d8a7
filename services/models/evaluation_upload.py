"""The evaluation set that may come with an upload, before the model's bytes.

A data scientist may attach a held-out set (Parquet: the model's input columns and a label
column) so the validation worker can reproduce the metrics the version claims. It arrives
in the same stream as the model, first: gRPC `evaluation_set_chunk` messages before the
first `chunk`, the form's `evaluationSet` part before its `file` part. So the model's path
is unchanged, and the set (at most 64 MiB) goes to its own invisible object writer beside
the model's, committed and aborted with it: an upload that fails leaves neither.

Here it is only checked to be a Parquet file of an acceptable size; whether its columns fit
the model is the worker's question (a FAILED report with the reason, not a refused upload:
the worker reads it in the sandbox, never the service).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common.errors import ServiceError, invalid_argument
from services.models.object_store import ObjectWriter

# Equal to services.validation.evaluation.MAX_EVAL_BYTES (a test keeps them equal); not
# imported from there, which would load pyarrow and scikit-learn into the models service.
MAX_EVALUATION_SET_BYTES = 64 * 1024 * 1024
FORM_PART = "evaluationSet"
DEFAULT_LABEL_COLUMN = "label"
_PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True, slots=True)
class EvaluationChunk:
    """A piece of the evaluation set, as opposed to the model's bytes (plain `bytes`)."""

    data: bytes | memoryview


@dataclass(frozen=True)
class ReceivedEvaluationSet:
    writer: ObjectWriter
    sha256: str
    size_bytes: int


def evaluation_set_too_large() -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "EVALUATION_SET_TOO_LARGE",
        f"the evaluation set is larger than the limit of {MAX_EVALUATION_SET_BYTES:,} bytes",
        metadata={"limitBytes": str(MAX_EVALUATION_SET_BYTES), "field": FORM_PART},
        http_status=413,
    )


def evaluation_set_after_file() -> ServiceError:
    return invalid_argument(
        "EVALUATION_SET_AFTER_FILE",
        "send the evaluation set before the model file (gRPC: evaluation_set_chunk messages "
        "before the first chunk; form: the evaluationSet part before the file part)",
        field=FORM_PART,
    )


def not_parquet(detail: str) -> ServiceError:
    return invalid_argument(
        "EVALUATION_SET_NOT_PARQUET",
        f"the evaluation set is not a Parquet file ({detail}); write it with "
        "pandas.DataFrame.to_parquet or pyarrow.parquet.write_table",
        field=FORM_PART,
    )


async def receive_evaluation_set(
    first: EvaluationChunk,
    pieces: AsyncIterator[bytes | EvaluationChunk],
    writer: ObjectWriter,
) -> tuple[ReceivedEvaluationSet, bytes | None]:
    """Write the evaluation set's pieces (`first` and those after it) to `writer` until the
    model's first piece, which is returned with what was received (None: the stream ended)."""
    digest = hashlib.sha256()
    size = 0
    block: list[bytes] = []
    block_bytes = 0

    async def flush() -> None:
        nonlocal block, block_bytes
        if block:
            await asyncio.to_thread(writer.write, block)
            await writer.written()
            block, block_bytes = [], 0

    piece: bytes | EvaluationChunk | None = first
    while isinstance(piece, EvaluationChunk):
        data = bytes(piece.data)
        size += len(data)
        if size > MAX_EVALUATION_SET_BYTES:
            raise evaluation_set_too_large()
        digest.update(data)
        block.append(data)
        block_bytes += len(data)
        if block_bytes >= 1024 * 1024:
            await flush()
        piece = await anext(pieces, None)
    await flush()
    await asyncio.to_thread(check_parquet, writer.local_path, size)
    return ReceivedEvaluationSet(writer, digest.hexdigest(), size), piece


def check_parquet(path: Path, size: int) -> None:
    """A Parquet file starts and ends with `PAR1` (its footer's length before the last)."""
    if size < 12:
        raise not_parquet("too short" if size else "empty")
    with path.open("rb") as file:
        head = file.read(4)
        file.seek(size - 4, os.SEEK_SET)
        tail = file.read(4)
    if head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
        raise not_parquet("it does not begin and end with PAR1")


async def model_pieces(
    first: bytes | None, pieces: AsyncIterator[bytes | EvaluationChunk]
) -> AsyncIterator[bytes]:
    """The model's bytes: `first`, then the rest, refusing evaluation pieces among them."""
    if first is None:
        return
    yield first
    async for piece in pieces:
        if isinstance(piece, EvaluationChunk):
            raise evaluation_set_after_file()
        yield piece
