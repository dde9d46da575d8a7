"""Reading the registry: models, versions, and their bytes, tenant-scoped.

Another tenant's model is reported exactly like a model that does not exist.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.common.auth import Principal
from services.common.errors import invalid_argument, not_found
from services.common.pagination import Page, PageTokens, invalid_page_token, page_of, page_size
from services.models.object_store import ObjectStore
from services.models.repository import (
    AuditRecord,
    ModelRecord,
    RegistryRepository,
    ValidationRecord,
    VersionRecord,
)
from services.models.workflow import STATUSES

_CLAUSE = re.compile(r'^\s*(name|status)\s*(=|:)\s*(?:"([^"\\]*)"|([A-Za-z0-9_.-]+))\s*$')


@dataclass(frozen=True)
class ModelFilter:
    name: str | None = None  # exact
    contains: str | None = None  # part of the name, any case
    status: str | None = None  # of the newest version


def parse_model_filter(text: str) -> ModelFilter:
    """`name = "churn"`, `name:"pump"` (contains), `status = APPROVED`, joined with AND
    (a subset of AIP-160)."""
    name = contains = status = None
    # Envoy's transcoder does not turn '+' back into a space in query strings, and
    # browsers send spaces as '+'. No valid filter contains a literal '+'.
    text = text.replace("+", " ")
    if not text.strip():
        return ModelFilter()
    for clause in re.split(r"\s+AND\s+", text.strip()):
        match = _CLAUSE.match(clause)
        if match is None or (match.group(1) == "status" and match.group(2) == ":"):
            raise invalid_argument(
                "INVALID_FILTER",
                'filter supports name = "…", name:"…" (contains) and status = '
                "PENDING_APPROVAL|IN_REVIEW|APPROVED|REJECTED|ARCHIVED, joined with AND",
                field="filter",
            )
        key, operator = match.group(1), match.group(2)
        value = match.group(3) if match.group(3) is not None else match.group(4)
        if key == "name" and operator == ":":
            contains = value.lower()
        elif key == "name":
            name = value
        else:
            value = value.upper()
            if value not in STATUSES:
                raise invalid_argument(
                    "INVALID_FILTER", f"unknown status {value!r} in filter", field="filter"
                )
            status = value
    return ModelFilter(name=name, contains=contains, status=status)


def _model_uuid(model_id: str) -> str:
    try:
        return str(uuid.UUID(model_id))
    except ValueError as exc:
        raise invalid_argument(
            "INVALID_MODEL_ID", "model_id must be a model id (a UUID)", field="modelId"
        ) from exc


def _missing_model(model_id: str) -> Exception:
    return not_found("MODEL_NOT_FOUND", f"model {model_id} does not exist", modelId=model_id)


class Catalog:
    def __init__(self, repo: RegistryRepository, store: ObjectStore, pages: PageTokens) -> None:
        self._repo = repo
        self._store = store
        self._pages = pages

    async def list_models(
        self, principal: Principal, requested_size: int, token: str, filter_text: str
    ) -> Page[ModelRecord]:
        size = page_size(requested_size)
        wanted = parse_model_filter(filter_text)
        scope = {"t": principal.tenant, "m": "ListModels", "f": filter_text, "s": size}
        after = self._pages.decode(token, scope) or ""
        rows = await self._repo.models.page(
            principal.tenant,
            after=str(after),
            limit=size + 1,
            name=wanted.name,
            contains=wanted.contains,
            status=wanted.status,
        )
        return page_of(rows, size, lambda model: self._pages.encode(model.name, scope))

    async def get_model(self, principal: Principal, model_id: str) -> ModelRecord:
        record = await self._repo.models.get(principal.tenant, _model_uuid(model_id))
        if record is None:
            raise _missing_model(model_id)
        return record

    async def list_versions(
        self, principal: Principal, model_id: str, requested_size: int, token: str
    ) -> Page[VersionRecord]:
        await self.get_model(principal, model_id)
        size = page_size(requested_size)
        scope = {"t": principal.tenant, "m": "ListModelVersions", "id": model_id, "s": size}
        before = self._pages.decode(token, scope)
        rows = await self._repo.versions.page(
            principal.tenant,
            _model_uuid(model_id),
            before=int(before) if before is not None else 2**62,
            limit=size + 1,
        )
        return page_of(rows, size, lambda version: self._pages.encode(version.version, scope))

    async def get_version(self, principal: Principal, model_id: str, version: int) -> VersionRecord:
        if version < 1:
            raise invalid_argument("INVALID_VERSION", "version must be 1 or more", field="version")
        record = await self._repo.versions.get(principal.tenant, _model_uuid(model_id), version)
        if record is None:
            if await self._repo.models.get(principal.tenant, _model_uuid(model_id)) is None:
                raise _missing_model(model_id)
            raise not_found(
                "VERSION_NOT_FOUND",
                f"model {model_id} has no version {version}",
                modelId=model_id,
                version=str(version),
            )
        return record

    async def get_validation(
        self, principal: Principal, model_id: str, version: int
    ) -> ValidationRecord:
        record = await self._repo.validation_jobs.report(
            principal.tenant, _model_uuid(model_id), version
        )
        if record is None:
            await self.get_version(principal, model_id, version)  # the version's own 404
            raise not_found(
                "VALIDATION_NOT_FOUND",
                f"version {version} of model {model_id} has no validation report",
                modelId=model_id,
                version=str(version),
            )
        return record

    async def audit_entries(
        self, principal: Principal, model_id: str, version: int, requested_size: int, token: str
    ) -> Page[AuditRecord]:
        """A version's audit trail, newest first; another tenant's version is a 404."""
        await self.get_version(principal, model_id, version)
        size = page_size(requested_size)
        scope = {"t": principal.tenant, "m": "ListAuditEntries", "id": model_id, "v": version}
        scope["s"] = size
        before = self._pages.decode(token, scope)
        if before is not None and not isinstance(before, int):
            raise invalid_page_token()
        rows = await self._repo.audit_log.for_version(
            principal.tenant,
            _model_uuid(model_id),
            version,
            before=before if before is not None else 2**62,
            limit=size + 1,
        )
        return page_of(rows, size, lambda row: self._pages.encode(row.audit_pk, scope))

    async def content(
        self, principal: Principal, model_id: str, version: int
    ) -> tuple[VersionRecord, AsyncIterator[bytes]]:
        record = await self.get_version(principal, model_id, version)
        return record, self._store.read(record.storage_key)
