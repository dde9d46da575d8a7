"""Good and deliberately bad JWTs for the security tests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.devkeys import mint_token
from services.common.settings import Settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@dataclass
class Tokens:
    settings: Settings

    def valid(self, *roles: str, subject: str = "alice", tenant: str = "demo", **kw: object) -> str:
        return mint_token(
            self.settings,
            subject=subject,
            tenant=tenant,
            roles=roles or ("data_scientist",),
            **kw,  # type: ignore[arg-type]
        )

    def headers(self, *roles: str, **claims: object) -> dict[str, str]:
        """REST headers carrying a valid token: roles and claims as `valid` takes them."""
        return {"Authorization": f"Bearer {self.valid(*roles, **claims)}"}  # type: ignore[arg-type]

    def metadata(self, *roles: str, **claims: object) -> tuple[tuple[str, str], ...]:
        """gRPC metadata carrying a valid token: roles and claims as `valid` takes them."""
        return (("authorization", f"Bearer {self.valid(*roles, **claims)}"),)  # type: ignore[arg-type]

    def kid(self) -> str:
        return str(json.loads(self.settings.jwks_file.read_text())["keys"][0]["kid"])

    def public_pem(self) -> bytes:
        jwk = json.loads(self.settings.jwks_file.read_text())["keys"][0]
        key = jwt.PyJWK(jwk).key
        return key.public_bytes(  # type: ignore[no-any-return,union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _claims(self, **overrides: object) -> dict[str, object]:
        token = self.valid("data_scientist")
        claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
        claims.update(overrides)
        return claims

    # --- the rejected ones -------------------------------------------------
    def expired(self) -> str:
        return self.valid("data_scientist", ttl_seconds=-3600)

    def wrong_issuer(self) -> str:
        return self.valid("data_scientist", issuer="https://evil.invalid/")

    def wrong_audience(self) -> str:
        return self.valid("data_scientist", audience="someone-else")

    def other_key(self) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return jwt.encode(self._claims(), pem, algorithm="RS256", headers={"kid": self.kid()})

    def edited_claims(self) -> str:
        header, payload, signature = self.valid("data_scientist").split(".")
        claims = json.loads(_unb64(payload))
        claims["roles"] = ["data_scientist", "model_approver"]
        claims["sub"] = "mallory"
        return ".".join([header, _b64(json.dumps(claims).encode()), signature])

    def alg_none(self) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": self.kid()}
        return ".".join(
            [_b64(json.dumps(header).encode()), _b64(json.dumps(self._claims()).encode()), ""]
        )

    def hs256_with_public_key(self) -> str:
        # The classic confusion attack: HMAC "signed" with the issuer's public key.
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid()}
        signing_input = ".".join(
            [_b64(json.dumps(header).encode()), _b64(json.dumps(self._claims()).encode())]
        )
        mac = hmac.new(self.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    def wrong_role(self) -> str:
        return self.valid("plant_operator")

    def not_yet_valid(self, *roles: str) -> str:
        """Correctly signed, but `nbf` an hour ahead (far beyond the clock-skew leeway)."""
        now = int(time.time())
        claims = self._claims(
            nbf=now + 3600, exp=now + 7200, roles=list(roles or ["data_scientist"])
        )
        key = self.settings.dev_private_key_file.read_bytes()
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid()})

    def missing_claim(self, claim: str, *roles: str) -> str:
        return self.valid(*roles, omit={claim})


# Tokens every gate must answer 401 / UNAUTHENTICATED.
UNAUTHENTICATED_CASES: dict[str, Callable[[Tokens], str]] = {
    "expired": Tokens.expired,
    "wrong_issuer": Tokens.wrong_issuer,
    "other_key": Tokens.other_key,
    "edited_claims": Tokens.edited_claims,
    "alg_none": Tokens.alg_none,
    "hs256_public_key": Tokens.hs256_with_public_key,
}
