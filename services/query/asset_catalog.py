"""The QueryService's asset catalog: which assets a caller may see, one asset, and an
asset's failure events (training labels), each read checked against the caller's grants.

No gRPC here: the servicer translates protobuf to these calls and back. A read a grant
refuses is audited before the 403 is raised.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.common.auth import Principal
from services.common.errors import not_found, permission_denied
from services.common.pagination import PageTokens, invalid_page_token, page_size
from services.query.grants import may_read
from services.query.request import FailureEventsQuery
from services.query.store import AssetRow, AuditEntry, FailureEventRow, HistoryStore


class AssetCatalog:
    def __init__(self, store: HistoryStore, page_tokens: PageTokens) -> None:
        self._store = store
        self._pages = page_tokens

    async def list_assets(
        self, principal: Principal, requested_size: int, token: str
    ) -> tuple[list[AssetRow], str]:
        size = page_size(requested_size, default=100)
        scope = {"tenant": principal.tenant, "method": "ListAssets", "size": size}
        after = self._pages.decode(token, scope) or ""
        if not isinstance(after, str):
            raise invalid_page_token()
        grants = await self._store.grants_for(principal.tenant)
        readable: list[AssetRow] = []
        # Grants filter in Python, so page through the tenant's assets until a
        # page of readable ones is full.
        while len(readable) < size:
            batch = await self._store.list_assets(principal.tenant, after=after, limit=size * 4)
            if not batch:
                after = ""
                break
            for asset in batch:
                after = asset.asset_id
                if may_read(grants, principal, asset.asset_id):
                    readable.append(asset)
                    if len(readable) == size:
                        break
            else:
                if len(batch) < size * 4:
                    after = ""
                    break
        next_token = self._pages.encode(after, scope) if after else ""
        return readable, next_token

    async def get_asset(
        self, principal: Principal, asset_id: str, *, request_id: str | None
    ) -> AssetRow:
        denied = AuditEntry(
            tenant=principal.tenant,
            subject=principal.subject,
            action="history.asset",
            resource=f"asset/{asset_id}",
            outcome="denied",
            request_id=request_id,
            detail={"reason": "no grant"},
        )
        return await self.readable_asset(principal, asset_id, denied=denied, with_range=True)

    async def readable_asset(
        self, principal: Principal, asset_id: str, *, denied: AuditEntry, with_range: bool = False
    ) -> AssetRow:
        """The asset, if it exists in the caller's tenant and a grant lets the
        caller read it; a denial is audited with `denied` before it is raised."""
        asset = await self._store.find_asset(principal.tenant, asset_id, with_range=with_range)
        if asset is None:
            raise not_found(
                "ASSET_NOT_FOUND", f"asset {asset_id!r} does not exist", assetId=asset_id
            )
        grants = await self._store.grants_for(principal.tenant)
        if not may_read(grants, principal, asset.asset_id):
            await self._store.audit(denied)
            raise permission_denied(
                "ASSET_NOT_GRANTED",
                f"you have no read grant for asset {asset.asset_id!r}",
                assetId=asset.asset_id,
            )
        return asset

    # --- failure events (training labels) ----------------------------------------
    async def list_failure_events(
        self,
        principal: Principal,
        query: FailureEventsQuery,
        requested_size: int,
        token: str,
        *,
        request_id: str | None,
    ) -> tuple[AssetRow, list[FailureEventRow], str]:
        """One page of an asset's failures, oldest first. Like an export, the
        read is audited (labels are production data too), and so is a denial."""
        size = page_size(requested_size, default=100)
        scope = {
            "tenant": principal.tenant,
            "method": "ListFailureEvents",
            "asset": query.asset_id,
            "start": _iso_or_none(query.start),
            "end": _iso_or_none(query.end),
            "size": size,
        }
        after = _event_position(self._pages.decode(token, scope))

        def entry(outcome: str, **detail: Any) -> AuditEntry:
            return AuditEntry(
                tenant=principal.tenant,
                subject=principal.subject,
                action="history.failure_events",
                resource=f"asset/{query.asset_id}",
                outcome=outcome,
                request_id=request_id,
                detail={"start": scope["start"], "end": scope["end"], **detail},
            )

        asset = await self.readable_asset(
            principal, query.asset_id, denied=entry("denied", reason="no grant")
        )
        # One more than a page tells whether there is a next page.
        rows = await self._store.list_failure_events(
            asset.asset_pk, start=query.start, end=query.end, after=after, limit=size + 1
        )
        page, more = rows[:size], len(rows) > size
        next_token = ""
        if more:
            last = page[-1]
            next_token = self._pages.encode(
                [last.start_time.astimezone(UTC).isoformat(), last.event_pk], scope
            )
        await self._store.audit(entry("completed", events=len(page)))
        return asset, page, next_token


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _event_position(decoded: Any) -> tuple[datetime, int] | None:
    """The (start_time, event_pk) a page token resumes after."""
    if decoded is None:
        return None
    try:
        when, pk = decoded
        return datetime.fromisoformat(when), int(pk)
    except (TypeError, ValueError) as exc:
        raise invalid_page_token() from exc
