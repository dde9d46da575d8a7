"""Opaque, tamper-proof page tokens (AIP-158).

A token is the position to resume after plus a fingerprint of the query it
belongs to, signed with HMAC-SHA256. A forged, altered, other-query or
other-tenant token is rejected with INVALID_ARGUMENT instead of silently
paging through something else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from typing import Any

from services.common.errors import invalid_argument
from services.common.settings import Settings

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ensure_page_token_key(settings: Settings) -> bytes:
    """The signing key: from settings, else a key file in the state folder (made once)."""
    if settings.page_token_secret:
        return settings.page_token_secret.encode()
    path = settings.page_token_key_file
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _fingerprint(self, scope: dict[str, Any]) -> str:
        canonical = json.dumps(scope, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]

    def encode(self, position: Any, scope: dict[str, Any]) -> str:
        body = json.dumps({"p": position, "s": self._fingerprint(scope)}).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return f"{_b64(body)}.{_b64(mac)}"

    def decode(self, token: str, scope: dict[str, Any]) -> Any:
        """The position stored in `token`, or None for an empty token."""
        if not token:
            return None
        try:
            body_text, mac_text = token.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except (ValueError, TypeError) as exc:
            raise _bad_token() from exc
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            raise _bad_token()
        data = json.loads(body)
        if data.get("s") != self._fingerprint(scope):
            raise invalid_argument(
                "PAGE_TOKEN_MISMATCH",
                "page_token belongs to a different query; repeat the same filter and page size",
                field="pageToken",
            )
        return data.get("p")


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE) -> int:
    if requested < 0:
        raise invalid_argument(
            "INVALID_PAGE_SIZE", "page_size must not be negative", field="pageSize"
        )
    return min(requested or default, MAX_PAGE_SIZE)


def _bad_token() -> Exception:
    return invalid_argument("INVALID_PAGE_TOKEN", "page_token is not valid", field="pageToken")
