"""Evaluation sets in the upload stream: where they may come, what is refused, what is kept.

The form parser and the evaluation-set writer without a stack (a real folder store in a
temporary folder); the whole path through the gateway is in tests/validation/test_worker.py
(REST) and test_validation_stack.py (gRPC)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.common.errors import ServiceError
from services.common.validation import RequestValidator
from services.models import evaluation_upload
from services.models.evaluation_upload import (
    MAX_EVALUATION_SET_BYTES,
    EvaluationChunk,
    model_pieces,
    receive_evaluation_set,
)
from services.models.multipart_form import read_multipart
from services.models.object_store import FolderStore, evaluation_key
from services.validation.evaluation import MAX_EVAL_BYTES

BOUNDARY = "xyzBOUNDARYzyx"


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"a": [1.0, 2.0], "label": [0, 1]}), sink)
    return sink.getvalue()


def _form(*parts: tuple[str, bytes, bool]) -> bytes:
    body = b""
    for name, value, is_file in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{name}.bin"' if is_file else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += value + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def _pieces(body: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _read(body: bytes) -> list[bytes | EvaluationChunk]:
    first, rest = body[:5], _pieces(body[5:])
    form = await read_multipart(
        f"multipart/form-data; boundary={BOUNDARY}", first, rest, RequestValidator()
    )
    return [piece async for piece in form.file_chunks]


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _joined(pieces: list[bytes | EvaluationChunk]) -> tuple[bytes, bytes]:
    evaluation = b"".join(bytes(p.data) for p in pieces if isinstance(p, EvaluationChunk))
    model = b"".join(bytes(p) for p in pieces if not isinstance(p, EvaluationChunk))
    return evaluation, model


def test_the_limit_is_the_workers() -> None:
    assert MAX_EVALUATION_SET_BYTES == MAX_EVAL_BYTES


async def test_an_evaluation_set_before_the_file_comes_first_then_the_model() -> None:
    data = _parquet()
    pieces = await _read(
        _form(
            ("name", b"pump", False),
            ("evaluationLabelColumn", b"failed", False),
            ("evaluationSet", data, True),
            ("file", b"ONNXBYTES", True),
        )
    )
    assert _joined(pieces) == (data, b"ONNXBYTES")
    kinds = [isinstance(p, EvaluationChunk) for p in pieces]
    assert kinds == sorted(kinds, reverse=True)  # every evaluation piece before the model's


@pytest.mark.parametrize(
    ("parts", "reason"),
    [
        (
            [("name", b"m", False), ("file", b"X", True), ("evaluationSet", b"P", True)],
            "EVALUATION_SET_AFTER_FILE",
        ),
        (
            [
                ("name", b"m", False),
                ("evaluationSet", b"P", True),
                ("evaluationSet", b"Q", True),
                ("file", b"X", True),
            ],
            "DUPLICATE_FORM_FIELD",
        ),
        (
            [
                ("name", b"m", False),
                ("evaluationSet", b"P", True),
                ("description", b"late", False),
                ("file", b"X", True),
            ],
            "FIELD_AFTER_FILE",
        ),
        ([("name", b"m", False), ("evaluationSet", b"P", True)], "MISSING_FILE"),
        ([("evaluationSet", b"P", True), ("name", b"m", False)], "FILE_BEFORE_FIELDS"),
    ],
)
async def test_misplaced_evaluation_sets_are_refused_with_a_reason(
    parts: list[tuple[str, bytes, bool]], reason: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        await _read(_form(*parts))
    assert refused.value.reason == reason


async def _stream(*items: bytes | EvaluationChunk) -> AsyncIterator[bytes | EvaluationChunk]:
    for item in items:
        yield item


async def test_the_set_is_written_to_its_own_writer_and_the_model_follows(tmp_path: Path) -> None:
    store = FolderStore(tmp_path)
    data = _parquet()
    key = evaluation_key("demo/00000000-0000-4000-8000-000000000000/1.onnx")
    writer = await store.writer(key)
    half = len(data) // 2
    pieces = _stream(EvaluationChunk(data[half:]), b"model-1", b"model-2")
    received, first = await receive_evaluation_set(EvaluationChunk(data[:half]), pieces, writer)
    assert first == b"model-1"
    assert [p async for p in model_pieces(first, pieces)] == [b"model-1", b"model-2"]
    assert received.size_bytes == len(data)
    await writer.commit()
    await writer.release()
    assert (tmp_path / key).read_bytes() == data
    assert key.endswith("/1.evaluation.parquet")


async def test_an_evaluation_piece_after_the_model_is_refused() -> None:
    pieces = _stream(EvaluationChunk(b"late"))
    with pytest.raises(ServiceError) as refused:
        _ = [p async for p in model_pieces(b"model", pieces)]
    assert refused.value.reason == "EVALUATION_SET_AFTER_FILE"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "EVALUATION_SET_NOT_PARQUET"),
        (b"PAR1 but not at the end", "EVALUATION_SET_NOT_PARQUET"),
        (b"a,b,label\n1,2,0\n3,4,1\n", "EVALUATION_SET_NOT_PARQUET"),
    ],
)
async def test_what_is_not_parquet_is_refused_and_nothing_stays(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    store = FolderStore(tmp_path)
    writer = await store.writer("demo/00000000-0000-4000-8000-000000000000/1.evaluation.parquet")
    with pytest.raises(ServiceError) as refused:
        await receive_evaluation_set(EvaluationChunk(content), _stream(b"model"), writer)
    assert refused.value.reason == reason
    await writer.abort()
    assert _files(tmp_path) == []


async def test_a_set_over_the_limit_is_refused_as_it_crosses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evaluation_upload, "MAX_EVALUATION_SET_BYTES", 10)
    store = FolderStore(tmp_path)
    writer = await store.writer("demo/00000000-0000-4000-8000-000000000000/1.evaluation.parquet")
    never: list[bytes] = []

    async def pieces() -> AsyncIterator[bytes | EvaluationChunk]:
        yield EvaluationChunk(b"x" * 6)
        never.append(b"read past the limit")
        yield b"model"

    with pytest.raises(ServiceError) as refused:
        await receive_evaluation_set(EvaluationChunk(b"y" * 6), pieces(), writer)
    assert (refused.value.reason, refused.value.http_status) == ("EVALUATION_SET_TOO_LARGE", 413)
    assert never == []
    await writer.abort()
    assert _files(tmp_path) == []
