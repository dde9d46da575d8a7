"""Signed download links: one CSV export, for a browser that cannot send a bearer token.

A link carries everything the download needs, signed with HMAC-SHA256 under a key derived
from the deployment's shared page-token secret (so any replica can check it): the tenant,
subject and roles of whoever asked for it, the query (asset, range, tags, resolution), the
export id the download will record, and an expiry. The id makes a link work once: a second
download of it finds its export recorded and is refused. Nothing else about the caller is
trusted: the asset's grant is checked again when the download starts, as that caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from services.common.auth import Principal
from services.common.errors import ServiceError
from services.query.request import ExportQuery

_DOMAIN = b"mlplane export link v1"
LINK_PATH = "/api/v1/query/downloads/{export_id}?link={link}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


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


def _refused(message: str) -> ServiceError:
    # Bad, expired and used links are all "not authenticated": the link is the credential.
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, "LINK_INVALID", message)


class ExportLinks:
    def __init__(self, page_token_key: bytes, ttl: timedelta) -> None:
        self._key = hmac.new(page_token_key, _DOMAIN, hashlib.sha256).digest()
        self._ttl = ttl

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def issue(self, principal: Principal, query: ExportQuery, now: datetime) -> IssuedLink:
        export_id = str(uuid.uuid4())
        expires = now + self._ttl
        payload: dict[str, Any] = {
            "e": export_id,
            "t": principal.tenant,
            "s": principal.subject,
            "r": sorted(principal.roles),
            "a": query.asset_id,
            "from": query.start.astimezone(UTC).isoformat(),
            "to": query.end.astimezone(UTC).isoformat(),
            "g": list(query.tags),
            "res": query.resolution_seconds,
            "x": int(expires.timestamp()),
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        token = f"{_b64(body)}.{_b64(self._mac(body))}"
        return IssuedLink(export_id, LINK_PATH.format(export_id=export_id, link=token), expires)

    def verify(self, token: str, export_id: str, now: datetime) -> LinkGrant:
        try:
            body_text, mac_text = token.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError) as exc:
            raise _refused("this download link is not valid; create a new one") from exc
        if not hmac.compare_digest(mac, self._mac(body)):
            raise _refused("this download link is not valid; create a new one")
        payload = json.loads(body)
        if payload["e"] != export_id:
            raise _refused("this download link is for another export; create a new one")
        if now.timestamp() >= payload["x"]:
            raise _refused("this download link has expired; create a new one")
        resolution = payload["res"]
        query = ExportQuery(
            asset_id=payload["a"],
            start=datetime.fromisoformat(payload["from"]),
            end=datetime.fromisoformat(payload["to"]),
            tags=tuple(payload["g"]),
            resolution=None if resolution is None else timedelta(seconds=resolution),
            encoding="csv",
        )
        principal = Principal(
            subject=payload["s"], tenant=payload["t"], roles=frozenset(payload["r"])
        )
        return LinkGrant(principal, query)
