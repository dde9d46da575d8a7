"""Download links for one CSV export (see services/common/links.py for how links work).

Besides the caller, an export link carries the query (asset, range, tags, resolution) and the
export id the download will record. The id makes the link work once: a second download finds
its export recorded and is refused. The asset's grant is checked again when the download
starts, as the link's creator.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.auth import Principal
from services.common.links import LinkSigner, link_refused
from services.query.request import ExportQuery

LINK_PATH = "/api/v1/query/downloads/{export_id}?link={link}"


@dataclass(frozen=True)
class IssuedLink:
    export_id: str
    url: str
    expires: datetime


@dataclass(frozen=True)
class LinkGrant:
    """What a verified link lets its bearer do: this query, as this principal."""

    principal: Principal
    query: ExportQuery


class ExportLinks:
    def __init__(self, page_token_key: bytes, ttl: timedelta) -> None:
        self._signer = LinkSigner(page_token_key, "mlplane export link v1")
        self._ttl = ttl

    def issue(self, principal: Principal, query: ExportQuery, now: datetime) -> IssuedLink:
        export_id = str(uuid.uuid4())
        expires = now + self._ttl
        token = self._signer.sign(
            principal,
            expires,
            e=export_id,
            a=query.asset_id,
            start=query.start.astimezone(UTC).isoformat(),
            end=query.end.astimezone(UTC).isoformat(),
            g=list(query.tags),
            res=query.resolution_seconds,
        )
        return IssuedLink(export_id, LINK_PATH.format(export_id=export_id, link=token), expires)

    def verify(self, token: str, export_id: str, now: datetime) -> LinkGrant:
        principal, payload = self._signer.verify(token, now)
        if payload.get("e") != export_id:
            raise link_refused("this download link is for another export; create a new one")
        resolution = payload["res"]
        query = ExportQuery(
            asset_id=payload["a"],
            start=datetime.fromisoformat(payload["start"]),
            end=datetime.fromisoformat(payload["end"]),
            tags=tuple(payload["g"]),
            resolution=None if resolution is None else timedelta(seconds=resolution),
            encoding="csv",
        )
        return LinkGrant(principal, query)
