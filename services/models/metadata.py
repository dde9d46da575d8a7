"""Upload metadata: from the gRPC message or the browser form, checked against the contract.

Both ways in end as an `UploadModelMetadata` message checked by the same field rules
(`protos/mlplane/v1/model_registry.proto`), before a single byte of the file is stored. The
gRPC message was checked by the validation interceptor already; the form's text fields are
turned into that message here and checked with the same rules, named as the form names them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from google.rpc import error_details_pb2
from mlplane.v1 import model_registry_pb2 as pb

from services.common.errors import ServiceError, invalid_argument
from services.common.validation import RequestValidator

FORM_FIELDS = (
    "name",
    "description",
    "labels",
    "metrics",
    "trainingExportIds",
    "sha256",
    "evaluationLabelColumn",
)


@dataclass(frozen=True)
class UploadMetadata:
    name: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    training_export_ids: list[str] = field(default_factory=list)
    sha256: str | None = None
    evaluation_label_column: str | None = None


def field_error(reason: str, message: str, field: str) -> ServiceError:
    """INVALID_ARGUMENT naming the field twice, as the contract's rules do: in the
    ErrorInfo's metadata and in a BadRequest.FieldViolation (what clients and the web app
    read to mark the field)."""
    error = invalid_argument(reason, message, field=field)
    error.details.append(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=field, description=message, reason=reason
                )
            ]
        )
    )
    return error


def from_message(message: pb.UploadModelMetadata) -> UploadMetadata:
    """The domain's metadata from a message that passed the contract's rules: export ids in
    canonical form without repeats, the declared digest in lower case."""
    return UploadMetadata(
        name=message.name,
        description=message.description,
        labels=dict(message.labels),
        metrics=dict(message.metrics),
        training_export_ids=list(
            dict.fromkeys(str(uuid.UUID(e)) for e in message.training_export_ids)
        ),
        sha256=message.sha256.lower() or None,
        evaluation_label_column=message.evaluation_label_column or None,
    )


def parse_form_metadata(fields: dict[str, str], validator: RequestValidator) -> UploadMetadata:
    """The multipart form's text fields (`labels` and `metrics` are JSON objects,
    `trainingExportIds` a JSON list or comma-separated ids)."""
    unknown = sorted(set(fields) - set(FORM_FIELDS))
    if unknown:
        raise field_error(
            "UNKNOWN_FORM_FIELD",
            f"unknown form field {unknown[0][:64]!r}; expected {', '.join(FORM_FIELDS)}, "
            "evaluationSet and file",
            unknown[0][:64],
        )
    message = pb.UploadModelMetadata(
        name=fields.get("name", ""),
        description=fields.get("description", ""),
        labels=_labels(fields.get("labels", "")),
        metrics=_metrics(fields.get("metrics", "")),
        training_export_ids=_export_ids(fields.get("trainingExportIds", "")),
        sha256=fields.get("sha256", ""),
        evaluation_label_column=fields.get("evaluationLabelColumn", ""),
    )
    validator.check(message)
    return from_message(message)


def _labels(text: str) -> dict[str, str]:
    labels = _json_object(text, "labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise field_error(
            "MALFORMED_FIELD",
            'labels must map names to strings: {"team": "reliability"}',
            "labels",
        )
    return labels


def _metrics(text: str) -> dict[str, float]:
    metrics = _json_object(text, "metrics")
    numbers: dict[str, float] = {}
    for key, value in metrics.items():
        # bool is an int to Python; a huge JSON integer does not fit a double.
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = None
        if number is None:
            raise field_error(
                "MALFORMED_FIELD",
                f"metrics[{json.dumps(key[:64])}] must be a number that fits a double, "
                'e.g. {"roc_auc": 0.91}',
                "metrics",
            )
        numbers[key] = number
    return numbers


def _export_ids(text: str) -> list[str]:
    raw = text.strip()
    if not raw.startswith("["):
        return [i.strip() for i in raw.split(",") if i.strip()]
    parsed = _json(raw, "trainingExportIds")
    if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
        raise field_error(
            "MALFORMED_FIELD",
            "trainingExportIds must be a JSON list of export ids or ids separated by commas",
            "trainingExportIds",
        )
    return parsed


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    # ValueError covers malformed JSON and integers past Python's digit limit.
    except (ValueError, RecursionError) as exc:
        raise field_error("MALFORMED_FIELD", f"{name} is not valid JSON", name) from exc


def _json_object(text: str, name: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    value = _json(text, name)
    if not isinstance(value, dict):
        raise field_error("MALFORMED_FIELD", f"{name} must be a JSON object", name)
    return value
