"""ModelRegistry over gRPC: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from google.api import httpbody_pb2
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from services.common import access
from services.common.auth import Principal, current_principal, current_principal_var, require_role
from services.common.errors import ServiceError, invalid_argument
from services.common.interceptors import set_http_status, set_response_header
from services.common.logs import request_id_var, subject_var
from services.common.metrics import OK, UploadMetrics
from services.common.validation import RequestValidator
from services.models.approvals import ApprovalRecord, Approvals
from services.models.catalog import Catalog
from services.models.evaluation_upload import EvaluationChunk
from services.models.links import ModelLinks
from services.models.metadata import UploadMetadata, from_message
from services.models.multipart_form import read_multipart
from services.models.repository import AuditRecord, ModelRecord, VersionRecord
from services.models.upload import Uploader
from services.models.validation_report import timestamp as _timestamp
from services.models.validation_report import validation_report


class ModelRegistryServicer(pb_grpc.ModelRegistryServicer):
    def __init__(
        self,
        uploader: Uploader,
        catalog: Catalog,
        approvals: Approvals,
        links: ModelLinks,
        *,
        uploads: UploadMetrics | None = None,
    ) -> None:
        self._uploader = uploader
        self._uploads = uploads or UploadMetrics()
        self._catalog = catalog
        self._approvals = approvals
        self._links = links
        # The form's text fields are checked with the contract's rules here; gRPC messages
        # were checked by the validation interceptor.
        self._validator = RequestValidator()

    # --- upload ---------------------------------------------------------------------
    async def UploadModel(
        self, request_iterator: AsyncIterator[pb.UploadModelRequest], context: Any
    ) -> pb.ModelVersion:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("metadata"):
            raise invalid_argument(
                "METADATA_FIRST",
                "the first UploadModelRequest must carry metadata, then the file chunks",
                field="metadata",
            )
        metadata = from_message(first.metadata)

        async def chunks() -> AsyncIterator[bytes | EvaluationChunk]:
            async for message in request_iterator:
                part = message.WhichOneof("part")
                if part == "chunk":
                    yield message.chunk
                elif part == "evaluation_set_chunk":
                    yield EvaluationChunk(message.evaluation_set_chunk)
                elif part == "metadata":
                    raise invalid_argument(
                        "METADATA_TWICE", "metadata may only be sent once, first", field="metadata"
                    )

        return await self._upload(metadata, chunks())

    async def UploadModelMultipart(
        self, request_iterator: AsyncIterator[httpbody_pb2.HttpBody], context: Any
    ) -> pb.ModelVersion:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            raise invalid_argument("EMPTY_BODY", "the request has no body", field="file")

        async def rest() -> AsyncIterator[bytes]:
            async for body in request_iterator:
                yield body.data

        form = await read_multipart(first.content_type, first.data, rest(), self._validator)
        return await self._upload(form.metadata, form.file_chunks)

    async def _upload(
        self, metadata: UploadMetadata, chunks: AsyncIterator[bytes | EvaluationChunk]
    ) -> pb.ModelVersion:
        received = 0  # the file's bytes that arrived, for the upload metrics

        async def counted() -> AsyncIterator[bytes | EvaluationChunk]:
            nonlocal received
            async for chunk in chunks:
                if not isinstance(chunk, EvaluationChunk):
                    received += len(chunk)
                yield chunk

        try:
            record = await self._uploader.upload(
                current_principal(), metadata, counted(), request_id=request_id_var.get()
            )
        except BaseException as error:
            self._uploads.finished(_upload_outcome(error), received)
            raise
        self._uploads.finished(OK, received)
        set_http_status(201)
        return _version(record)

    # --- reads ----------------------------------------------------------------------
    async def ListModels(
        self, request: pb.ListModelsRequest, context: Any
    ) -> pb.ListModelsResponse:
        page = await self._catalog.list_models(
            current_principal(), request.page_size, request.page_token, request.filter
        )
        models, token = page.fit(_model)
        return pb.ListModelsResponse(models=models, next_page_token=token)

    async def GetModel(self, request: pb.GetModelRequest, context: Any) -> pb.Model:
        return _model(await self._catalog.get_model(current_principal(), request.model_id))

    async def ListModelVersions(
        self, request: pb.ListModelVersionsRequest, context: Any
    ) -> pb.ListModelVersionsResponse:
        page = await self._catalog.list_versions(
            current_principal(), request.model_id, request.page_size, request.page_token
        )
        versions, token = page.fit(_version)
        return pb.ListModelVersionsResponse(model_versions=versions, next_page_token=token)

    async def GetModelVersion(
        self, request: pb.GetModelVersionRequest, context: Any
    ) -> pb.ModelVersion:
        return _version(
            await self._catalog.get_version(current_principal(), request.model_id, request.version)
        )

    async def GetValidationReport(
        self, request: pb.GetValidationReportRequest, context: Any
    ) -> pb.ValidationReport:
        return validation_report(
            await self._catalog.get_validation(
                current_principal(), request.model_id, request.version
            )
        )

    async def ListAuditEntries(
        self, request: pb.ListAuditEntriesRequest, context: Any
    ) -> pb.ListAuditEntriesResponse:
        page = await self._catalog.audit_entries(
            current_principal(),
            request.model_id,
            request.version,
            request.page_size,
            request.page_token,
        )
        entries, token = page.fit(_audit_entry)
        return pb.ListAuditEntriesResponse(audit_entries=entries, next_page_token=token)

    async def DownloadModelVersion(
        self, request: pb.DownloadModelVersionRequest, context: Any
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        async for body in self._content(current_principal(), request.model_id, request.version):
            yield body

    async def CreateModelDownloadLink(
        self, request: pb.CreateModelDownloadLinkRequest, context: Any
    ) -> pb.DownloadLink:
        principal = current_principal()
        # Refused now (404 for an unknown or another tenant's version), not at the download.
        await self._catalog.get_version(principal, request.model_id, request.version)
        link = self._links.issue(
            principal, _canonical_id(request.model_id), request.version, datetime.now(UTC)
        )
        return pb.DownloadLink(url=link.url, expire_time=_timestamp(link.expires))

    async def DownloadModelVersionByLink(
        self, request: pb.DownloadModelVersionByLinkRequest, context: Any
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        principal = self._links.verify(
            request.link, _canonical_id(request.model_id), request.version, datetime.now(UTC)
        )
        # The link stands for the caller who made it: their roles must still allow the read.
        stands_for = access.LINK_METHODS["/mlplane.v1.ModelRegistry/DownloadModelVersionByLink"]
        require_role(principal, stands_for, access.allowed_roles(stands_for))
        current_principal_var.set(principal)
        subject_var.set(principal.subject)
        async for body in self._content(principal, request.model_id, request.version):
            yield body

    async def _content(
        self, principal: Principal, model_id: str, version: int
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        record, chunks = await self._catalog.content(principal, model_id, version)
        set_response_header("x-mlplane-sha256", record.sha256)
        set_response_header(
            "content-disposition", content_disposition(f"{record.name}-v{record.version}.onnx")
        )
        first = True
        async for chunk in chunks:
            if first:
                first = False
                yield httpbody_pb2.HttpBody(content_type="application/octet-stream", data=chunk)
            else:
                yield httpbody_pb2.HttpBody(data=chunk)

    # --- approvals --------------------------------------------------------------------
    async def SubmitForApproval(
        self, request: pb.SubmitForApprovalRequest, context: Any
    ) -> pb.Approval:
        record = await self._approvals.submit(
            current_principal(),
            request.model_id,
            request.version,
            request.comment,
            request_id_var.get(),
        )
        set_http_status(202)
        return _approval(record)

    async def ListApprovals(
        self, request: pb.ListApprovalsRequest, context: Any
    ) -> pb.ListApprovalsResponse:
        state = pb.Approval.State.Name(request.state) if request.state else None
        page = await self._approvals.list_requests(
            current_principal(), state, request.page_size, request.page_token
        )
        approvals, token = page.fit(_approval)
        return pb.ListApprovalsResponse(approvals=approvals, next_page_token=token)

    async def GetApproval(self, request: pb.GetApprovalRequest, context: Any) -> pb.Approval:
        return _approval(await self._approvals.get(current_principal(), request.approval_id))

    async def ApproveModelVersion(
        self, request: pb.ApproveModelVersionRequest, context: Any
    ) -> pb.Approval:
        return _approval(
            await self._approvals.decide(
                current_principal(),
                request.approval_id,
                approve=True,
                comment=request.comment,
                request_id=request_id_var.get(),
            )
        )

    async def RejectModelVersion(
        self, request: pb.RejectModelVersionRequest, context: Any
    ) -> pb.Approval:
        return _approval(
            await self._approvals.decide(
                current_principal(),
                request.approval_id,
                approve=False,
                comment=request.comment,
                request_id=request_id_var.get(),
            )
        )

    async def ArchiveModelVersion(
        self, request: pb.ArchiveModelVersionRequest, context: Any
    ) -> pb.ModelVersion:
        principal = current_principal()
        await self._approvals.archive(
            principal, request.model_id, request.version, request.comment, request_id_var.get()
        )
        return _version(
            await self._catalog.get_version(principal, request.model_id, request.version)
        )


def _upload_outcome(error: BaseException) -> str:
    if isinstance(error, ServiceError):
        return error.reason
    return "cancelled" if isinstance(error, asyncio.CancelledError) else "error"


def content_disposition(filename: str) -> str:
    """`attachment` with the file name as RFC 6266 wants it: `filename*=UTF-8''…`
    percent-encoded (any text, one header line whatever the name holds), and a plain
    `filename="…"` fallback of safe ASCII for clients that ignore `filename*`. The
    contract's name rule keeps new names plain; rows stored before it, or written by hand,
    must still not break the header (a newline in it fails the whole response)."""
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _canonical_id(model_id: str) -> str:
    # The contract checked it is a UUID; links compare ids in one spelling.
    return str(uuid.UUID(model_id))


def _audit_entry(record: AuditRecord) -> pb.AuditEntry:
    return pb.AuditEntry(
        time=_timestamp(record.time),
        actor=record.actor,
        action=record.action,
        resource=record.resource,
        outcome=record.outcome,
        request_id=record.request_id,
        detail=record.detail,
    )


def _approval(record: ApprovalRecord) -> pb.Approval:
    message = pb.Approval(
        approval_id=record.approval_id,
        model_id=record.model_id,
        model_name=record.model_name,
        version=record.version,
        state=pb.Approval.State.Value(record.state),
        submitted_by=record.submitted_by,
        submit_comment=record.submit_comment,
        submit_time=_timestamp(record.submit_time),
        decided_by=record.decided_by,
        decision_comment=record.decision_comment,
        sha256=record.sha256,
    )
    if record.decide_time is not None:
        message.decide_time.CopyFrom(_timestamp(record.decide_time))
    if record.model_version is not None:
        message.model_version.CopyFrom(_version(record.model_version))
    return message


def _model(record: ModelRecord) -> pb.Model:
    return pb.Model(
        model_id=record.model_id,
        name=record.name,
        description=record.description,
        latest_version=record.latest_version,
        created_by=record.created_by,
        create_time=_timestamp(record.create_time),
        update_time=_timestamp(record.update_time),
        latest_status=pb.ModelVersion.Status.Value(record.latest_status),
    )


def _tensor(spec: dict[str, Any]) -> pb.TensorSpec:
    return pb.TensorSpec(
        name=spec["name"],
        element_type=spec["element_type"],
        shape=[
            pb.Dimension(size=d) if isinstance(d, int) else pb.Dimension(param=str(d))
            for d in spec["shape"]
        ],
    )


def _version(record: VersionRecord) -> pb.ModelVersion:
    sig = record.signature
    return pb.ModelVersion(
        model_id=record.model_id,
        name=record.name,
        version=record.version,
        status=pb.ModelVersion.Status.Value(record.status),
        description=record.description,
        labels=record.labels,
        metrics=record.metrics,
        training_export_ids=record.training_export_ids,
        sha256=record.sha256,
        size_bytes=record.size_bytes,
        signature=pb.OnnxSignature(
            inputs=[_tensor(t) for t in sig.get("inputs", [])],
            outputs=[_tensor(t) for t in sig.get("outputs", [])],
            opset_imports=[
                pb.OperatorSetId(domain=d, version=v) for d, v in sig.get("opset_imports", [])
            ],
            ir_version=sig.get("ir_version", 0),
            producer_name=sig.get("producer_name", ""),
            producer_version=sig.get("producer_version", ""),
        ),
        created_by=record.created_by,
        create_time=_timestamp(record.create_time),
        update_time=_timestamp(record.update_time),
        status_history=[
            pb.StatusChange(
                from_status=pb.ModelVersion.Status.Value(h.from_status)
                if h.from_status
                else pb.ModelVersion.STATUS_UNSPECIFIED,
                to_status=pb.ModelVersion.Status.Value(h.to_status),
                actor=h.actor,
                comment=h.comment,
                change_time=_timestamp(h.change_time),
            )
            for h in record.history
        ],
        validation_state=pb.ValidationReport.State.Value(record.validation_state),
        has_evaluation_set=record.has_evaluation_set,
    )
