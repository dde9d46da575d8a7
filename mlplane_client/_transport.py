"""Channels, call metadata, deadlines and the retry rule.

Retry rule: only reads are retried, only on UNAVAILABLE, at most
`RetryPolicy.max_attempts` attempts with capped, jittered exponential backoff.
gRPC retries them (its retry policy, gRFC A6) from the service config that
`open_channel` gives the channel: a `retryPolicy` for each read the client
names, none for any other method, so uploads, submissions, decisions and
archives are never retried. Unary reads are retried as a whole; server streams
(export, download) only until gRPC commits the call on its response headers.
mlplane's services send those with the first message (an error before it is a
Trailers-Only response, still retryable), Envoy passes them on as they come and
answers a gRPC call it cannot route Trailers-Only too: so a stream is retried
only before its first message, because after that the data has started flowing
and a silent restart would hide a broken stream.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeAlias, TypeVar
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
# gRPC makes at most 5 attempts: it lowers a higher maxAttempts to 5 (gRFC A6, "Limits on
# Retries and Hedges"; MAX_MAX_RETRY_ATTEMPTS in grpc's retry_service_config.cc).
MAX_ATTEMPTS = 5
# gRPC keeps backoffs in whole milliseconds and wants them above 0. A retry whose delay comes out
# as 0 ms is never started: the call waits for its deadline, a stream without one forever
# (grpcio 1.85.3; cf. grpc/grpc#41036). Shorter backoffs count as this much, so the shortest
# delay (80 % of it, see RetryPolicy) stays well clear of 0 ms.
MIN_BACKOFF = 0.01


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
    """How reads are retried on UNAVAILABLE (by gRPC's retry policy).

    Attempt n (from 1) that fails waits `min(max_backoff, initial_backoff *
    multiplier ** (n - 1))` seconds, give or take 20 % (gRPC's jitter), before
    attempt n + 1; the call's deadline (`timeout=`) covers all attempts.
    Backoffs under 10 ms count as 10 ms, and gRPC makes at most 5 attempts.
    `RetryPolicy(max_attempts=1)` turns retries off.

    >>> RetryPolicy(max_attempts=3, initial_backoff=0, max_backoff=0.5).retry_policy()
    ... # doctest: +NORMALIZE_WHITESPACE
    {'maxAttempts': 3, 'initialBackoff': '0.010s', 'maxBackoff': '0.500s',
     'backoffMultiplier': 2.0, 'retryableStatusCodes': ['UNAVAILABLE']}
    >>> RetryPolicy(max_attempts=6)
    Traceback (most recent call last):
    ...
    ValueError: max_attempts is at most 5 (gRPC's limit), got 6
    """

    max_attempts: int = 4
    initial_backoff: float = 0.2
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_attempts > MAX_ATTEMPTS:
            raise ValueError(
                f"max_attempts is at most {MAX_ATTEMPTS} (gRPC's limit), got {self.max_attempts}"
            )
        for backoff in (self.initial_backoff, self.max_backoff):
            if not (math.isfinite(backoff) and backoff >= 0):
                raise ValueError(f"backoffs are seconds, 0 or more, got {backoff}")
        # A shrinking backoff would come down to 0 ms (see MIN_BACKOFF).
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1):
            raise ValueError(f"multiplier must be at least 1, got {self.multiplier}")

    def retry_policy(self) -> dict[str, Any]:
        """The `retryPolicy` of a method config (gRFC A6), for `max_attempts` >= 2."""
        return {
            "maxAttempts": self.max_attempts,
            # gRPC starts from initialBackoff even above maxBackoff; the rule above does not.
            "initialBackoff": _duration(min(self.initial_backoff, self.max_backoff)),
            "maxBackoff": _duration(self.max_backoff),
            "backoffMultiplier": float(self.multiplier),
            "retryableStatusCodes": ["UNAVAILABLE"],
        }

    def service_config(self, methods: Iterable[str]) -> str:
        """The channel's service config (JSON): this policy for each of `methods`
        (`package.Service/Method`), none for any other method.

        >>> RetryPolicy(max_attempts=1).service_config(["mlplane.v1.QueryService/ListAssets"])
        '{}'
        """
        names = [dict(zip(("service", "method"), m.split("/"), strict=True)) for m in methods]
        if self.max_attempts == 1 or not names:
            return "{}"
        return json.dumps({"methodConfig": [{"name": names, "retryPolicy": self.retry_policy()}]})


def _duration(seconds: float) -> str:
    """A proto3 JSON duration in whole milliseconds, at least MIN_BACKOFF.

    >>> _duration(0.2), _duration(0), _duration(2)
    ('0.200s', '0.010s', '2.000s')
    """
    return f"{max(seconds, MIN_BACKOFF):.3f}s"


def open_channel(
    target: Target,
    *,
    retry: RetryPolicy | None = None,
    reads: Iterable[str] = (),
    root_certificates: str | Path | bytes | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> grpc.Channel:
    """A channel to `target` on which gRPC retries the methods in `reads`
    (`package.Service/Method`) as `retry` says (default `RetryPolicy()`), and no
    others. It retries below the interceptors: they see each call once."""
    options: list[tuple[str, str | int]] = [
        ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ("grpc.max_send_message_length", MAX_SEND_BYTES),
        ("grpc.primary_user_agent", USER_AGENT),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", (retry or RetryPolicy()).service_config(reads)),
        # A service config from name resolution (DNS TXT) would replace this one.
        ("grpc.service_config_disable_resolution", 1),
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
    """Adds the token, a request id and the deadline to every call; turns
    `grpc.RpcError` into `MlplaneError`. (Retries are the channel's: `open_channel`.)"""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        token: str | None,
        timeout: float | None,
        stream_timeout: float | None,
        url: str = "",
    ) -> None:
        self.channel = channel
        self._token = token
        self.url = url
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    def metadata(self, request_id: str) -> tuple[tuple[str, str], ...]:
        items = [("x-request-id", request_id)]
        if self._token:
            items.append(("authorization", f"Bearer {self._token}"))
        return tuple(items)

    def error(self, error: grpc.RpcError, request_id: str) -> MlplaneError:
        return from_rpc_error(
            error, request_id=request_id, url=self.url, token_sent=bool(self._token)
        )

    def unary(self, method: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req) -> Resp:
        """One unary call (all its attempts share its request id and deadline)."""
        request_id = uuid.uuid4().hex
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata(request_id))
        except grpc.RpcError as error:
            raise self.error(error, request_id) from None

    def server_stream(
        self, method: grpc.UnaryStreamMultiCallable[Req, Resp], request: Req
    ) -> Stream[Resp]:
        """Start a server stream and wait for its first message (gRPC retries a
        read until then), so that a stream that cannot start raises here."""
        request_id = uuid.uuid4().hex
        call = method(request, timeout=self.stream_timeout, metadata=self.metadata(request_id))
        try:
            first = next(call, None)
        except grpc.RpcError as error:
            raise self.error(error, request_id) from None
        return Stream(call, first, request_id, self.error)

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
