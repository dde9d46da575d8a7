"""Parse the browser's `multipart/form-data` upload as it streams in.

Envoy hands the raw body over in pieces (`google.api.HttpBody`, <= 1 MiB
each); python-multipart's push parser turns them into fields and file bytes
without ever holding the file. The text fields must come before the `file`
field (FormData keeps append order; put the file input last in a form), so
the model's name is known when its bytes start to arrive; a form that sends
the file first is told exactly that. An evaluation set (`evaluationSet`, a Parquet
file part) comes after the text fields and before `file`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.common.errors import ServiceError, invalid_argument
from services.common.validation import RequestValidator
from services.models.evaluation_upload import (
    FORM_PART as EVALUATION_FIELD,
)
from services.models.evaluation_upload import (
    EvaluationChunk,
    evaluation_set_after_file,
)
from services.models.metadata import (
    FORM_FIELDS,
    UploadMetadata,
    field_error,
    parse_form_metadata,
)

MAX_FIELD_BYTES = 64 * 1024
FILE_FIELD = "file"
# A browser sends two or three header lines a part; these bound what a hand-made body can
# make the parser collect (python-multipart refuses past them: MALFORMED_FORM).
MAX_PART_HEADERS = 16
MAX_PART_HEADER_BYTES = 4096


def malformed_form(detail: str) -> ServiceError:
    """The body is not the multipart/form-data its Content-Type announced."""
    return invalid_argument(
        "MALFORMED_FORM",
        "the request body is not well-formed multipart/form-data "
        "(check that its boundary is the one in Content-Type, and its part headers)",
        detail=detail[:200],
    )


@dataclass
class _Part:
    name: str = ""
    is_file: bool = False
    is_evaluation: bool = False
    value: bytearray = field(default_factory=bytearray)


class _FormEvents:
    """python-multipart callbacks collected into a queue of events per feed."""

    def __init__(self, boundary: bytes) -> None:
        self.events: list[tuple[str, Any]] = []
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
            max_header_count=MAX_PART_HEADERS,
            max_header_size=MAX_PART_HEADER_BYTES,
        )

    def _part_begin(self) -> None:
        self._part = _Part()
        self._headers = {}

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        # Part headers are refused unless they are UTF-8 without control characters: the
        # names end up in messages, logs and the audit trail, and a field name decoded
        # "with replacement" would be a name the client never sent.
        for key, value in self._headers.items():
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise malformed_form(f"part header {key[:64]!r} is not UTF-8") from exc
            if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in text + key):
                raise malformed_form(f"part header {key[:64]!r} holds control characters")
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        self._part.name = options.get(b"name", b"").decode("utf-8")
        self._part.is_file = self._part.name == FILE_FIELD
        self._part.is_evaluation = self._part.name == EVALUATION_FIELD
        if self._part.is_file:
            self.events.append(("file_begin", None))
        elif self._part.is_evaluation:
            self.events.append(("evaluation_begin", None))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part.is_file:
            # A view, not a copy: python-multipart hands over the immutable bytes it was
            # fed (or its boundary constant), so the slice stays valid after this call.
            self.events.append(("file_data", memoryview(data)[start:end]))
            return
        if self._part.is_evaluation:
            self.events.append(("evaluation_data", bytes(data[start:end])))
            return
        self._part.value += data[start:end]
        if len(self._part.value) > MAX_FIELD_BYTES:
            raise field_error(
                "FORM_FIELD_TOO_LARGE",
                f"form field {self._part.name[:64]!r} is over {MAX_FIELD_BYTES} bytes",
                self._part.name[:64],
            )

    def _part_end(self) -> None:
        if self._part.is_file:
            self.events.append(("file_end", None))
            return
        if self._part.is_evaluation:
            self.events.append(("evaluation_end", None))
            return
        try:
            text = self._part.value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise field_error(
                "INVALID_UTF8",
                f"form field {self._part.name[:64]!r} is not valid UTF-8 text",
                self._part.name[:64],
            ) from exc
        self.events.append(("field", (self._part.name, text)))

    def feed(self, data: bytes) -> list[tuple[str, Any]]:
        # The parser raises ValueErrors of its own on a body that does not follow the
        # announced boundary, or on too many or too long part headers: a 400, not a 500.
        try:
            self.parser.write(data)
        except FormParserError as exc:
            raise malformed_form(str(exc)) from exc
        events, self.events = self.events, []
        return events

    def finalize(self) -> None:
        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise malformed_form(str(exc)) from exc


def boundary_of(content_type: str) -> bytes:
    try:
        # python-multipart encodes the header as Latin-1: other text cannot be a boundary.
        kind, options = parse_options_header(content_type)
    except UnicodeEncodeError:
        kind, options = b"", {}
    boundary = options.get(b"boundary")
    # RFC 2046: 1-70 characters; python-multipart refuses over 256 with a ValueError.
    if kind != b"multipart/form-data" or not boundary or len(boundary) > 70:
        raise field_error(
            "NOT_MULTIPART",
            "send the model as multipart/form-data (fields name, description, …, then file)",
            "Content-Type",
        )
    return boundary


@dataclass
class MultipartUpload:
    metadata: UploadMetadata
    # The evaluation set's pieces (EvaluationChunk), if the form has one, then the file's.
    file_chunks: AsyncIterator[bytes | EvaluationChunk]


async def read_multipart(
    content_type: str,
    first_chunk: bytes,
    rest: AsyncIterator[bytes],
    validator: RequestValidator,
) -> MultipartUpload:
    """Read the form up to the start of the file; the file streams from `file_chunks`."""
    form = _FormEvents(boundary_of(content_type))
    fields: dict[str, str] = {}
    pending: list[tuple[str, Any]] = form.feed(first_chunk)

    async def more() -> bool:
        async for chunk in rest:
            pending.extend(form.feed(chunk))
            return True
        return False

    while True:
        while pending:
            kind, value = pending.pop(0)
            if kind == "field":
                name, text = value
                if name in fields:
                    raise field_error(
                        "DUPLICATE_FORM_FIELD", f"form field {name[:64]!r} appears twice", name[:64]
                    )
                if name not in FORM_FIELDS:
                    # Refused as it arrives: the fields held before the file are then at
                    # most len(FORM_FIELDS) x MAX_FIELD_BYTES, whatever the body brings.
                    parse_form_metadata({name: text}, validator)
                fields[name] = text
            elif kind in ("file_begin", "evaluation_begin"):
                if "name" not in fields:
                    raise field_error(
                        "FILE_BEFORE_FIELDS",
                        "the form's file field came before its name field: send the text "
                        "fields (name, description, …) first and the file last (append the "
                        "file last to a FormData; with curl, put -F file=@model.onnx last)",
                        "name",
                    )
                metadata = parse_form_metadata(fields, validator)
                pending.insert(0, (kind, value))
                return MultipartUpload(metadata, _file_chunks(pending, more, form))
        if not await more():
            raise field_error(
                "MISSING_FILE", "the form has no 'file' field with the ONNX model", FILE_FIELD
            )


async def _file_chunks(
    pending: list[tuple[str, Any]], more: Any, form: _FormEvents
) -> AsyncIterator[bytes | EvaluationChunk]:
    # What the form may still bring: the evaluation set (once, before the file), the file.
    started_file = finished = seen_evaluation = False
    while True:
        while pending:
            kind, value = pending.pop(0)
            if finished and kind == "evaluation_begin":
                raise evaluation_set_after_file()
            if finished:
                raise field_error(
                    "FIELD_AFTER_FILE",
                    "form fields must come before the file (put the file field last)",
                    str(value[0]) if kind == "field" else FILE_FIELD,
                )
            if kind == "file_data":
                yield value
            elif kind == "evaluation_data":
                yield EvaluationChunk(value)
            elif kind == "file_begin":
                started_file = True
            elif kind == "file_end":
                finished = True
            elif kind == "evaluation_begin":
                if started_file:
                    raise evaluation_set_after_file()
                if seen_evaluation:
                    raise field_error(
                        "DUPLICATE_FORM_FIELD",
                        f"form field {EVALUATION_FIELD!r} appears twice",
                        EVALUATION_FIELD,
                    )
                seen_evaluation = True
            elif kind == "field":
                raise field_error(
                    "FIELD_AFTER_FILE",
                    "text fields must come before the evaluation set and the file",
                    str(value[0])[:64],
                )
        if not await more():
            break
    if not started_file:
        raise field_error(
            "MISSING_FILE", "the form has no 'file' field with the ONNX model", FILE_FIELD
        )
    if not finished:
        raise invalid_argument("TRUNCATED_FORM", "the upload ended before the file did")
    form.finalize()
