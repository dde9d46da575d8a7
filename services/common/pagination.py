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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from services.common.errors import ServiceError, invalid_argument
from services.common.settings import Settings

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# A page stops early, with a next_page_token, once its messages reach this size: the largest
# records (a version with its signature, labels, metrics and history) times the largest page
# would not fit a gRPC message (the services send at most 8 MiB), nor a browser's patience.
PAGE_BYTE_BUDGET = 4 * 1024 * 1024

T = TypeVar("T")
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of records, and how to resume after any of them."""

    items: list[T]
    more: bool  # records exist after the last item
    resume_after: Callable[[T], str]

    def fit(self, convert: Callable[[T], M], budget: int = PAGE_BYTE_BUDGET) -> tuple[list[M], str]:
        """The items as messages, cut once they reach `budget` bytes (never below one),
        and the token of the next page ("" on the last)."""
        messages: list[M] = []
        used = 0
        for item in self.items:
            message = convert(item)
            size = message.ByteSize()
            if messages and used + size > budget:
                break
            messages.append(message)
            used += size
        if len(messages) < len(self.items) or (self.more and messages):
            return messages, self.resume_after(self.items[len(messages) - 1])
        return messages, ""


def page_of(rows: Sequence[T], size: int, resume_after: Callable[[T], str]) -> Page[T]:
    """A page from `size + 1` fetched rows: the extra row only says that more exist."""
    return Page(list(rows[:size]), len(rows) > size, resume_after)


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
            raise invalid_page_token() from exc
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            raise invalid_page_token()
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
            "INVALID_PAGE_SIZE", "pageSize must not be negative", field="pageSize"
        )
    return min(requested or default, MAX_PAGE_SIZE)


def invalid_page_token() -> ServiceError:
    """A token that was not made by a previous page of the same query."""
    return invalid_argument(
        "INVALID_PAGE_TOKEN",
        "pageToken is not valid: pass back the nextPageToken of the previous page unchanged",
        field="pageToken",
    )
