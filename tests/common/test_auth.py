"""TokenVerifier against good and bad tokens, without any server."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from services.common.auth import TokenVerifier, require_role, token_refusal
from services.common.devkeys import RealIssuerConfigured, ensure_dev_keys, mint_token
from services.common.errors import ServiceError
from services.common.settings import Settings
from tests.tokens import UNAUTHENTICATED_CASES, Tokens


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(state_dir=tmp_path)
    ensure_dev_keys(s)
    return s


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens(settings)


async def test_valid_token_gives_principal(settings: Settings, tokens: Tokens) -> None:
    principal = await TokenVerifier(settings).verify(
        tokens.valid("data_scientist", "model_approver", subject="bob", tenant="plant-7")
    )
    assert principal.subject == "bob"
    assert principal.tenant == "plant-7"
    assert principal.roles == {"data_scientist", "model_approver"}


@pytest.mark.parametrize("case", sorted(UNAUTHENTICATED_CASES))
async def test_bad_tokens_are_unauthenticated(
    settings: Settings, tokens: Tokens, case: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await TokenVerifier(settings).verify(UNAUTHENTICATED_CASES[case](tokens))
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.reason.startswith("TOKEN_")


async def test_wrong_audience_is_unauthenticated(settings: Settings, tokens: Tokens) -> None:
    with pytest.raises(ServiceError) as caught:
        await TokenVerifier(settings).verify(tokens.wrong_audience())
    assert caught.value.reason == "TOKEN_AUDIENCE"


@pytest.mark.parametrize("claim", ["tenant", "roles", "sub", "exp"])
async def test_missing_claims_are_rejected(settings: Settings, claim: str) -> None:
    token = mint_token(settings, subject="a", tenant="demo", roles=["data_scientist"], omit={claim})
    with pytest.raises(ServiceError) as caught:
        await TokenVerifier(settings).verify(token)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert claim in caught.value.message


async def test_not_yet_valid_token(settings: Settings, tokens: Tokens) -> None:
    import jwt

    claims = jwt.decode(tokens.valid(), options={"verify_signature": False})
    claims["nbf"] = claims["iat"] + 3600
    token = jwt.encode(
        claims,
        settings.dev_private_key_file.read_bytes(),
        algorithm="RS256",
        headers={"kid": tokens.kid()},
    )
    with pytest.raises(ServiceError) as caught:
        await TokenVerifier(settings).verify(token)
    assert caught.value.reason == "TOKEN_NOT_YET_VALID"


async def test_rotated_key_is_picked_up(settings: Settings, tokens: Tokens) -> None:
    verifier = TokenVerifier(settings)
    await verifier.verify(tokens.valid())
    settings.jwks_file.unlink()
    settings.dev_private_key_file.unlink()
    ensure_dev_keys(settings)  # a new key pair, a new kid
    principal = await verifier.verify(Tokens(settings).valid())
    assert principal.subject == "alice"


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic abc"),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer "),), "TOKEN_MALFORMED"),
    ],
)
def test_bearer_token_parsing(
    settings: Settings, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        TokenVerifier(settings).token_of(metadata)
    assert caught.value.reason == reason
    assert caught.value.message == token_refusal(reason, settings)


def test_bearer_token_ok(settings: Settings) -> None:
    assert TokenVerifier(settings).token_of((("authorization", "Bearer a.b.c"),)) == "a.b.c"


async def test_refusals_say_what_to_do_next(settings: Settings, tokens: Tokens) -> None:
    verifier = TokenVerifier(settings)
    with pytest.raises(ServiceError) as expired:
        await verifier.verify(tokens.expired())
    assert expired.value.reason == "TOKEN_EXPIRED"
    assert expired.value.message == (
        "the token has expired: mint one with `mlplane token --role data_scientist` "
        "(the dev stack's issuer)"
    )
    with pytest.raises(ServiceError) as missing:
        verifier.token_of(())
    assert "`Authorization: Bearer <token>`" in missing.value.message
    with pytest.raises(ServiceError) as pasted:
        await verifier.verify("Bearer " + tokens.valid())  # the scheme pasted twice
    assert pasted.value.reason == "TOKEN_MALFORMED"
    assert "send the token alone after `Bearer `" in pasted.value.message


def test_with_a_real_issuer_the_refusals_point_to_it(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, jwt_jwks_url="https://issuer.example/jwks.json")
    assert token_refusal("TOKEN_EXPIRED", settings) == (
        f"the token has expired: get one from your identity provider ({settings.jwt_issuer})"
    )
    assert "mlplane token" not in token_refusal("TOKEN_MISSING", settings)


async def test_role_check(settings: Settings, tokens: Tokens) -> None:
    principal = await TokenVerifier(settings).verify(tokens.valid("data_scientist"))
    require_role(principal, "/x/Y", frozenset({"data_scientist"}))
    with pytest.raises(ServiceError) as caught:
        require_role(principal, "/x/Y", frozenset({"model_approver"}))
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.message == "Y requires role model_approver"
    assert caught.value.metadata == {"method": "Y", "required": "model_approver"}
    with pytest.raises(ServiceError):
        require_role(principal, "/x/Unmapped", frozenset())


def test_dev_tokens_refused_with_real_issuer(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, jwt_jwks_url="https://issuer.invalid/jwks.json")
    with pytest.raises(RealIssuerConfigured):
        mint_token(settings, subject="a", tenant="t", roles=["data_scientist"])


@pytest.mark.parametrize("tenant", ["../x", "a/b", "", " demo", "x" * 200])
async def test_unusable_tenant_claims_are_rejected(settings: Settings, tenant: str) -> None:
    token = mint_token(settings, subject="a", tenant=tenant, roles=["data_scientist"])
    with pytest.raises(ServiceError) as caught:
        await TokenVerifier(settings).verify(token)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


async def test_cached_token_is_dropped_when_its_key_is_rotated_out(
    settings: Settings, tokens: Tokens
) -> None:
    verifier = TokenVerifier(settings)
    old = tokens.valid()
    await verifier.verify(old)
    await verifier.verify(old)  # served from the cache
    settings.jwks_file.unlink()
    settings.dev_private_key_file.unlink()
    ensure_dev_keys(settings)
    with pytest.raises(ServiceError) as caught:
        await verifier.verify(old)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_token_over_8_kib_is_refused_before_it_is_verified(
    settings: Settings, tokens: Tokens
) -> None:
    """The services refuse what the gateway refuses, for callers that reach them directly."""
    big = tokens.valid("data_scientist", subject="s" * 9000)
    assert len(big) > 8 * 1024
    with pytest.raises(ServiceError) as refused:
        TokenVerifier(settings).token_of((("authorization", f"Bearer {big}"),))
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.reason == "TOKEN_TOO_LARGE"
    assert "fewer claims" in refused.value.message
    fits = tokens.valid("data_scientist")
    assert TokenVerifier(settings).token_of((("authorization", f"Bearer {fits}"),)) == fits
