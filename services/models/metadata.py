"""Upload metadata, validated before a single byte of the file is stored."""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import invalid_argument

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
MAX_DESCRIPTION_BYTES = 4096
MAX_LABELS = 64
MAX_METRICS = 256
MAX_EXPORT_IDS = 100
_LABEL_KEY = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,62}$")
_METRIC_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class UploadMetadata:
    name: str
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    training_export_ids: list[str] = field(default_factory=list)
    sha256: str | None = None


def validate_metadata(
    *,
    name: str,
    description: str,
    labels: dict[str, str],
    metrics: dict[str, float],
    training_export_ids: list[str],
    sha256: str,
) -> UploadMetadata:
    if not name:
        raise invalid_argument("MISSING_FIELD", "name is required", field="name")
    if not NAME_PATTERN.match(name) or ".." in name:
        raise invalid_argument(
            "INVALID_MODEL_NAME",
            f"name {name[:80]!r} must match {NAME_PATTERN.pattern} "
            "(lower-case letters, digits, '.', '_', '-'; no path separators or '..')",
            field="name",
        )
    if len(description.encode()) > MAX_DESCRIPTION_BYTES:
        raise invalid_argument(
            "DESCRIPTION_TOO_LONG",
            f"description is {len(description.encode())} bytes; at most {MAX_DESCRIPTION_BYTES}",
            field="description",
        )
    if len(labels) > MAX_LABELS:
        raise invalid_argument("TOO_MANY_LABELS", f"at most {MAX_LABELS} labels", field="labels")
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or len(value) > 256:
            raise invalid_argument(
                "INVALID_LABEL",
                f"label {key[:64]!r}: keys match {_LABEL_KEY.pattern}, values are <= 256 chars",
                field="labels",
            )
    if len(metrics) > MAX_METRICS:
        raise invalid_argument(
            "TOO_MANY_METRICS", f"at most {MAX_METRICS} metrics", field="metrics"
        )
    for key, number in metrics.items():
        if not _METRIC_KEY.match(key) or not math.isfinite(number):
            raise invalid_argument(
                "INVALID_METRIC",
                f"metric {key[:64]!r} must have a simple name and a finite number",
                field="metrics",
            )
    if len(training_export_ids) > MAX_EXPORT_IDS:
        raise invalid_argument(
            "TOO_MANY_EXPORTS", f"at most {MAX_EXPORT_IDS} export ids", field="trainingExportIds"
        )
    for export_id in training_export_ids:
        try:
            uuid.UUID(export_id)
        except ValueError as exc:
            raise invalid_argument(
                "INVALID_EXPORT_ID",
                f"training export id {export_id[:64]!r} is not an export id (a UUID)",
                field="trainingExportIds",
            ) from exc
    declared = sha256.lower() if sha256 else None
    if declared is not None and not _SHA256.match(declared):
        raise invalid_argument("INVALID_SHA256", "sha256 must be 64 hex digits", field="sha256")
    return UploadMetadata(
        name=name,
        description=description,
        labels=dict(labels),
        metrics={k: float(v) for k, v in metrics.items()},
        training_export_ids=list(dict.fromkeys(str(uuid.UUID(e)) for e in training_export_ids)),
        sha256=declared,
    )


def parse_form_metadata(fields: dict[str, str]) -> UploadMetadata:
    """The multipart form's text fields (labels and metrics are JSON objects,
    trainingExportIds a JSON list or comma-separated ids)."""
    known = {"name", "description", "labels", "metrics", "trainingExportIds", "sha256"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise invalid_argument(
            "UNKNOWN_FORM_FIELD",
            f"unknown form field {unknown[0]!r}; expected file and {', '.join(sorted(known))}",
            field=unknown[0],
        )
    labels = _json_object(fields.get("labels", ""), "labels")
    metrics = _json_object(fields.get("metrics", ""), "metrics")
    if not all(isinstance(v, str) for v in labels.values()):
        raise invalid_argument("INVALID_LABEL", "label values must be strings", field="labels")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()):
        raise invalid_argument(
            "INVALID_METRIC", "metrics must map names to numbers", field="metrics"
        )
    raw_ids = fields.get("trainingExportIds", "").strip()
    if raw_ids.startswith("["):
        parsed = _json(raw_ids, "trainingExportIds")
        if not isinstance(parsed, list) or not all(isinstance(i, str) for i in parsed):
            raise invalid_argument(
                "INVALID_EXPORT_ID",
                "trainingExportIds must be a list of ids",
                field="trainingExportIds",
            )
        export_ids = parsed
    else:
        export_ids = [i.strip() for i in raw_ids.split(",") if i.strip()]
    return validate_metadata(
        name=fields.get("name", ""),
        description=fields.get("description", ""),
        labels=labels,
        metrics={k: float(v) for k, v in metrics.items()},
        training_export_ids=export_ids,
        sha256=fields.get("sha256", ""),
    )


def _json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid_argument(
            "MALFORMED_FIELD", f"{name} is not valid JSON ({exc.msg})", field=name
        ) from exc


def _json_object(text: str, name: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    value = _json(text, name)
    if not isinstance(value, dict):
        raise invalid_argument("MALFORMED_FIELD", f"{name} must be a JSON object", field=name)
    return value
