"""The QueryService's export pipeline: admission, every check before the first row, the
rows streamed out as CSV, Arrow or protobuf batches, and the export's manifest and audit.

Kept whole (about 400 lines): admission, the checks, the three encodings and the manifest
share one PreparedExport and its audit; the asset catalog is already apart (asset_catalog.py).

No gRPC here: the servicer translates protobuf to these calls and back. Every check (asset,
grant, tags, size) runs in `prepare_export`, before a single row is read, because once a
stream has started the HTTP status can no longer change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from services.common.auth import Principal
from services.common.errors import ServiceError, invalid_argument, not_found
from services.common.metrics import ExportMetrics
from services.common.pagination import PageTokens, invalid_page_token, page_size
from services.common.settings import Settings
from services.query.asset_catalog import AssetCatalog
from services.query.binary_copy import BinaryCopyDecoder
from services.query.encoders import (
    AGGREGATE_ROW,
    SAMPLE_ROW,
    ArrowEncoder,
    Digest,
    TagIndex,
    aggregate_batch,
    sample_batch,
)
from services.query.limits import ExportLimiter, ExportSlot
from services.query.request import ExportQuery
from services.query.store import AssetRow, AuditEntry, ExportRecord, HistoryStore, TagRow

log = logging.getLogger("mlplane.query")

_CSV_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class PreparedExport:
    export_id: str
    principal: Principal
    query: ExportQuery
    asset: AssetRow
    tags: list[TagRow]  # in column order
    request_id: str | None
    # The export's share of the pool (services/query/limits.py), given back when its
    # COPY ends; None outside an admitted export (tests).
    slot: ExportSlot | None = None

    @property
    def tag_index(self) -> TagIndex:
        return TagIndex([t.name for t in self.tags], [t.tag_pk for t in self.tags])


@dataclass(frozen=True)
class DataChunk:
    """Bytes for the wire: Arrow IPC stream bytes or CSV bytes."""

    data: bytes


@dataclass(frozen=True)
class MessageBatch:
    """A protobuf SampleBatch or AggregateBatch."""

    message: Any


ExportPart = DataChunk | MessageBatch


class ExportPipeline:
    def __init__(
        self,
        store: HistoryStore,
        catalog: AssetCatalog,
        settings: Settings,
        page_tokens: PageTokens,
        *,
        metrics: ExportMetrics | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._metrics = metrics or ExportMetrics()
        self._settings = settings
        self._pages = page_tokens
        self._limits = ExportLimiter(
            per_user=settings.query_exports_per_user,
            connections=max(1, settings.db_pool_size - settings.query_interactive_connections),
            wait=settings.db_connect_timeout_seconds,
        )
        # Manifest and audit writes that must outlive a cancelled handler.
        self._closing: dict[str, asyncio.Task[ExportRecord]] = {}

    def export_slot(
        self, principal: Principal, *, interactive: bool = False
    ) -> contextlib.AbstractAsyncContextManager[ExportSlot]:
        """Admission of one export (per-user bound, the exports' share of the pool unless
        `interactive`), held for the RPC; refused with 429 before anything is read."""
        return self._limits.admit(principal, interactive=interactive)

    async def prepare_export(
        self,
        principal: Principal,
        query: ExportQuery,
        *,
        request_id: str | None,
        row_cap: int | None = None,
        export_id: str | None = None,
        slot: ExportSlot | None = None,
    ) -> PreparedExport:
        """Every check, then the export's "running" manifest. `export_id` is a download
        link's: an export of that id recorded already means the link was used."""
        asset, tags = await self.check_export(principal, query, request_id=request_id)
        tag_pks = [t.tag_pk for t in tags] if query.tags else []
        if row_cap is not None:
            count = await self._store.count_rows_up_to(asset.asset_pk, query, tag_pks, row_cap)
            if count > row_cap:
                raise invalid_argument(
                    "TOO_MANY_ROWS_FOR_JSON",
                    f"this export has more than {row_cap} rows, the limit for a JSON response; "
                    "use the CSV download (/api/v1/query/history:csv), gRPC, a shorter range, "
                    "or a resolution",
                    limit=str(row_cap),
                )
        prepared = PreparedExport(
            export_id=export_id or str(uuid.uuid4()),
            principal=principal,
            query=query,
            asset=asset,
            tags=tags,
            request_id=request_id,
            slot=slot,
        )
        await self._store.begin_export(
            prepared.export_id, principal.tenant, principal.subject, query, request_id
        )
        return prepared

    async def check_export(
        self, principal: Principal, query: ExportQuery, *, request_id: str | None
    ) -> tuple[AssetRow, list[TagRow]]:
        """The asset (readable by the caller, or a 404/403 that is audited) and the tags to
        export in column order (each known to the asset)."""
        asset = await self._catalog.readable_asset(
            principal,
            query.asset_id,
            denied=self._audit_entry(principal, query, "denied", request_id, reason="no grant"),
        )
        by_name = {t.name: t for t in asset.tags}
        if query.tags:
            unknown = [t for t in query.tags if t not in by_name]
            if unknown:
                raise invalid_argument(
                    "UNKNOWN_TAG",
                    f"asset {asset.asset_id!r} has no tag {unknown[0]!r}; "
                    f"its tags are: {', '.join(sorted(by_name))}",
                    field="tags",
                )
            tags = [by_name[t] for t in query.tags]
        else:
            tags = list(asset.tags)
        # Export order is the tag_pk order within a timestamp (the index order).
        tags.sort(key=lambda t: t.tag_pk)
        return asset, tags

    async def stream(
        self, prepared: PreparedExport, *, client_gone: Callable[[], bool] = lambda: False
    ) -> AsyncGenerator[ExportPart, None]:
        """The export's data parts; the manifest is closed when the stream ends.
        `client_gone` tells a failure caused by the client leaving (whatever
        exception that surfaced as) from a real one."""
        digest = Digest()
        outcome = "failed"
        parts: AsyncGenerator[ExportPart, None] = (
            self._csv(prepared, digest)
            if prepared.query.encoding == "csv"
            else self._binary(prepared, digest)
        )
        try:
            async with contextlib.aclosing(parts):
                async for part in parts:
                    yield part
            outcome = "completed"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        except Exception as error:
            # A cancellation can surface as another exception before gRPC flags the
            # call as cancelled; the task's pending cancel request tells it apart. It
            # ends as a cancellation (quietly: the RPC's own log line says CANCELLED).
            task = asyncio.current_task()
            if client_gone() or (task is not None and task.cancelling() > 0):
                outcome = "cancelled"
                raise asyncio.CancelledError from None
            log.info("export %s failed: %s", prepared.export_id, type(error).__name__)
            raise
        finally:
            if prepared.slot is not None:
                prepared.slot.release()
            self._metrics.finished(prepared.query.encoding, outcome, digest.rows)
            self._close_later(prepared, outcome, digest)

    async def manifest(self, prepared: PreparedExport) -> ExportRecord:
        """The manifest, once `stream` finished and it is stored."""
        closing = self._closing.get(prepared.export_id)
        if closing is None:
            record = await self._store.get_export(prepared.principal.tenant, prepared.export_id)
            if record is None:  # begin_export wrote it; nothing deletes manifests
                raise ServiceError(grpc.StatusCode.INTERNAL, "MANIFEST_MISSING", "no manifest")
            return record
        return await asyncio.shield(closing)

    async def list_exports(
        self, principal: Principal, requested_size: int, token: str
    ) -> tuple[list[ExportRecord], str]:
        """The caller's own exports, newest first."""
        size = page_size(requested_size)
        scope = {"tenant": principal.tenant, "subject": principal.subject, "size": size}
        position = self._pages.decode(token, scope)
        try:
            before = (
                None
                if position is None
                else (datetime.fromisoformat(position[0]), uuid.UUID(position[1]))
            )
        except (TypeError, ValueError, IndexError) as exc:
            raise invalid_page_token() from exc
        rows = await self._store.list_exports(
            principal.tenant, principal.subject, before=before, limit=size + 1
        )
        page, more = rows[:size], len(rows) > size
        next_token = ""
        if more:
            last = page[-1]
            next_token = self._pages.encode(
                [last.create_time.astimezone(UTC).isoformat(), last.export_id], scope
            )
        return page, next_token

    async def get_export(self, principal: Principal, export_id: str) -> ExportRecord:
        try:
            uuid.UUID(export_id)
        except ValueError as exc:
            raise invalid_argument(
                "INVALID_EXPORT_ID", "exportId must be a UUID", field="exportId"
            ) from exc
        record = await self._store.get_export(principal.tenant, export_id)
        if record is None:
            raise not_found("EXPORT_NOT_FOUND", f"export {export_id} does not exist")
        return record

    # --- internals ----------------------------------------------------------------
    async def _csv(
        self, prepared: PreparedExport, digest: Digest
    ) -> AsyncGenerator[DataChunk, None]:
        names = {t.tag_pk: t.name for t in prepared.tags}
        pending = bytearray()
        lines = 0
        chunks = self._copy_out(prepared, csv_tag_names=names)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                pending += chunk
                if len(pending) >= _CSV_CHUNK_BYTES:
                    lines += pending.count(b"\n")
                    digest.update(pending)
                    yield DataChunk(bytes(pending))
                    pending.clear()
        lines += pending.count(b"\n")
        digest.update(pending)
        digest.rows = max(lines - 1, 0)  # the header line
        if pending:
            yield DataChunk(bytes(pending))

    async def _binary(
        self, prepared: PreparedExport, digest: Digest
    ) -> AsyncGenerator[ExportPart, None]:
        query = prepared.query
        aggregates = query.resolution is not None
        decoder = BinaryCopyDecoder(AGGREGATE_ROW if aggregates else SAMPLE_ROW)
        tags = prepared.tag_index
        arrow = ArrowEncoder(tags, aggregates=aggregates) if query.encoding == "arrow" else None
        batch_rows = (
            self._settings.query_arrow_batch_rows if arrow else self._settings.query_row_batch_rows
        )
        held: list[npt.NDArray[np.void]] = []
        held_rows = 0

        def flush(rows: npt.NDArray[np.void]) -> ExportPart:
            digest.rows += len(rows)
            if arrow is not None:
                data = arrow.encode(rows)
                digest.update(data)
                return DataChunk(data)
            message, data = aggregate_batch(rows, tags) if aggregates else sample_batch(rows, tags)
            digest.update(data)
            return MessageBatch(message)

        chunks = self._copy_out(prepared)
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                rows = decoder.feed(chunk)
                if len(rows):
                    held.append(rows)
                    held_rows += len(rows)
                while held_rows >= batch_rows:
                    merged = np.concatenate(held)
                    yield flush(merged[:batch_rows])
                    rest = merged[batch_rows:]
                    held, held_rows = ([rest] if len(rest) else []), len(rest)
        decoder.finish()
        if held_rows:
            yield flush(np.concatenate(held))
        if arrow is not None:
            tail = arrow.close()
            digest.update(tail)
            yield DataChunk(tail)

    def _copy_out(
        self, prepared: PreparedExport, *, csv_tag_names: dict[int, str] | None = None
    ) -> AsyncGenerator[bytes, None]:
        return self._store.copy_out(
            prepared.asset.asset_pk,
            prepared.query,
            self._tag_pks(prepared),
            csv_tag_names=csv_tag_names,
            idle_timeout=self._settings.query_export_idle_timeout_seconds,
            # The export's share of the pool is free once its connection is back, even
            # while a stalled client still holds the stream open.
            on_release=prepared.slot.release if prepared.slot is not None else None,
        )

    @staticmethod
    def _tag_pks(prepared: PreparedExport) -> list[int]:
        return [t.tag_pk for t in prepared.tags] if prepared.query.tags else []

    def _close_later(self, prepared: PreparedExport, outcome: str, digest: Digest) -> None:
        # Runs even when the handler task is being cancelled (client gone):
        # the bookkeeping must not be cancelled with it.
        query = prepared.query
        sha = digest.hexdigest() if outcome == "completed" else None

        async def close() -> ExportRecord:
            try:
                await self._store.finish_export(
                    prepared.export_id,
                    outcome,
                    digest.rows,
                    sha,
                    audit=self._audit_entry(
                        prepared.principal,
                        query,
                        outcome,
                        prepared.request_id,
                        rows=digest.rows,
                        export_id=prepared.export_id,
                    ),
                )
            except ServiceError:
                log.warning("could not record the end of export %s", prepared.export_id)
                raise
            record = await self._store.get_export(prepared.principal.tenant, prepared.export_id)
            if record is None:  # begin_export wrote it; nothing deletes manifests
                raise ServiceError(grpc.StatusCode.INTERNAL, "MANIFEST_MISSING", "no manifest")
            return record

        task = asyncio.get_running_loop().create_task(close())
        self._closing[prepared.export_id] = task

        def done(task: asyncio.Task[ExportRecord]) -> None:
            self._closing.pop(prepared.export_id, None)
            if not task.cancelled():
                # Retrieved here (a cancelled export's manifest is never awaited; the
                # failure was logged above): no "Task exception was never retrieved".
                task.exception()

        task.add_done_callback(done)

    @staticmethod
    def _audit_entry(
        principal: Principal,
        query: ExportQuery,
        outcome: str,
        request_id: str | None,
        **detail: Any,
    ) -> AuditEntry:
        return AuditEntry(
            tenant=principal.tenant,
            subject=principal.subject,
            action="history.export",
            resource=f"asset/{query.asset_id}",
            outcome=outcome,
            request_id=request_id,
            detail={
                "start": query.start.astimezone(UTC).isoformat(),
                "end": query.end.astimezone(UTC).isoformat(),
                "tags": list(query.tags),
                "resolution_seconds": query.resolution_seconds,
                "encoding": query.encoding,
                **detail,
            },
        )

    async def close(self) -> None:
        """Let pending manifest and audit writes finish (graceful shutdown)."""
        if self._closing:
            await asyncio.gather(*list(self._closing.values()), return_exceptions=True)
