"""The whole journey, export → upload → submit → approve, through one surface at a time:
REST only (a plain HTTP client, the browser's multipart form) and gRPC only (the generated
stubs). Each checks the final status, the stored bytes, the lineage to the export and the
audit trail. The SDK's journey is the example notebook (test_example.py)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pandas as pd
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import model_registry_pb2_grpc as mr_grpc
from mlplane.v1 import query_service_pb2 as q
from mlplane.v1 import query_service_pb2_grpc as q_grpc

from tests.e2e.journey import audit_trail, train_onnx
from tests.polling import poll_until, validated
from tests.stack_runner import RunningStack

ASSET = "pump-001"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _last_day() -> tuple[datetime, datetime]:
    # The demo plant's history runs up to the moment the stack loaded it.
    end = datetime.now(UTC).replace(microsecond=0)
    return end - timedelta(days=1), end


def _subjects() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"scientist-{tag}", f"approver-{tag}"


def test_rest_journey(e2e_stack: RunningStack) -> None:
    stack = e2e_stack
    scientist, approver = _subjects()
    alice = {"Authorization": f"Bearer {stack.tokens.valid('data_scientist', subject=scientist)}"}
    bob = {"Authorization": f"Bearer {stack.tokens.valid('model_approver', subject=approver)}"}
    start, end = _last_day()
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        # 1. Export a day of history as the streamed CSV, and read its manifest back.
        csv = http.get(
            "/api/v1/query/history:csv",
            params={"assetId": ASSET, "startTime": _iso(start), "endTime": _iso(end)},
            headers=alice,
        )
        assert csv.status_code == 200, csv.text
        export_id = csv.headers["x-mlplane-export-id"]
        manifest = http.get(f"/api/v1/query/exports/{export_id}", headers=alice).json()
        assert manifest["status"] == "COMPLETED"
        assert manifest["sha256"] == hashlib.sha256(csv.content).hexdigest()
        rows = pd.read_csv(io.BytesIO(csv.content))
        assert len(rows) == int(manifest["rowCount"]) > 0

        # 2. Train outside, upload as the browser does: text fields first, then the file.
        onnx_bytes = train_onnx(rows)
        uploaded = http.post(
            "/api/v1/models",
            data={
                "name": f"e2e-rest-{uuid.uuid4().hex[:8]}",
                "description": "vibration above median, from one day of pump-001",
                "metrics": json.dumps({"rows": float(len(rows))}),
                "trainingExportIds": export_id,
            },
            files={"file": ("model.onnx", onnx_bytes, "application/octet-stream")},
            headers=alice,
        )
        assert uploaded.status_code == 201, uploaded.text
        version = uploaded.json()
        assert version["status"] == "PENDING_APPROVAL"
        model_id, number = version["modelId"], version["version"]
        # The validation worker runs it in ONNX Runtime; approval needs its report passed.
        report = validated(http, bob, model_id, int(number))
        assert report["state"] == "PASSED", report
        assert report["runtime"]["outputs"]

        # 3. Submit for review, 4. approve as someone else.
        submitted = http.post(
            f"/api/v1/models/{model_id}/approvals",
            json={"version": number, "comment": "please review"},
            headers=alice,
        )
        assert submitted.status_code == 202, submitted.text
        approval_id = submitted.json()["approvalId"]
        approved = http.post(
            f"/api/v1/approvals/{approval_id}:approve", json={"comment": "ok"}, headers=bob
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["state"] == "APPROVED"

        # The version as stored: approved, citing the export, holding exactly our bytes.
        final = http.get(f"/api/v1/models/{model_id}/versions/{number}", headers=alice).json()
        content = http.get(f"/api/v1/models/{model_id}/versions/{number}/content", headers=alice)
    assert final["status"] == "APPROVED"
    assert final["trainingExportIds"] == [export_id]
    assert content.status_code == 200
    assert hashlib.sha256(content.content).hexdigest() == final["sha256"]
    assert final["sha256"] == hashlib.sha256(onnx_bytes).hexdigest()
    _assert_audit_trail(stack, scientist, approver, export_id, model_id, approval_id)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _chunks(metadata: mr.UploadModelMetadata, data: bytes) -> Iterator[mr.UploadModelRequest]:
    yield mr.UploadModelRequest(metadata=metadata)
    for offset in range(0, len(data), 64 * 1024):
        yield mr.UploadModelRequest(chunk=data[offset : offset + 64 * 1024])


def test_grpc_journey(e2e_stack: RunningStack) -> None:
    stack = e2e_stack
    scientist, approver = _subjects()
    alice = (
        ("authorization", f"Bearer {stack.tokens.valid('data_scientist', subject=scientist)}"),
    )
    bob = (("authorization", f"Bearer {stack.tokens.valid('model_approver', subject=approver)}"),)
    start, end = _last_day()
    with grpc.insecure_channel(stack.gateway_target) as channel:
        query = q_grpc.QueryServiceStub(channel)
        registry = mr_grpc.ModelRegistryStub(channel)

        # 1. Export a day as Arrow; the stream ends with the manifest.
        header, arrow, manifest = None, bytearray(), None
        for part in query.ExportHistory(
            q.ExportHistoryRequest(
                asset_id=ASSET,
                start_time=_timestamp(start),
                end_time=_timestamp(end),
                format=q.Export.ARROW,
            ),
            metadata=alice,
            timeout=60,
        ):
            if part.HasField("header"):
                header = part.header
            elif part.HasField("arrow"):
                arrow += part.arrow.data
            elif part.HasField("manifest"):
                manifest = part.manifest
        assert header is not None
        assert manifest is not None
        assert manifest.export_id == header.export_id
        assert manifest.sha256 == hashlib.sha256(arrow).hexdigest()
        assert (
            query.GetExport(
                q.GetExportRequest(export_id=manifest.export_id), metadata=alice, timeout=30
            )
            == manifest
        )
        rows = pa.ipc.open_stream(io.BytesIO(bytes(arrow))).read_all().to_pandas()
        assert len(rows) == manifest.row_count > 0

        # 2. Upload: metadata first (with the SHA-256 the service must agree with), then chunks.
        onnx_bytes = train_onnx(rows)
        digest = hashlib.sha256(onnx_bytes).hexdigest()
        version = registry.UploadModel(
            _chunks(
                mr.UploadModelMetadata(
                    name=f"e2e-grpc-{uuid.uuid4().hex[:8]}",
                    description="vibration above median, from one day of pump-001",
                    metrics={"rows": float(len(rows))},
                    training_export_ids=[manifest.export_id],
                    sha256=digest,
                ),
                onnx_bytes,
            ),
            metadata=alice,
            timeout=60,
        )
        assert version.status == mr.ModelVersion.PENDING_APPROVAL

        def report() -> mr.ValidationReport:
            return registry.GetValidationReport(
                mr.GetValidationReportRequest(model_id=version.model_id, version=version.version),
                metadata=bob,
                timeout=30,
            )

        poll_until(
            lambda: report().state in (mr.ValidationReport.PASSED, mr.ValidationReport.FAILED),
            "the validation report",
        )
        assert report().state == mr.ValidationReport.PASSED

        # 3. Submit, 4. approve as someone else.
        approval = registry.SubmitForApproval(
            mr.SubmitForApprovalRequest(
                model_id=version.model_id, version=version.version, comment="please review"
            ),
            metadata=alice,
            timeout=30,
        )
        decided = registry.ApproveModelVersion(
            mr.ApproveModelVersionRequest(approval_id=approval.approval_id, comment="ok"),
            metadata=bob,
            timeout=30,
        )
        assert decided.state == mr.Approval.APPROVED

        final = registry.GetModelVersion(
            mr.GetModelVersionRequest(model_id=version.model_id, version=version.version),
            metadata=alice,
            timeout=30,
        )
        stored = b"".join(
            part.data
            for part in registry.DownloadModelVersion(
                mr.DownloadModelVersionRequest(model_id=version.model_id, version=version.version),
                metadata=alice,
                timeout=60,
            )
        )
    assert final.status == mr.ModelVersion.APPROVED
    assert list(final.training_export_ids) == [manifest.export_id]
    assert hashlib.sha256(stored).hexdigest() == final.sha256 == digest
    _assert_audit_trail(
        stack, scientist, approver, manifest.export_id, version.model_id, approval.approval_id
    )


def _assert_audit_trail(
    stack: RunningStack,
    scientist: str,
    approver: str,
    export_id: str,
    model_id: str,
    approval_id: str,
) -> None:
    trail = audit_trail(stack, scientist, approver)
    got = [(r["subject"], r["action"], r["outcome"]) for r in trail]
    assert got == [
        (scientist, "history.export", "completed"),
        (scientist, "model.upload", "ok"),
        (scientist, "approval.submit", "ok"),
        (approver, "approval.approve", "approved"),
    ], trail
    export, upload, submit, approve = trail
    assert export["resource"] == f"asset/{ASSET}"
    assert json.loads(export["detail"])["export_id"] == export_id
    assert upload["resource"].startswith(f"model/{model_id}")
    assert json.loads(submit["detail"])["modelId"] == model_id
    assert approve["resource"] == f"approval/{approval_id}"
