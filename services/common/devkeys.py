"""The embedded dev issuer: a signing key and JWKS in the state folder.

Only used when no real issuer (`MLPLANE_JWT_JWKS_URL`) is configured.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.settings import Settings


class RealIssuerConfigured(RuntimeError):
    """Dev tokens are refused once a real issuer is configured."""


def ensure_dev_keys(settings: Settings) -> None:
    """Create the dev key pair and JWKS once; later starts reuse them."""
    key_file, jwks_file = settings.dev_private_key_file, settings.jwks_file
    if key_file.exists() and jwks_file.exists():
        return
    key_file.parent.mkdir(parents=True, exist_ok=True)
    # Envoy reads the JWKS beside the key; the key itself is 0600.
    os.chmod(key_file.parent, 0o755)  # noqa: S103
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_file, pem)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key()))
    jwk.update({"kid": f"dev-{uuid.uuid4().hex[:12]}", "alg": "RS256", "use": "sig"})
    tmp = jwks_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [jwk]}, indent=2))
    tmp.chmod(0o644)
    tmp.replace(jwks_file)


def mint_token(
    settings: Settings,
    *,
    subject: str,
    tenant: str | None,
    roles: Iterable[str],
    ttl_seconds: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
    omit: set[str] | None = None,
) -> str:
    if not settings.dev_issuer_enabled:
        raise RealIssuerConfigured(
            "a real issuer is configured (MLPLANE_JWT_JWKS_URL); get a token from it instead"
        )
    if not settings.dev_private_key_file.exists():
        raise FileNotFoundError(
            f"no dev signing key in {settings.state_dir}: start the stack with `make up` in the "
            "project folder, or set MLPLANE_STATE_DIR to a running stack's state folder"
        )
    key = settings.dev_private_key_file.read_bytes()
    kid = json.loads(settings.jwks_file.read_text())["keys"][0]["kid"]
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": issuer or settings.jwt_issuer,
        "aud": audience or settings.jwt_audience,
        "sub": subject,
        "iat": now,
        "nbf": min(now, now + ttl_seconds),
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "roles": list(roles),
    }
    if tenant is not None:
        claims["tenant"] = tenant
    for claim in omit or ():
        claims.pop(claim, None)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
