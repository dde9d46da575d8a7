"""Signed, short-lived links: how a browser downloads without a bearer token.

A browser's download (an anchor, a navigation) cannot send an `Authorization` header, so the
service that would stream the file first signs a link: a payload saying who may fetch what,
until when, HMAC-SHA256'd under a key derived from the deployment's shared page-token secret
(every replica can check it) and a purpose (an export link is no model link). The link is the
credential of the request that carries it; nothing in it is trusted before its MAC checks, and
the roles it carries still go through the role table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

import grpc

from services.common.auth import Principal
from services.common.errors import ServiceError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_refused(message: str) -> ServiceError:
    # Bad, expired and used links are all "not authenticated": the link is the credential.
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, "LINK_INVALID", message)


class LinkSigner:
    def __init__(self, page_token_key: bytes, purpose: str) -> None:
        self._key = hmac.new(page_token_key, purpose.encode(), hashlib.sha256).digest()

    def sign(self, principal: Principal, expires: datetime, **payload: Any) -> str:
        body = json.dumps(
            {
                **payload,
                "t": principal.tenant,
                "s": principal.subject,
                "r": sorted(principal.roles),
                "x": int(expires.timestamp()),
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def verify(self, token: str, now: datetime) -> tuple[Principal, dict[str, Any]]:
        """The link's principal and payload; LINK_INVALID if forged, edited or expired."""
        try:
            body_text, mac_text = token.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError) as exc:
            raise link_refused("this download link is not valid; create a new one") from exc
        if not hmac.compare_digest(mac, self._mac(body)):
            raise link_refused("this download link is not valid; create a new one")
        payload: dict[str, Any] = json.loads(body)
        if now.timestamp() >= payload["x"]:
            raise link_refused("this download link has expired; create a new one")
        principal = Principal(
            subject=payload["s"], tenant=payload["t"], roles=frozenset(payload["r"])
        )
        return principal, payload

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()
