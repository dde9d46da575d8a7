"""QueryService over gRPC: protobuf in, domain calls, protobuf out. Nothing else."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api import httpbody_pb2
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import query_service_pb2 as pb
from mlplane.v1 import query_service_pb2_grpc as pb_grpc

from services.common import access
from services.common.auth import current_principal, current_principal_var, require_role
from services.common.interceptors import set_response_header
from services.common.logs import request_id_var, subject_var
from services.common.settings import Settings
from services.query.asset_catalog import AssetCatalog
from services.query.export_pipeline import DataChunk, ExportPipeline, PreparedExport
from services.query.limits import ExportSlot
from services.query.links import ExportLinks
from services.query.request import (
    Encoding,
    ExportQuery,
    build_export_query,
    build_failure_events_query,
)
from services.query.store import AssetRow, ExportRecord, FailureEventRow

# Envoy's transcoder adds this header to REST requests it turns into gRPC.
_TRANSCODED_MARKER = "x-envoy-original-path"


class QueryServicer(pb_grpc.QueryServiceServicer):
    def __init__(
        self,
        catalog: AssetCatalog,
        exports: ExportPipeline,
        settings: Settings,
        links: ExportLinks,
    ) -> None:
        self._catalog = catalog
        self._exports = exports
        self._settings = settings
        self._links = links

    async def ListAssets(
        self, request: pb.ListAssetsRequest, context: Any
    ) -> pb.ListAssetsResponse:
        assets, token = await self._catalog.list_assets(
            current_principal(), request.page_size, request.page_token
        )
        return pb.ListAssetsResponse(assets=[_asset(a) for a in assets], next_page_token=token)

    async def GetAsset(self, request: pb.GetAssetRequest, context: Any) -> pb.Asset:
        return _asset(
            await self._catalog.get_asset(
                current_principal(), request.asset_id, request_id=request_id_var.get()
            )
        )

    async def ExportHistory(
        self, request: pb.ExportHistoryRequest, context: Any
    ) -> AsyncIterator[pb.ExportHistoryResponse]:
        encoding: Encoding = "arrow" if request.format == pb.Export.ARROW else "rows"
        rest_json = _is_transcoded(context) and encoding == "rows"
        # A REST JSON export is row-capped: an interactive query, not a bulk export.
        admission = self._exports.export_slot(current_principal(), interactive=rest_json)
        async with admission as slot:
            prepared = await self._prepare(
                request, encoding, context, rest_json=rest_json, slot=slot
            )
            yield pb.ExportHistoryResponse(header=_header(prepared))
            parts = self._exports.stream(prepared, client_gone=context.cancelled)
            async with contextlib.aclosing(parts):
                async for part in parts:
                    if isinstance(part, DataChunk):
                        yield pb.ExportHistoryResponse(arrow=pb.ArrowBatch(data=part.data))
                    elif isinstance(part.message, pb.SampleBatch):
                        yield pb.ExportHistoryResponse(samples=part.message)
                    else:
                        yield pb.ExportHistoryResponse(aggregates=part.message)
            manifest = await self._exports.manifest(prepared)
        yield pb.ExportHistoryResponse(manifest=_export(manifest))

    async def ExportHistoryCsv(
        self, request: pb.ExportHistoryCsvRequest, context: Any
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        async with self._exports.export_slot(current_principal()) as slot:
            prepared = await self._prepare(request, "csv", context, rest_json=False, slot=slot)
            document = self._csv_document(prepared, context)
            async with contextlib.aclosing(document):
                async for body in document:
                    yield body

    async def CreateExportLink(
        self, request: pb.CreateExportLinkRequest, context: Any
    ) -> pb.ExportLink:
        principal = current_principal()
        query = self._query(request, "csv")
        # Refused now, with the export's own message, rather than at the download.
        await self._exports.check_export(principal, query, request_id=request_id_var.get())
        link = self._links.issue(principal, query, datetime.now(UTC))
        return pb.ExportLink(
            export_id=link.export_id, url=link.url, expire_time=_timestamp(link.expires)
        )

    async def DownloadExport(
        self, request: pb.DownloadExportRequest, context: Any
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        grant = self._links.verify(request.link, request.export_id, datetime.now(UTC))
        # The link stands for the caller who made it: their roles must still allow the
        # export, and everything after this runs, and is audited, as them.
        stands_for = access.LINK_METHODS["/mlplane.v1.QueryService/DownloadExport"]
        require_role(grant.principal, stands_for, access.allowed_roles(stands_for))
        current_principal_var.set(grant.principal)
        subject_var.set(grant.principal.subject)
        async with self._exports.export_slot(grant.principal) as slot:
            prepared = await self._exports.prepare_export(
                grant.principal,
                grant.query,
                request_id=request_id_var.get(),
                export_id=request.export_id,
                slot=slot,
            )
            document = self._csv_document(prepared, context)
            async with contextlib.aclosing(document):
                async for body in document:
                    yield body

    async def _csv_document(
        self, prepared: PreparedExport, context: Any
    ) -> AsyncGenerator[httpbody_pb2.HttpBody, None]:
        set_response_header("x-mlplane-export-id", prepared.export_id)
        set_response_header(
            "content-disposition",
            f'attachment; filename="{prepared.asset.asset_id}-{prepared.export_id[:8]}.csv"',
        )
        first = True
        parts = self._exports.stream(prepared, client_gone=context.cancelled)
        async with contextlib.aclosing(parts):
            async for part in parts:
                assert isinstance(part, DataChunk)
                if first:
                    first = False
                    yield httpbody_pb2.HttpBody(
                        content_type="text/csv; charset=utf-8", data=part.data
                    )
                else:
                    yield httpbody_pb2.HttpBody(data=part.data)
        if first:  # no rows at all: still a CSV document with its header line
            yield httpbody_pb2.HttpBody(content_type="text/csv; charset=utf-8", data=b"")
        manifest = await self._exports.manifest(prepared)
        # gRPC callers get the manifest as trailers (HTTP trailers through Envoy);
        # REST callers read it with GetExport using the x-mlplane-export-id header.
        context.set_trailing_metadata(
            (
                ("x-mlplane-export-rows", str(manifest.row_count or 0)),
                ("x-mlplane-export-sha256", manifest.sha256 or ""),
            )
        )

    async def GetExport(self, request: pb.GetExportRequest, context: Any) -> pb.Export:
        return _export(await self._exports.get_export(current_principal(), request.export_id))

    async def ListExports(
        self, request: pb.ListExportsRequest, context: Any
    ) -> pb.ListExportsResponse:
        exports, token = await self._exports.list_exports(
            current_principal(), request.page_size, request.page_token
        )
        return pb.ListExportsResponse(exports=[_export(e) for e in exports], next_page_token=token)

    async def ListFailureEvents(
        self, request: pb.ListFailureEventsRequest, context: Any
    ) -> pb.ListFailureEventsResponse:
        query = build_failure_events_query(
            asset_id=request.asset_id,
            start=_time(request.start_time) if request.HasField("start_time") else None,
            end=_time(request.end_time) if request.HasField("end_time") else None,
        )
        asset, events, token = await self._catalog.list_failure_events(
            current_principal(),
            query,
            request.page_size,
            request.page_token,
            request_id=request_id_var.get(),
        )
        return pb.ListFailureEventsResponse(
            failure_events=[_failure_event(asset.asset_id, e) for e in events],
            next_page_token=token,
        )

    def _query(
        self,
        request: pb.ExportHistoryRequest | pb.ExportHistoryCsvRequest | pb.CreateExportLinkRequest,
        encoding: Encoding,
    ) -> ExportQuery:
        return build_export_query(
            asset_id=request.asset_id,
            # The contract requires both times (checked before this runs).
            start=_time(request.start_time),
            end=_time(request.end_time),
            tags=list(request.tags),
            resolution=_duration(request.resolution) if request.HasField("resolution") else None,
            encoding=encoding,
            max_window=timedelta(days=self._settings.query_max_window_days),
        )

    async def _prepare(
        self,
        request: pb.ExportHistoryRequest | pb.ExportHistoryCsvRequest,
        encoding: Encoding,
        context: Any,
        *,
        rest_json: bool,
        slot: ExportSlot,
    ) -> PreparedExport:
        return await self._exports.prepare_export(
            current_principal(),
            self._query(request, encoding),
            request_id=request_id_var.get(),
            row_cap=self._settings.query_rest_row_cap if rest_json else None,
            slot=slot,
        )


def _is_transcoded(context: Any) -> bool:
    return any(key == _TRANSCODED_MARKER for key, _ in context.invocation_metadata() or ())


def _time(value: Timestamp) -> datetime:
    return datetime.fromtimestamp(value.seconds, UTC) + timedelta(microseconds=value.nanos // 1000)


def _duration(value: Duration) -> timedelta:
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _asset(asset: AssetRow) -> pb.Asset:
    message = pb.Asset(
        asset_id=asset.asset_id,
        display_name=asset.display_name,
        tags=[pb.Tag(name=t.name, unit=t.unit, description=t.description) for t in asset.tags],
    )
    if asset.first_time is not None:
        message.first_time.CopyFrom(_timestamp(asset.first_time))
    if asset.last_time is not None:
        message.last_time.CopyFrom(_timestamp(asset.last_time))
    return message


def _header(prepared: PreparedExport) -> pb.ExportHeader:
    return pb.ExportHeader(
        export_id=prepared.export_id,
        asset_id=prepared.asset.asset_id,
        tags=[pb.Tag(name=t.name, unit=t.unit, description=t.description) for t in prepared.tags],
        format=pb.Export.ARROW if prepared.query.encoding == "arrow" else pb.Export.ROWS,
    )


def _export(record: ExportRecord) -> pb.Export:
    message = pb.Export(
        export_id=record.export_id,
        asset_id=record.asset_id,
        start_time=_timestamp(record.start_time),
        end_time=_timestamp(record.end_time),
        tags=record.tags,
        format=pb.Export.Format.Value(record.encoding.upper()),
        row_count=record.row_count or 0,
        sha256=record.sha256 or "",
        created_by=record.subject,
        create_time=_timestamp(record.create_time),
        status=pb.Export.Status.Value(record.status.upper()),
    )
    if record.resolution_seconds:
        message.resolution.CopyFrom(Duration(seconds=record.resolution_seconds))
    return message


def _failure_event(asset_id: str, event: FailureEventRow) -> pb.FailureEvent:
    message = pb.FailureEvent(
        asset_id=asset_id,
        start_time=_timestamp(event.start_time),
        failure_mode=event.failure_mode,
        description=event.description,
    )
    if event.end_time is not None:
        message.end_time.CopyFrom(_timestamp(event.end_time))
    return message
