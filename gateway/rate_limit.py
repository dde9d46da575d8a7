"""The gateway's per-client rate limit: Envoy's local_ratelimit filter, one token bucket
per verified (tenant, subject), and the 429 it answers.

The key comes from the payload jwt_authn verified and wrote to dynamic metadata, never
from a header a client could set, and never from the peer address (clients behind one
NAT or proxy, or every test on loopback, share it). The descriptor's entries have empty
values: Envoy then keeps a bucket per distinct value (a "dynamic descriptor", Envoy
>= 1.34), at most MAX_CLIENT_BUCKETS of them, least recently used evicted first.

Requests without a verified token (health, reflection, CORS preflights, and every
request jwt_authn already refused) produce no descriptor, and since the filter has no
default bucket they are never limited here.
"""

from __future__ import annotations

from typing import Any

from gateway.rbac import JWT_FILTER_NAME, JWT_PAYLOAD_KEY
from services.common.settings import Settings

Json = dict[str, Any]

RATE_LIMIT_FILTER_NAME = "envoy.filters.http.local_ratelimit"
RATE_LIMIT_STAT_PREFIX = "client_rate_limit"
# Distinct clients with a live bucket; one bucket is a few dozen bytes.
MAX_CLIENT_BUCKETS = 10_000
# The descriptor: the issuer entry only exists for a verified token (no default), so an
# unauthenticated request yields no descriptor; tenant and subject fall back to a shared
# value so a token lacking them is still limited (the services then refuse it).
DESCRIPTOR_CLAIMS: tuple[tuple[str, str, str | None], ...] = (
    ("issuer", "iss", None),
    ("tenant", "tenant", "-"),
    ("subject", "sub", "-"),
)
RATE_LIMITED_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
# The bucket refills continuously at >= 1 token/s, so one second always suffices.
RETRY_AFTER_SECONDS = 1
RATE_LIMITED_MESSAGE = (
    "rate limit exceeded for this client (tenant and subject); slow down, retry after "
    "the Retry-After seconds"
)


def rate_limit_enabled(settings: Settings) -> bool:
    return settings.gateway_rate_limit_per_second > 0


def _all_requests() -> Json:
    return {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def _claim_action(descriptor_key: str, claim: str, default: str | None) -> Json:
    action: Json = {
        "descriptor_key": descriptor_key,
        "metadata_key": {
            "key": JWT_FILTER_NAME,
            "path": [{"key": JWT_PAYLOAD_KEY}, {"key": claim}],
        },
        "source": "DYNAMIC",
    }
    if default is not None:
        action["default_value"] = default
    return {"metadata": action}


def rate_limit_filter_config(settings: Settings) -> Json:
    """The local_ratelimit filter's config; only rendered when the limit is on."""
    rate = settings.gateway_rate_limit_per_second
    burst = max(settings.gateway_rate_limit_burst, rate)
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3."
        "LocalRateLimit",
        "stat_prefix": RATE_LIMIT_STAT_PREFIX,
        "filter_enabled": _all_requests(),
        "filter_enforced": _all_requests(),
        # No default bucket: only a request with a client descriptor is limited.
        "always_consume_default_token_bucket": False,
        "rate_limits": [
            {"actions": [_claim_action(*claim) for claim in DESCRIPTOR_CLAIMS]},
        ],
        "descriptors": [
            {
                "entries": [{"key": key} for key, _, _ in DESCRIPTOR_CLAIMS],
                "token_bucket": {
                    "max_tokens": burst,
                    "tokens_per_fill": rate,
                    "fill_interval": "1s",
                },
            }
        ],
        "max_dynamic_descriptors": MAX_CLIENT_BUCKETS,
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        # gRPC clients get RESOURCE_EXHAUSTED (Envoy's default, UNAVAILABLE, invites
        # an immediate retry).
        "rate_limited_as_resource_exhausted": True,
        "response_headers_to_add": [
            {
                "header": {"key": "retry-after", "value": str(RETRY_AFTER_SECONDS)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def status_is(code: int) -> Json:
    """An access-log filter (as local_reply_config uses them): the response code is `code`."""
    return {
        "status_code_filter": {
            "comparison": {
                "op": "EQ",
                "value": {"default_value": code, "runtime_key": f"mlplane.status_{code}"},
            }
        }
    }


def is_grpc_request() -> Json:
    return {"name": "content-type", "string_match": {"prefix": "application/grpc"}}
