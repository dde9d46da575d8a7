"""The listener's HTTP filter chain, in its fixed order: cors, token size, jwt_authn, rate
limit, rbac, body limits, lua (status rewrite), grpc_json_transcoder, router."""

from __future__ import annotations

from pathlib import Path

from gateway.clusters import JWKS_CLUSTER, SERVICE_CLUSTERS
from gateway.envoy_json import Json, typed
from gateway.http_rules import RpcRule, template_to_regex
from gateway.limits import body_limit_filters, body_limits, token_size_filter
from gateway.rate_limit import (
    RATE_LIMIT_FILTER_NAME,
    RATE_LIMITED_HEADERS,
    rate_limit_enabled,
    rate_limit_filter_config,
)
from gateway.rbac import (
    HEALTHZ_PATH,
    JWT_FILTER_NAME,
    JWT_PAYLOAD_KEY,
    build_rbac_policies,
    method_is,
    rbac_filter_config,
)
from gateway.refusals import FIELD_NAMES_HEADER, JWT_FAILURE_KEY
from gateway.routes import API_PREFIX
from services.common.access import LINK_METHODS, METHOD_ROLES, OPEN_SERVICE_PREFIXES
from services.common.settings import Settings

JWT_PROVIDER = "mlplane"

CORS_ALLOW_HEADERS = ("authorization", "content-type", "x-request-id", "x-grpc-web", "grpc-timeout")
CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "x-mlplane-export-id",
    "x-mlplane-sha256",
    "content-disposition",
    *RATE_LIMITED_HEADERS,
    "retry-after",
)
JWT_CACHE_SIZE = 10_000
CORS_ALLOW_METHODS = ("GET", "POST", "OPTIONS")

# Services cannot return 201/202/413 through gRPC, so they send `x-http-status` as
# metadata. Only transcoded (non-gRPC) responses are rewritten; the header never leaves
# the gateway. 201/202 only upgrade a success: a service that announced 201 in its
# initial metadata and then failed keeps the error status the transcoder derived from
# grpc-status. 413 only refines an error (RESOURCE_EXHAUSTED would otherwise be 429).
# A trailers-only gRPC error arrives as one header block, so its metadata is visible
# here once the transcoder (which runs before Lua on the response path) converted it.
#
# REST answers also lose the gRPC headers the transcoder leaves on them (grpc-status,
# grpc-message, grpc-accept-encoding, ...): they mean nothing to a REST caller.
#
# The transcoder's own refusals (a value it cannot parse) name fields by their proto names
# (`start_time: invalid value ...`); a REST caller sent `startTime`. Their local-reply mapper
# marks them (gateway/refusals.py), and only those small bodies are read and rewritten here:
# every lower-case snake_case word becomes its JSON name.
LUA_STATUS_REWRITE = """\
local SUCCESS_UPGRADES = { ["201"] = true, ["202"] = true }
local ERROR_REFINEMENTS = { ["413"] = true }
local GRPC_HEADERS = {
  "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-accept-encoding",
  "grpc-encoding",
}

local function json_names(text)
  return (string.gsub(text, "%f[%w_]%l[%l%d]*_[%l%d_]*%f[^%w_]", function(word)
    return (string.gsub(word, "_(%l)", string.upper))
  end))
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  if headers:get("FIELD_NAMES_MARKER") ~= nil then
    headers:remove("FIELD_NAMES_MARKER")
    local body = response_handle:body()
    if body ~= nil then
      body:setBytes(json_names(body:getBytes(0, body:length())))
    end
  end
  local wanted = headers:get("x-http-status")
  if wanted ~= nil then
    headers:remove("x-http-status")
  end
  local content_type = headers:get("content-type") or ""
  if string.sub(content_type, 1, 16) == "application/grpc" then
    return
  end
  for _, name in ipairs(GRPC_HEADERS) do
    headers:remove(name)
  end
  if wanted == nil then
    return
  end
  local current = tonumber(headers:get(":status")) or 0
  if (SUCCESS_UPGRADES[wanted] and current == 200)
      or (ERROR_REFINEMENTS[wanted] and current >= 400) then
    headers:replace(":status", wanted)
  end
end
""".replace("FIELD_NAMES_MARKER", FIELD_NAMES_HEADER)


def cors_policy(origins: list[str]) -> Json:
    matchers: list[Json] = [
        {"safe_regex": {"regex": ".*"}} if origin == "*" else {"exact": origin}
        for origin in origins
    ]
    return typed(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        allow_origin_string_match=matchers,
        allow_methods=", ".join(CORS_ALLOW_METHODS),
        allow_headers=", ".join(CORS_ALLOW_HEADERS),
        expose_headers=", ".join(CORS_EXPOSE_HEADERS),
        max_age="86400",
    )


def _jwt_provider(settings: Settings) -> Json:
    provider: Json = {
        "issuer": settings.jwt_issuer,
        "audiences": [settings.jwt_audience],
        # The services verify the token again; they need it.
        "forward": True,
        "payload_in_metadata": JWT_PAYLOAD_KEY,
        # Why a token was refused, for the refusal mappers (gateway/refusals.py).
        "failed_status_in_metadata": JWT_FAILURE_KEY,
        "clock_skew_seconds": settings.jwt_leeway_seconds,
        # A client sends the same token on every call until it expires: verified
        # tokens are kept (per worker, until their exp) so the RSA check runs once
        # per token, not once per request. Expiry is still enforced on every hit.
        "jwt_cache_config": {"jwt_cache_size": JWT_CACHE_SIZE},
    }
    if settings.jwt_jwks_url is None:
        provider["local_jwks"] = {"filename": str(settings.jwks_file)}
    else:
        provider["remote_jwks"] = {
            "http_uri": {
                "uri": settings.jwt_jwks_url,
                "cluster": JWKS_CLUSTER,
                "timeout": "5s",
            },
            "cache_duration": f"{settings.jwks_cache_seconds}s",
            # Do not hold the listener back on an issuer outage; requests fail 401
            # until the first fetch succeeds and the fetch is retried meanwhile.
            "async_fetch": {"fast_listener": True},
            "retry_policy": {
                "num_retries": 3,
                "retry_back_off": {"base_interval": "0.5s", "max_interval": "5s"},
            },
        }
    return provider


def _link_matches(rules: list[RpcRule]) -> list[Json]:
    """Route matches for the link methods' REST bindings and gRPC paths."""
    matches: list[Json] = []
    for rule in rules:
        if rule.grpc_path not in LINK_METHODS:
            continue
        matches.append({"path": rule.grpc_path})
        for binding in rule.bindings:
            matches.append(
                {
                    "safe_regex": {"regex": template_to_regex(binding.template)},
                    "headers": [method_is(binding.method)["header"]],
                }
            )
    return matches


def _jwt_filter_config(settings: Settings, rules: list[RpcRule]) -> Json:
    no_token: list[Json] = [
        {"match": {"path": HEALTHZ_PATH}},
        *({"match": {"prefix": prefix}} for prefix in OPEN_SERVICE_PREFIXES),
        # Preflights carry no credentials by the CORS spec; valid ones are answered
        # by the cors filter before this one, the rest must not turn into 401s.
        {"match": {"prefix": "/", "headers": [method_is("OPTIONS")["header"]]}},
        # A download link is its own credential (the service checks it).
        *({"match": match} for match in _link_matches(rules)),
    ]
    requires = {"requires": {"provider_name": JWT_PROVIDER}}
    protected = [API_PREFIX, *(f"/{service}/" for service in SERVICE_CLUSTERS)]
    return typed(
        "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        providers={JWT_PROVIDER: _jwt_provider(settings)},
        # Everything else is the web app (its files and config), which anyone may load.
        rules=[*no_token, *({"match": {"prefix": prefix}, **requires} for prefix in protected)],
    )


def _transcoder_config(descriptor_path: Path) -> Json:
    # max_request_body_size / max_response_body_size stay unset: they bound what the
    # transcoder buffers for one message, and HttpBody streams must not be capped here
    # (the registry enforces its own upload limit and answers 413).
    return typed(
        "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        proto_descriptor=str(descriptor_path),
        services=list(SERVICE_CLUSTERS),
        print_options={
            "add_whitespace": False,
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": False,
        },
        convert_grpc_status=True,
        # `?state=open` reads as OPEN: enum values are words, and case is no trap.
        case_insensitive_enum_parsing=True,
        match_incoming_request_route=False,
        request_validation_options={
            "reject_unknown_method": False,
            "reject_unknown_query_parameters": True,
        },
    )


def http_filters(settings: Settings, descriptor_path: Path, rules: list[RpcRule]) -> list[Json]:
    policies = build_rbac_policies(
        rules,
        METHOD_ROLES,
        open_prefixes=OPEN_SERVICE_PREFIXES,
        service_prefixes=[f"/{service}/" for service in SERVICE_CLUSTERS],
        link_methods=LINK_METHODS,
        api_prefixes=[API_PREFIX],
    )
    # The rate limit runs on the identity jwt_authn verified, before RBAC: a client's
    # refused calls count against its budget as well.
    rate_limit: list[Json] = []
    if rate_limit_enabled(settings):
        rate_limit.append(
            {"name": RATE_LIMIT_FILTER_NAME, "typed_config": rate_limit_filter_config(settings)}
        )
    return [
        {
            "name": "envoy.filters.http.cors",
            "typed_config": typed("envoy.extensions.filters.http.cors.v3.Cors"),
        },
        # Before jwt_authn: an oversized token is refused unverified (gateway/limits.py).
        token_size_filter(),
        {"name": JWT_FILTER_NAME, "typed_config": _jwt_filter_config(settings, rules)},
        *rate_limit,
        {"name": "envoy.filters.http.rbac", "typed_config": rbac_filter_config(policies)},
        # After authorisation (a caller without a token learns that first, and only callers
        # allowed to upload learn the limit); before the transcoder buffers anything.
        *body_limit_filters(body_limits(settings.max_model_bytes)),
        {
            "name": "envoy.filters.http.lua",
            "typed_config": typed(
                "envoy.extensions.filters.http.lua.v3.Lua",
                default_source_code={"inline_string": LUA_STATUS_REWRITE},
            ),
        },
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": _transcoder_config(descriptor_path),
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": typed("envoy.extensions.filters.http.router.v3.Router"),
        },
    ]
