"""Channels, call metadata, deadlines and the retry rule.

Retry rule: only idempotent reads are retried, only on UNAVAILABLE, at most
`RetryPolicy.max_attempts` attempts with capped, jittered exponential backoff.
Unary reads (List*/Get*) are retried as a whole; server streams (export,
download) only until their first message arrives, because after that the data
has started flowing and a silent restart would hide a broken stream. Uploads,
submissions, decisions and archives are never retried.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeAlias, TypeVar
from urllib.parse import urlsplit

import grpc

from mlplane_client.errors import MlplaneError, from_rpc_error

if TYPE_CHECKING:
    Interceptor: TypeAlias = (
        grpc.UnaryUnaryClientInterceptor
        | grpc.UnaryStreamClientInterceptor
        | grpc.StreamUnaryClientInterceptor
        | grpc.StreamStreamClientInterceptor
    )

Req = TypeVar("Req")
Resp = TypeVar("Resp")

USER_AGENT = "mlplane-client/0.1"
# The services send messages of up to 8 MiB; leave headroom.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
MAX_SEND_BYTES = 16 * 1024 * 1024


class Closing:
    """`with x:` closes `x` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Target:
    """Where to connect: `host:port`, and whether to use TLS."""

    address: str
    tls: bool

    @property
    def url(self) -> str:
        """As a URL, the way errors name it.

        >>> Target("localhost:8080", False).url
        'http://localhost:8080'
        """
        return f"{'https' if self.tls else 'http'}://{self.address}"


_SCHEME = re.compile(r"^bearer\s+", re.IGNORECASE)


def clean_token(token: str | None) -> str | None:
    """The JWT alone: surrounding blanks and newlines and a leading `Bearer `
    (any case) dropped, the way it is often pasted; None when nothing is left.

    >>> clean_token("  Bearer eyJh.eyJz.c2ln\\n")
    'eyJh.eyJz.c2ln'
    >>> clean_token("bearer   eyJh.eyJz.c2ln"), clean_token(" "), clean_token(None)
    ('eyJh.eyJz.c2ln', None, None)
    """
    if token is None:
        return None
    return _SCHEME.sub("", token.strip()).strip() or None


def parse_target(url: str, tls: bool | None = None) -> Target:
    """Accept `host:port`, `http://host[:port]` or `https://host[:port]`.

    A scheme decides TLS (`https` on, `http` off); for a bare `host:port` the
    `tls` argument does. A path after the authority is ignored.

    >>> parse_target("localhost:8080")
    Target(address='localhost:8080', tls=False)
    >>> parse_target("https://mlplane.example.com")
    Target(address='mlplane.example.com:443', tls=True)
    >>> parse_target("http://127.0.0.1:8080/")
    Target(address='127.0.0.1:8080', tls=False)
    """
    text = url.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r}: use http://, https:// or host:port")
        secure = parts.scheme == "https"
        if tls is not None and tls != secure:
            raise ValueError(f"{url!r} says TLS is {'on' if secure else 'off'}, but tls={tls}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return Target(f"{host}:{parts.port or (443 if secure else 80)}", secure)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected host:port or an http(s):// URL, got {url!r}")
    return Target(text, bool(tls))


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent reads are retried on UNAVAILABLE.

    Attempt n (from 1) that fails waits `uniform(0, min(max_backoff,
    initial_backoff * multiplier ** (n - 1)))` seconds before attempt n + 1.
    `RetryPolicy(max_attempts=1)` turns retries off.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return random.uniform(0, ceiling) if ceiling > 0 else 0.0  # noqa: S311 (jitter, not crypto)


def open_channel(
    target: Target,
    *,
    root_certificates: str | Path | bytes | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.primary_user_agent", USER_AGENT),
    ]
    if target.tls:
        roots = root_certificates
        if isinstance(roots, str | Path):
            roots = Path(roots).read_bytes()
        channel = grpc.secure_channel(
            target.address, grpc.ssl_channel_credentials(root_certificates=roots), options
        )
    else:
        channel = grpc.insecure_channel(target.address, options)
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


class Transport:
    """Adds the token, a request id and the deadline to every call; applies the
    retry rule; turns `grpc.RpcError` into `MlplaneError`."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        token: str | None,
        timeout: float | None,
        stream_timeout: float | None,
        retry: RetryPolicy,
        url: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.channel = channel
        self._token = token
        self.url = url
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._retry = retry
        self._sleep = sleep

    def metadata(self, request_id: str) -> tuple[tuple[str, str], ...]:
        items = [("x-request-id", request_id)]
        if self._token:
            items.append(("authorization", f"Bearer {self._token}"))
        return tuple(items)

    def _attempts(self, idempotent: bool) -> int:
        return self._retry.max_attempts if idempotent else 1

    def error(self, error: grpc.RpcError, request_id: str) -> MlplaneError:
        return from_rpc_error(
            error, request_id=request_id, url=self.url, token_sent=bool(self._token)
        )

    def unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool,
    ) -> Resp:
        request_id = uuid.uuid4().hex
        attempts = self._attempts(idempotent)
        for attempt in range(1, attempts + 1):
            try:
                return method(request, timeout=self.timeout, metadata=self.metadata(request_id))
            except grpc.RpcError as error:
                if attempt < attempts and error.code() == grpc.StatusCode.UNAVAILABLE:
                    self._sleep(self._retry.delay(attempt))
                    continue
                raise self.error(error, request_id) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def server_stream(
        self,
        method: grpc.UnaryStreamMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool,
    ) -> Stream[Resp]:
        """Start a server stream and wait for its first message (retrying an
        idempotent one on UNAVAILABLE until then)."""
        request_id = uuid.uuid4().hex
        attempts = self._attempts(idempotent)
        for attempt in range(1, attempts + 1):
            call = method(request, timeout=self.stream_timeout, metadata=self.metadata(request_id))
            try:
                first = next(call, None)
            except grpc.RpcError as error:
                if attempt < attempts and error.code() == grpc.StatusCode.UNAVAILABLE:
                    self._sleep(self._retry.delay(attempt))
                    continue
                raise self.error(error, request_id) from None
            return Stream(call, first, request_id, self.error)
        raise AssertionError("unreachable")  # pragma: no cover

    def client_stream(
        self,
        method: grpc.StreamUnaryMultiCallable[Req, Resp],
        requests: Iterator[Req],
    ) -> Resp:
        """A client stream (upload): never retried, the iterator is consumed once."""
        request_id = uuid.uuid4().hex
        try:
            return method(requests, timeout=self.stream_timeout, metadata=self.metadata(request_id))
        except grpc.RpcError as error:
            raise self.error(error, request_id) from None


class Stream(Closing, Iterator[Resp]):
    """The messages of a started server stream, errors translated; `close()`
    cancels it (also done when iteration stops early inside a `with`)."""

    def __init__(
        self,
        call: grpc._CallIterator[Resp],
        first: Resp | None,
        request_id: str,
        translate: Callable[[grpc.RpcError, str], MlplaneError],
    ):
        self._call = call
        self._pending = first
        self._done = first is None
        self.request_id = request_id
        self._translate = translate

    def __next__(self) -> Resp:
        if self._pending is not None:
            message, self._pending = self._pending, None
            return message
        if self._done:
            raise StopIteration
        try:
            return next(self._call)
        except StopIteration:
            self._done = True
            raise
        except grpc.RpcError as error:
            self._done = True
            raise self._translate(error, self.request_id) from None

    def initial_metadata(self) -> dict[str, str]:
        return _text_items(self._call.initial_metadata())

    def trailing_metadata(self) -> dict[str, str]:
        return _text_items(self._call.trailing_metadata())

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._call.cancel()


def _text_items(items: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {k: v for k, v in items or () if isinstance(v, str)}
