"""A sample request for every RPC, aimed at real targets, with its string fields
replaceable (for the injection cases).

A sample is a request that would *succeed* for a caller with the right role in the
targets' tenant: if a gate let a bad caller through, the matrix would see the effect
(a new upload, a decided approval, an archived version) in the database or the store.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from google.api import httpbody_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import query_service_pb2 as qs

from tests.models.onnx_models import linear_model
from tests.security.harness import Rest, Sample, message_class


@dataclass(frozen=True)
class Targets:
    """Resources of tenant `demo` the matrix aims at (made once per module)."""

    model_id: str  # submitted: its version 1 is IN_REVIEW
    model_name: str
    approval_id: str  # OPEN
    pending_model_id: str  # version 1 PENDING_APPROVAL: submittable, archivable
    pending_model_name: str
    export_id: str
    asset_id: str = "pump-001"
    page_tokens: dict[str, str] = field(default_factory=dict)  # method -> a demo token

    def identifiers(self) -> list[str]:
        """What must never appear in another tenant's answers."""
        return [
            self.model_id,
            self.model_name,
            self.approval_id,
            self.pending_model_id,
            self.pending_model_name,
            self.export_id,
            self.asset_id,
        ]


Values = dict[str, str]
Builder = Callable[[Targets, Values], Sample]

ONNX = linear_model(4)
_WINDOW_END = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
_WINDOW_START = _WINDOW_END - timedelta(minutes=30)


def _seg(value: str) -> str:
    """A path segment, percent-encoded so `/`, `%` and `?` stay inside it."""
    return quote(value, safe="")


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def fresh_name() -> str:
    return f"matrix-{uuid.uuid4().hex[:12]}"


# --------------------------------------------------------------------------- QueryService


def _list_assets(t: Targets, v: Values) -> Sample:
    token, size = v.get("page_token", ""), int(v.get("page_size", "0"))
    return Sample(
        [qs.ListAssetsRequest(page_token=token, page_size=size)],
        Rest("GET", "/api/v1/query/assets", _page_params(token, size)),
    )


def _get_asset(t: Targets, v: Values) -> Sample:
    asset = v.get("asset_id", t.asset_id)
    return Sample(
        [qs.GetAssetRequest(asset_id=asset)],
        Rest("GET", f"/api/v1/query/assets/{_seg(asset)}"),
    )


def _page_params(token: str, size: int) -> list[tuple[str, str]]:
    return ([("pageToken", token)] if token else []) + ([("pageSize", str(size))] if size else [])


def _export_fields(t: Targets, v: Values) -> tuple[str, list[str]]:
    return v.get("asset_id", t.asset_id), [v.get("tags", "flow")]


def _export_history(t: Targets, v: Values) -> Sample:
    asset, tags = _export_fields(t, v)
    request = qs.ExportHistoryRequest(
        asset_id=asset, start_time=_stamp(_WINDOW_START), end_time=_stamp(_WINDOW_END), tags=tags
    )
    return Sample([request], Rest("GET", "/api/v1/query/history", _export_params(asset, tags)))


def _export_history_csv(t: Targets, v: Values) -> Sample:
    asset, tags = _export_fields(t, v)
    request = qs.ExportHistoryCsvRequest(
        asset_id=asset, start_time=_stamp(_WINDOW_START), end_time=_stamp(_WINDOW_END), tags=tags
    )
    return Sample([request], Rest("GET", "/api/v1/query/history:csv", _export_params(asset, tags)))


def _export_params(asset: str, tags: list[str]) -> list[tuple[str, str]]:
    return [
        ("assetId", asset),
        ("startTime", _rfc3339(_WINDOW_START)),
        ("endTime", _rfc3339(_WINDOW_END)),
        *(("tags", tag) for tag in tags),
    ]


def _get_export(t: Targets, v: Values) -> Sample:
    export_id = v.get("export_id", t.export_id)
    return Sample(
        [qs.GetExportRequest(export_id=export_id)],
        Rest("GET", f"/api/v1/query/exports/{_seg(export_id)}"),
    )


def _list_failure_events(t: Targets, v: Values) -> Sample:
    asset = v.get("asset_id", t.asset_id)
    token = v.get("page_token", "")
    # By name: the RPC is newer than some checkouts' generated stubs.
    message = _message("mlplane.v1.ListFailureEventsRequest", asset_id=asset, page_token=token)
    return Sample(
        [message],
        Rest(
            "GET",
            f"/api/v1/query/assets/{_seg(asset)}/failureEvents",
            [("pageToken", token)] if token else [],
        ),
    )


def _list_exports(t: Targets, v: Values) -> Sample:
    token, size = v.get("page_token", ""), int(v.get("page_size", "0"))
    return Sample(
        [qs.ListExportsRequest(page_token=token, page_size=size)],
        Rest("GET", "/api/v1/query/exports", _page_params(token, size)),
    )


def _create_export_link(t: Targets, v: Values) -> Sample:
    asset, tags = _export_fields(t, v)
    request = qs.CreateExportLinkRequest(
        asset_id=asset, start_time=_stamp(_WINDOW_START), end_time=_stamp(_WINDOW_END), tags=tags
    )
    body = {
        "assetId": asset,
        "startTime": _rfc3339(_WINDOW_START),
        "endTime": _rfc3339(_WINDOW_END),
        "tags": tags,
    }
    return Sample([request], Rest("POST", "/api/v1/query/history:link", json=body))


def _download_export(t: Targets, v: Values) -> Sample:
    # A link nobody signed: whoever calls, with whatever token, it is refused.
    export_id = v.get("export_id", str(uuid.uuid4()))
    link = v.get("link", "eyJlIjoiMSJ9.Zm9yZ2Vk")
    return Sample(
        [qs.DownloadExportRequest(export_id=export_id, link=link)],
        Rest("GET", f"/api/v1/query/downloads/{_seg(export_id)}", [("link", link)]),
    )


def _message(full_name: str, **fields: str) -> Message:
    return message_class(full_name)(**fields)


# --------------------------------------------------------------------------- uploads


def _upload_metadata(v: Values) -> mr.UploadModelMetadata:
    return mr.UploadModelMetadata(
        name=v.get("name", fresh_name()),
        description=v.get("description", "matrix sample"),
        labels={v.get("label_key", "team"): "security"},
        metrics={v.get("metric_key", "auc"): 0.5},
        training_export_ids=[v["training_export_id"]] if "training_export_id" in v else [],
        sha256=v.get("sha256", ""),
    )


def _upload_model(t: Targets, v: Values) -> Sample:
    metadata = _upload_metadata(v)
    messages = [mr.UploadModelRequest(metadata=metadata), mr.UploadModelRequest(chunk=ONNX)]
    body = [
        {
            "metadata": {
                "name": metadata.name,
                "description": metadata.description,
                "labels": dict(metadata.labels),
                "metrics": dict(metadata.metrics),
                "trainingExportIds": list(metadata.training_export_ids),
                "sha256": metadata.sha256,
            }
        },
        {"chunk": base64.b64encode(ONNX).decode()},
    ]
    return Sample(list(messages), Rest("POST", "/api/v1/models:upload", json=body))


BOUNDARY = "matrix-boundary-7d1c"


def multipart_body(fields: dict[str, str], file: bytes) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + file
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _upload_multipart(t: Targets, v: Values) -> Sample:
    fields = {
        "name": v.get("name", fresh_name()),
        "description": v.get("description", "matrix sample"),
    }
    body = httpbody_pb2.HttpBody(
        content_type=f"multipart/form-data; boundary={BOUNDARY}",
        data=multipart_body(fields, ONNX),
    )
    return Sample(
        [body],
        Rest("POST", "/api/v1/models", files={"file": ("m.onnx", ONNX)}, data=fields),
    )


# --------------------------------------------------------------------------- reads


def _list_models(t: Targets, v: Values) -> Sample:
    token, text, size = v.get("page_token", ""), v.get("filter", ""), int(v.get("page_size", "0"))
    params = _page_params(token, size) + ([("filter", text)] if text else [])
    return Sample(
        [mr.ListModelsRequest(page_token=token, filter=text, page_size=size)],
        Rest("GET", "/api/v1/models", params),
    )


def _get_model(t: Targets, v: Values) -> Sample:
    model_id = v.get("model_id", t.model_id)
    return Sample(
        [mr.GetModelRequest(model_id=model_id)], Rest("GET", f"/api/v1/models/{_seg(model_id)}")
    )


def _list_versions(t: Targets, v: Values) -> Sample:
    model_id, token = v.get("model_id", t.model_id), v.get("page_token", "")
    return Sample(
        [mr.ListModelVersionsRequest(model_id=model_id, page_token=token)],
        Rest(
            "GET",
            f"/api/v1/models/{_seg(model_id)}/versions",
            [("pageToken", token)] if token else [],
        ),
    )


def _get_version(t: Targets, v: Values) -> Sample:
    model_id = v.get("model_id", t.model_id)
    return Sample(
        [mr.GetModelVersionRequest(model_id=model_id, version=1)],
        Rest("GET", f"/api/v1/models/{_seg(model_id)}/versions/1"),
    )


def _get_validation_report(t: Targets, v: Values) -> Sample:
    model_id = v.get("model_id", t.model_id)
    return Sample(
        [mr.GetValidationReportRequest(model_id=model_id, version=1)],
        Rest("GET", f"/api/v1/models/{_seg(model_id)}/versions/1/validation"),
    )


def _create_model_download_link(t: Targets, v: Values) -> Sample:
    model_id = v.get("model_id", t.model_id)
    return Sample(
        [mr.CreateModelDownloadLinkRequest(model_id=model_id, version=1)],
        Rest("POST", f"/api/v1/models/{_seg(model_id)}/versions/1:downloadLink", json={}),
    )


def _download_by_link(t: Targets, v: Values) -> Sample:
    # A link nobody signed: whoever calls, with whatever token, it is refused.
    model_id, link = v.get("model_id", t.model_id), v.get("link", "eyJtIjoiMSJ9.Zm9yZ2Vk")
    return Sample(
        [mr.DownloadModelVersionByLinkRequest(model_id=model_id, version=1, link=link)],
        Rest("GET", f"/api/v1/models/{_seg(model_id)}/versions/1/download", [("link", link)]),
    )


def _list_audit_entries(t: Targets, v: Values) -> Sample:
    model_id = v.get("model_id", t.model_id)
    return Sample(
        [mr.ListAuditEntriesRequest(model_id=model_id, version=1)],
        Rest("GET", f"/api/v1/models/{_seg(model_id)}/versions/1/auditEntries"),
    )


def _download(t: Targets, v: Values) -> Sample:
    model_id = v.get("model_id", t.model_id)
    return Sample(
        [mr.DownloadModelVersionRequest(model_id=model_id, version=1)],
        Rest("GET", f"/api/v1/models/{_seg(model_id)}/versions/1/content"),
    )


# --------------------------------------------------------------------------- approvals


def _submit(t: Targets, v: Values) -> Sample:
    model_id, comment = v.get("model_id", t.pending_model_id), v.get("comment", "please")
    return Sample(
        [mr.SubmitForApprovalRequest(model_id=model_id, version=1, comment=comment)],
        Rest(
            "POST",
            f"/api/v1/models/{_seg(model_id)}/approvals",
            json={"version": 1, "comment": comment},
        ),
    )


def _list_approvals(t: Targets, v: Values) -> Sample:
    state, token, size = (
        v.get("state", "OPEN"),
        v.get("page_token", ""),
        int(v.get("page_size", "0")),
    )
    params = [("state", state), *_page_params(token, size)]
    return Sample(
        [
            mr.ListApprovalsRequest(
                state=mr.Approval.State.Value(state), page_token=token, page_size=size
            )
        ],
        Rest("GET", "/api/v1/approvals", params),
    )


def _get_approval(t: Targets, v: Values) -> Sample:
    approval_id = v.get("approval_id", t.approval_id)
    return Sample(
        [mr.GetApprovalRequest(approval_id=approval_id)],
        Rest("GET", f"/api/v1/approvals/{_seg(approval_id)}"),
    )


def _decision(verb: str, message: type[mr.ApproveModelVersionRequest]) -> Builder:
    def build(t: Targets, v: Values) -> Sample:
        approval_id, comment = v.get("approval_id", t.approval_id), v.get("comment", "checked")
        return Sample(
            [message(approval_id=approval_id, comment=comment)],
            Rest(
                "POST", f"/api/v1/approvals/{_seg(approval_id)}:{verb}", json={"comment": comment}
            ),
        )

    return build


def _archive(t: Targets, v: Values) -> Sample:
    model_id, comment = v.get("model_id", t.pending_model_id), v.get("comment", "retired")
    return Sample(
        [mr.ArchiveModelVersionRequest(model_id=model_id, version=1, comment=comment)],
        Rest(
            "POST",
            f"/api/v1/models/{_seg(model_id)}/versions/1:archive",
            json={"comment": comment},
        ),
    )


SAMPLES: dict[str, Builder] = {
    "QueryService/ListAssets": _list_assets,
    "QueryService/GetAsset": _get_asset,
    "QueryService/ExportHistory": _export_history,
    "QueryService/ExportHistoryCsv": _export_history_csv,
    "QueryService/GetExport": _get_export,
    "QueryService/ListExports": _list_exports,
    "QueryService/CreateExportLink": _create_export_link,
    "QueryService/DownloadExport": _download_export,
    "QueryService/ListFailureEvents": _list_failure_events,
    "ModelRegistry/UploadModel": _upload_model,
    "ModelRegistry/UploadModelMultipart": _upload_multipart,
    "ModelRegistry/ListModels": _list_models,
    "ModelRegistry/GetModel": _get_model,
    "ModelRegistry/ListModelVersions": _list_versions,
    "ModelRegistry/GetModelVersion": _get_version,
    "ModelRegistry/GetValidationReport": _get_validation_report,
    "ModelRegistry/DownloadModelVersion": _download,
    "ModelRegistry/ListAuditEntries": _list_audit_entries,
    "ModelRegistry/CreateModelDownloadLink": _create_model_download_link,
    "ModelRegistry/DownloadModelVersionByLink": _download_by_link,
    "ModelRegistry/SubmitForApproval": _submit,
    "ModelRegistry/ListApprovals": _list_approvals,
    "ModelRegistry/GetApproval": _get_approval,
    "ModelRegistry/ApproveModelVersion": _decision("approve", mr.ApproveModelVersionRequest),
    "ModelRegistry/RejectModelVersion": _decision(
        "reject",
        mr.RejectModelVersionRequest,  # type: ignore[arg-type]
    ),
    "ModelRegistry/ArchiveModelVersion": _archive,
}

# The string fields of each RPC's request a client controls (ids, names, filters, page
# tokens, tags, comments, label and metric keys).
STRING_FIELDS: dict[str, tuple[str, ...]] = {
    "QueryService/ListAssets": ("page_token",),
    "QueryService/GetAsset": ("asset_id",),
    "QueryService/ExportHistory": ("asset_id", "tags"),
    "QueryService/ExportHistoryCsv": ("asset_id", "tags"),
    "QueryService/GetExport": ("export_id",),
    "QueryService/ListExports": ("page_token",),
    "QueryService/CreateExportLink": ("asset_id", "tags"),
    "QueryService/DownloadExport": ("export_id", "link"),
    "QueryService/ListFailureEvents": ("asset_id", "page_token"),
    "ModelRegistry/UploadModel": (
        "name",
        "label_key",
        "metric_key",
        "training_export_id",
        "sha256",
    ),
    "ModelRegistry/UploadModelMultipart": ("name",),
    "ModelRegistry/ListModels": ("filter", "page_token"),
    "ModelRegistry/GetModel": ("model_id",),
    "ModelRegistry/ListModelVersions": ("model_id", "page_token"),
    "ModelRegistry/GetModelVersion": ("model_id",),
    "ModelRegistry/GetValidationReport": ("model_id",),
    "ModelRegistry/DownloadModelVersion": ("model_id",),
    "ModelRegistry/ListAuditEntries": ("model_id",),
    "ModelRegistry/CreateModelDownloadLink": ("model_id",),
    "ModelRegistry/DownloadModelVersionByLink": ("model_id", "link"),
    "ModelRegistry/SubmitForApproval": ("model_id", "comment"),
    "ModelRegistry/ListApprovals": ("page_token",),
    "ModelRegistry/GetApproval": ("approval_id",),
    "ModelRegistry/ApproveModelVersion": ("approval_id", "comment"),
    "ModelRegistry/RejectModelVersion": ("approval_id", "comment"),
    "ModelRegistry/ArchiveModelVersion": ("model_id", "comment"),
}

# RPCs that create something when they succeed (no target to steal from).
CREATING = frozenset({"ModelRegistry/UploadModel", "ModelRegistry/UploadModelMultipart"})
# RPCs that answer a list, scoped to the caller's tenant.
LISTING = frozenset(
    {
        "QueryService/ListAssets",
        "QueryService/ListExports",
        "ModelRegistry/ListModels",
        "ModelRegistry/ListApprovals",
    }
)
# RPCs whose request carries its own credential (a signed link), not a bearer token.
LINKED = frozenset({"QueryService/DownloadExport", "ModelRegistry/DownloadModelVersionByLink"})
# RPCs that write when they succeed (exports record a manifest and an audit row).
WRITING = CREATING | frozenset(
    {
        "ModelRegistry/SubmitForApproval",
        "ModelRegistry/ApproveModelVersion",
        "ModelRegistry/RejectModelVersion",
        "ModelRegistry/ArchiveModelVersion",
        "QueryService/ExportHistory",
        "QueryService/ExportHistoryCsv",
    }
)
