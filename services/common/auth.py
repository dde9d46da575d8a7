"""Token verification: every service checks the JWT itself, whatever the gateway did.

Signature against the issuer's JWKS, `exp`/`nbf`/`iss`/`aud`, an algorithm
allow-list (so `alg: none` and HS256-keyed-with-the-public-key confusion never
reach a verifier), and the `tenant`/`roles` claims the platform needs.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt

from services.common.errors import ServiceError, permission_denied, unauthenticated
from services.common.settings import Settings

_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


# The whole `Authorization` value ("Bearer " and the JWT). Tokens from real OIDC issuers are
# a few KiB at most (Entra ID replaces large group lists with an overage claim).
MAX_AUTHORIZATION_BYTES = 8 * 1024


def token_too_large_message() -> str:
    return (
        f"the token is larger than mlplane accepts ({MAX_AUTHORIZATION_BYTES:,} bytes for the "
        "Authorization header): ask the issuer for a token with fewer claims"
    )


def token_refusal(reason: str, settings: Settings) -> str:
    """What a caller is told for a refused token, by reason: the same words at the gateway
    (Envoy's own refusals are rewritten to these) and at the services, each saying what to
    do next."""
    if settings.dev_issuer_enabled:
        get_one = "mint one with `mlplane token --role data_scientist` (the dev stack's issuer)"
    else:
        get_one = f"get one from your identity provider ({settings.jwt_issuer})"
    messages = {
        "TOKEN_MISSING": f"no token: send the header `Authorization: Bearer <token>`; {get_one}",
        "TOKEN_MALFORMED": (
            "the token is not a JWT (three base64url parts joined by dots): send the token "
            "alone after `Bearer `"
        ),
        "TOKEN_EXPIRED": f"the token has expired: {get_one}",
        "TOKEN_NOT_YET_VALID": (
            "the token is not valid yet (its nbf is in the future): check the issuer's clock"
        ),
        "TOKEN_AUDIENCE": (
            f"the token is for another audience: mlplane accepts aud {settings.jwt_audience!r}"
        ),
        "TOKEN_ISSUER": (
            f"the token is from an untrusted issuer: mlplane accepts iss {settings.jwt_issuer!r}"
        ),
        "TOKEN_SIGNATURE": (
            f"the token's signature does not verify against the issuer's keys: {get_one}"
        ),
        "TOKEN_KEY_UNKNOWN": f"the token is signed by a key the issuer does not publish: {get_one}",
        "TOKEN_ROLES_MISSING": 'the token has no roles claim (a list such as ["data_scientist"])',
    }
    return messages[reason]


def role_refusal(method: str, allowed: frozenset[str]) -> str:
    """`UploadModel requires role data_scientist`: the same words at the gateway and the service."""
    return f"{method.rsplit('/', 1)[-1]} requires role {' or '.join(sorted(allowed))}"


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    subject: str
    tenant: str
    roles: frozenset[str]


current_principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    """The verified caller of the RPC being handled (set by the auth interceptor)."""
    principal = current_principal_var.get()
    if principal is None:
        raise RuntimeError("no principal: the method is not behind the auth interceptor")
    return principal


class JwksSource:
    """Public keys by `kid`, from a local JWKS file or a remote JWKS URL."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.jwt_jwks_url
        self._file = settings.jwks_file
        self._ttl = settings.jwks_cache_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = 0.0
        # Changes whenever the key set is reloaded; cached verifications from
        # before a reload (a rotation, a revoked key) are not trusted.
        self.loaded_at = 0.0
        self._file_mtime = 0.0
        self._lock = asyncio.Lock()

    async def refresh_if_stale(self) -> None:
        """Reload the key set if the file changed or the URL's cache expired."""
        if self._stale():
            async with self._lock:
                if self._stale():
                    await self._reload()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        async with self._lock:
            if self._stale():
                await self._reload()
            key = self._pick(kid)
            # An unknown kid may mean the issuer rotated keys: refetch once,
            # but not more than once a second, so junk tokens can't hammer it.
            if key is None and time.monotonic() - self._loaded_at > 1.0:
                await self._reload()
                key = self._pick(kid)
        if key is None:
            raise unauthenticated(
                "TOKEN_KEY_UNKNOWN", token_refusal("TOKEN_KEY_UNKNOWN", self._settings)
            )
        return key

    def _pick(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _stale(self) -> bool:
        if not self._keys:
            return True
        if self._url is None:
            try:
                return self._file.stat().st_mtime != self._file_mtime
            except OSError:
                return True
        return time.monotonic() - self._loaded_at > self._ttl

    async def _reload(self) -> None:
        try:
            document = await asyncio.to_thread(self._fetch)
        except (OSError, ValueError) as exc:
            if self._keys:
                return  # keep serving with the keys we have
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "JWKS_UNAVAILABLE",
                "cannot load the token issuer's keys",
            ) from exc
        keys: dict[str, jwt.PyJWK] = {}
        for index, entry in enumerate(document.get("keys", [])):
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # an unusable key must not take the others down
            keys[str(entry.get("kid", index))] = key
        self._keys = keys
        self._loaded_at = time.monotonic()
        self.loaded_at = self._loaded_at

    def _fetch(self) -> dict[str, Any]:
        if self._url is None:
            self._file_mtime = self._file.stat().st_mtime
            data: dict[str, Any] = json.loads(Path(self._file).read_text())
            return data
        # The URL is operator configuration, validated to be http(s) by Settings.
        request = urllib.request.Request(self._url, headers={"Accept": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            fetched: dict[str, Any] = json.loads(response.read())
            return fetched


class TokenVerifier:
    """Verifies tokens; a verified token is remembered until it expires (or the
    key set is reloaded), so a client's every call does not pay the signature
    check again. Only successes are cached: a bad token is checked every time."""

    _CACHE_SIZE = 4096
    _CACHE_SECONDS = 60.0

    def __init__(self, settings: Settings, keys: JwksSource | None = None) -> None:
        self._settings = settings
        self._keys = keys or JwksSource(settings)
        self._algorithms = list(settings.jwt_algorithms)
        self._verified: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        await self._keys.refresh_if_stale()
        cached = self._verified.get(token)
        now = time.time()
        if cached is not None:
            principal, expires, loaded_at = cached
            if now < expires and loaded_at == self._keys.loaded_at:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires = await self._verify(token)
        # A minute at most: a key removed from the JWKS stops working soon after.
        expires = min(expires, now + self._CACHE_SECONDS)
        self._verified[token] = (principal, expires, self._keys.loaded_at)
        if len(self._verified) > self._CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise self._refused("TOKEN_MALFORMED") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise unauthenticated(
                "TOKEN_ALGORITHM_REJECTED",
                f"token algorithm {alg!r} is not accepted (allowed: {', '.join(self._algorithms)})",
            )
        kid = header.get("kid")
        key = await self._keys.key_for(kid if isinstance(kid, str) else None)
        # Algorithm confusion: the key's own type must fit the header's alg.
        if key.key_type != _KEY_TYPES.get(alg[:2]):
            raise unauthenticated(
                "TOKEN_ALGORITHM_REJECTED", f"token algorithm {alg} does not match the key type"
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                leeway=self._settings.jwt_leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise self._refused("TOKEN_EXPIRED") from exc
        except jwt.ImmatureSignatureError as exc:
            raise self._refused("TOKEN_NOT_YET_VALID") from exc
        except jwt.InvalidAudienceError as exc:
            raise self._refused("TOKEN_AUDIENCE") from exc
        except jwt.InvalidIssuerError as exc:
            raise self._refused("TOKEN_ISSUER") from exc
        except jwt.InvalidSignatureError as exc:
            raise self._refused("TOKEN_SIGNATURE") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise unauthenticated(
                "TOKEN_CLAIM_MISSING", f"token lacks the {exc.claim} claim"
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise unauthenticated("TOKEN_INVALID", "token is invalid") from exc
        # exp is required and numeric (checked by decode); nbf/leeway only widen it.
        return _principal(claims, self._settings), float(claims["exp"])

    def _refused(self, reason: str) -> ServiceError:
        return unauthenticated(reason, token_refusal(reason, self._settings))

    def token_of(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
        """The bearer token of a call's metadata."""
        for key, value in metadata or ():
            if key == "authorization" and isinstance(value, str):
                if len(value.encode()) > MAX_AUTHORIZATION_BYTES:
                    # As the gateway refuses it: a caller reaching a service directly must
                    # not get further (nor cost a signature check) with what it would not.
                    raise unauthenticated("TOKEN_TOO_LARGE", token_too_large_message())
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return token.strip()
                raise self._refused("TOKEN_MALFORMED")
        raise self._refused("TOKEN_MISSING")


def _principal(claims: dict[str, Any], settings: Settings) -> Principal:
    subject = claims.get("sub")
    tenant = claims.get("tenant")
    roles = claims.get("roles")
    if not isinstance(subject, str) or not subject:
        raise unauthenticated("TOKEN_CLAIM_MISSING", "token lacks the sub claim")
    if not isinstance(tenant, str) or not tenant:
        raise unauthenticated("TOKEN_CLAIM_MISSING", "token lacks the tenant claim")
    if not _TENANT.match(tenant):
        # Tenant ids end up in object keys and audit rows: only plain identifiers.
        raise unauthenticated(
            "TOKEN_TENANT_INVALID", "token's tenant claim is not a valid tenant id"
        )
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise unauthenticated("TOKEN_CLAIM_MISSING", token_refusal("TOKEN_ROLES_MISSING", settings))
    return Principal(subject=subject, tenant=tenant, roles=frozenset(roles))


def require_role(principal: Principal, method: str, allowed: frozenset[str]) -> None:
    if not allowed:
        raise permission_denied("METHOD_NOT_MAPPED", f"{method} is not open to any role")
    if principal.roles.isdisjoint(allowed):
        raise permission_denied(
            "ROLE_REQUIRED",
            role_refusal(method, allowed),
            method=method.rsplit("/", 1)[-1],
            required=",".join(sorted(allowed)),
        )
