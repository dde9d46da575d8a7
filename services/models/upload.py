"""The upload pipeline: stream, hash, size-check, validate, store, record.

Ordering is what makes it lose nothing:
  1. metadata is validated and a (model id, storage slot) reserved: nothing stored
     yet, and nothing a user can see (the version number comes in step 5);
  2. bytes stream to the object store's invisible writer, which keeps them in
     a local file (the folder store's temporary file; S3's spool, which the
     parts are sent from) that validation reads; the size limit is enforced
     as it is crossed;
  3. the ONNX file is validated; a bad file aborts the writer: nothing stored;
  4. the writer commits: the object is durable;
  5. the version row commits with the next version number of the model, allocated
     in that transaction (refused uploads burn none), then the writer lets go of
     its local file. If recording fails, the row is read back: the object is
     deleted unless the row did commit after all (a lost COMMIT reply, a cancel
     right after it).
Any failure in between aborts the writer, so no object and no row remain, and
gives the storage slot back when no row can name it.

An evaluation set sent before the model's bytes (`evaluation_upload`) goes to a second
writer beside the model's in step 2, commits after it in step 4 and is aborted or
released with it; the version row names both, and queues the version's validation.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import grpc

from services.common.auth import Principal
from services.common.errors import ServiceError, invalid_argument, unavailable
from services.common.tasks import to_the_end
from services.models.evaluation_upload import (
    DEFAULT_LABEL_COLUMN,
    EvaluationChunk,
    ReceivedEvaluationSet,
    model_pieces,
    receive_evaluation_set,
)
from services.models.local_files import sweep_leftovers
from services.models.metadata import UploadMetadata
from services.models.object_store import (
    FolderStore,
    ObjectStore,
    ObjectWriter,
    S3Store,
    evaluation_key,
    object_key,
    store_unavailable,
)
from services.models.onnx_validation import OnnxSignature, validate_onnx_file
from services.models.repository import (
    EvaluationSetRecord,
    NewVersion,
    RegistryRepository,
    Reservation,
    VersionRecord,
)

log = logging.getLogger("mlplane.models.upload")


def too_large(limit: int) -> ServiceError:
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "MODEL_TOO_LARGE",
        f"the model is larger than the limit of {limit:,} bytes",
        metadata={"limitBytes": str(limit)},
        http_status=413,
    )


class Uploader:
    def __init__(
        self,
        repo: RegistryRepository,
        store: ObjectStore,
        *,
        max_bytes: int,
    ) -> None:
        self._repo = repo
        self._store = store
        self._max_bytes = max_bytes
        # The service is starting: files of uploads a previous process did not finish
        # (it was killed mid-upload) are removed now; nothing else would ever do it.
        for folder in _local_upload_folders(store):
            sweep_leftovers(folder)

    async def upload(
        self,
        principal: Principal,
        metadata: UploadMetadata,
        chunks: AsyncIterator[bytes | EvaluationChunk],
        *,
        request_id: str | None,
    ) -> VersionRecord:
        """Store the model whose bytes `chunks` brings, after the evaluation set's pieces
        (`EvaluationChunk`) when there is one. A refused or cancelled upload is audited."""
        async with self._repo.audit_log.failures(
            principal,
            "model.upload",
            f"model-name/{metadata.name}",
            request_id=request_id,
            audited=_refused_or_cancelled,
            detail=lambda _error: {"name": metadata.name},
        ):
            missing = await self._repo.versions.missing_exports(
                principal.tenant, metadata.training_export_ids
            )
            if missing:
                raise invalid_argument(
                    "UNKNOWN_EXPORT",
                    f"training export {missing[0]} does not exist in this tenant",
                    field="trainingExportIds",
                )
            reservation = await self._repo.models.reserve(principal.tenant, metadata.name)
            key = object_key(principal.tenant, reservation.model_id, reservation.slot)
            try:
                writer = await self._store.writer(key)
            except BaseException:
                await to_the_end(self._give_back(principal.tenant, metadata.name, reservation))
                raise
            committed = False
            evaluation: ReceivedEvaluationSet | None = None
            try:
                pieces = aiter(chunks)
                first = await anext(pieces, None)
                if isinstance(first, EvaluationChunk):
                    evaluation_writer = await self._store.writer(evaluation_key(key))
                    try:
                        evaluation, first = await receive_evaluation_set(
                            first, pieces, evaluation_writer
                        )
                    except BaseException:
                        await to_the_end(evaluation_writer.abort())
                        raise
                digest, size = await self._stream(model_pieces(first, pieces), writer)
                if size == 0:
                    raise invalid_argument("EMPTY_FILE", "the uploaded file is empty", field="file")
                sha256 = digest.hexdigest()
                if metadata.sha256 is not None and metadata.sha256 != sha256:
                    raise invalid_argument(
                        "SHA256_MISMATCH",
                        f"the file's SHA-256 is {sha256}, not the declared {metadata.sha256}",
                        field="sha256",
                    )
                signature = await asyncio.to_thread(validate_onnx_file, writer.local_path, size)
                await writer.commit()
                committed = True
                if evaluation is not None:
                    await evaluation.writer.commit()
                new = NewVersion(
                    tenant=principal.tenant,
                    name=metadata.name,
                    reservation=reservation,
                    description=metadata.description,
                    labels=metadata.labels,
                    metrics=metadata.metrics,
                    training_export_ids=metadata.training_export_ids,
                    storage_key=key,
                    sha256=sha256,
                    size_bytes=size,
                    signature=_signature_json(signature),
                    created_by=principal.subject,
                    evaluation=_evaluation_record(key, evaluation, metadata),
                )
                version = await self._repo.record_version(new, request_id=request_id)
            except BaseException:
                # Before `commit` no row can exist; after it, ask the database.
                row = (
                    await to_the_end(self._row_for(principal.tenant, reservation, key))
                    if committed
                    else "none"
                )
                writers = [writer] + ([evaluation.writer] if evaluation is not None else [])
                for each in writers:
                    if row == "stored":
                        # The row committed although the call failed after it (a cancel, or a
                        # reply lost during COMMIT): the objects stay with their row.
                        await to_the_end(each.release())
                    else:
                        # Also after `commit`: no row names the objects, so they must go.
                        await to_the_end(each.abort())
                if row == "none":
                    # Certainly no row: the slot may serve the next upload of the name.
                    await to_the_end(self._give_back(principal.tenant, metadata.name, reservation))
                raise
            await writer.release()
            if evaluation is not None:
                await evaluation.writer.release()
            record = await self._repo.versions.get(principal.tenant, reservation.model_id, version)
            assert record is not None
            return record

    async def _row_for(
        self, tenant: str, reservation: Reservation, key: str
    ) -> Literal["stored", "none", "unknown"]:
        """Whether a version row names `key` after `record_version` failed. When that
        cannot be told the object goes, as for a failed row, and its key is logged."""
        try:
            found = await self._repo.versions.stored_at(tenant, reservation.model_id, key)
        except Exception:
            log.error("could not tell whether version row for %s committed; removing it", key)
            return "unknown"
        return "none" if found is None else "stored"

    async def _give_back(self, tenant: str, name: str, reservation: Reservation) -> None:
        """Return a failed upload's storage slot, so keys keep matching versions. Best
        effort: a slot not given back only makes later keys run ahead of their versions."""
        try:
            await self._repo.models.release_slot(tenant, name, reservation)
        except Exception:
            log.warning("could not give back storage slot %s of %s", reservation.slot, name)

    async def _stream(
        self, chunks: AsyncIterator[bytes], writer: ObjectWriter
    ) -> tuple[hashlib._Hash, int]:
        digest = hashlib.sha256()
        size = 0

        def hash_and_write(block: list[bytes]) -> None:
            # Hashing and writing release the GIL: off the event loop, they
            # overlap receiving the next block.
            for piece in block:
                digest.update(piece)
            writer.write(block)

        async for block in _blocks(chunks, self._max_bytes):
            size += sum(map(len, block))
            try:
                await asyncio.to_thread(hash_and_write, block)
            except OSError as exc:
                log.error("could not write an upload's local file: %s", exc)
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise unavailable(
                        "STORAGE_FULL",
                        "the server has no disk space left for the upload; nothing was stored",
                    ) from exc
                raise store_unavailable() from exc
            await writer.written()
        return digest, size


# Pieces arrive as the client and Envoy cut them (16 KiB to 1 MiB); each block
# costs a thread hop, so pieces are gathered into blocks of about this size.
# A block stays a list of the pieces: hashed piece by piece and written with
# one writev, nothing is copied to join them.
BLOCK_BYTES = 4 * 1024 * 1024


async def _blocks(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[list[bytes]]:
    """The stream's pieces in lists of about BLOCK_BYTES; over `max_bytes`
    raises as soon as the piece that crosses it arrives."""
    pending: list[bytes] = []
    pending_bytes = total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise too_large(max_bytes)
        if not chunk:
            continue
        pending.append(chunk)
        pending_bytes += len(chunk)
        if pending_bytes >= BLOCK_BYTES:
            yield pending
            pending, pending_bytes = [], 0
    if pending:
        yield pending


def _refused_or_cancelled(error: BaseException) -> bool:
    return isinstance(error, ServiceError | asyncio.CancelledError)


def _local_upload_folders(store: ObjectStore) -> list[Path]:
    """Where the store keeps uploads' local files: the folder store's temporary files,
    S3's spools (their idle ones are the store's own business: `SpoolFiles.clear_idle`)."""
    if isinstance(store, FolderStore):
        return [store.root / ".incoming"]
    if isinstance(store, S3Store):
        return [store.spools.directory]
    return []


def _evaluation_record(
    model_key: str, evaluation: ReceivedEvaluationSet | None, metadata: UploadMetadata
) -> EvaluationSetRecord | None:
    if evaluation is None:
        return None
    return EvaluationSetRecord(
        storage_key=evaluation_key(model_key),
        sha256=evaluation.sha256,
        size_bytes=evaluation.size_bytes,
        label_column=metadata.evaluation_label_column or DEFAULT_LABEL_COLUMN,
    )


def _signature_json(signature: OnnxSignature) -> dict[str, object]:
    return asdict(signature)
