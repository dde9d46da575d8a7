"""Render the Envoy bootstrap (JSON) for the mlplane gateway from Settings.

One listener serves gRPC (h2c) and REST (HTTP/1.1). Filter order, fixed by design:
cors -> jwt_authn -> rbac -> lua -> grpc_json_transcoder -> router. The first three run
on the REST path as the client sent it, so their denials stay plain HTTP; the transcoder
then rewrites REST to gRPC and clears the route cache so the router picks the cluster by
the gRPC path.
"""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from gateway.http_rules import (
    RpcRule,
    load_rpc_rules,
    template_to_regex,
    unsupported_response_bodies,
)
from gateway.limits import (
    MAX_REQUEST_HEADERS_KB,
    BodyLimit,
    binding_matches,
    body_limit_filters,
    body_limits,
    enable_filter,
    token_size_filter,
)
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
from gateway.refusals import FIELD_NAMES_HEADER, JWT_FAILURE_KEY, local_reply_mappers
from gateway.web_routes import (
    WebFile,
    collect_web_files,
    largest_body,
    page_routes,
    web_routes,
)
from services.common.access import LINK_METHODS, METHOD_ROLES, OPEN_SERVICE_PREFIXES
from services.common.settings import Settings

Json = dict[str, Any]
Address = tuple[str, int]

QUERY_SERVICE = "mlplane.v1.QueryService"
MODEL_REGISTRY = "mlplane.v1.ModelRegistry"
QUERY_CLUSTER = "query"
MODELS_CLUSTER = "models"
JWKS_CLUSTER = "jwks"
# Deliberately not defined: routes to it answer 404 (see _not_found_route).
UNROUTED_CLUSTER = "no-such-endpoint"
SERVICE_CLUSTERS: dict[str, str] = {QUERY_SERVICE: QUERY_CLUSTER, MODEL_REGISTRY: MODELS_CLUSTER}

LISTENER_NAME = "mlplane_gateway"
STATS_LISTENER_NAME = "mlplane_gateway_stats"
STATS_PATH = "/stats/prometheus"
ADMIN_CLUSTER = "envoy_admin"
API_PREFIX = "/api/"
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

# A cap on downstream connections (Envoy warns at start-up without one); far above what
# one gateway of this plane serves, it only bounds a connection flood.
MAX_DOWNSTREAM_CONNECTIONS = 50_000

# Exports and uploads stream for as long as they take; only silence ends a stream.
STREAM_IDLE_TIMEOUT = "300s"

# Envoy's active health checks of each service replica (gRPC health, on the service's own
# name). A replica that turns NOT_SERVING (on SIGTERM: services/common/server.py) is out of
# rotation after at most INTERVAL x UNHEALTHY_THRESHOLD seconds: its drain
# (MLPLANE_SHUTDOWN_DRAIN_SECONDS) lasts longer, so no call reaches it once it stops.
HEALTH_CHECK_INTERVAL_SECONDS = 2
HEALTH_CHECK_TIMEOUT_SECONDS = 1
HEALTH_CHECK_UNHEALTHY_THRESHOLD = 2

# Retries, to another replica (previous_hosts), by what a call is:
# * a read (each REST binding a GET: gets, lists, exports, downloads) also after a reset, as a
#   replica killed mid-call resets it: a read done twice is still a read. Envoy retries only
#   while nothing of the response has reached the client.
# * any other unary call (submit, approve, reject, archive, links) only when it certainly never
#   reached a service: the connection failed or was refused, the stream was refused (HTTP/2
#   REFUSED_STREAM: a server that is stopping takes no new streams), or a reset came before any
#   byte of the request was sent. After a later reset it may have committed; a retry would
#   turn the caller's success into a 409.
# * a client-streaming upload never, not even after a refused connection: a replay needs the
#   whole stream, Envoy keeps at most its buffer limit (1 MiB) of it, and an upload that outgrows
#   that while a retry waits for its backoff is answered 507, not the 503 its client knows to
#   retry. No upload is retried behind the client's back (the SDK never retries one either);
#   the outlier detection below keeps new uploads off a replica that refused one.
RETRY_ON_READS = "reset,connect-failure,refused-stream"
RETRY_ON_WRITES = "connect-failure,refused-stream,reset-before-request"
RETRIES = 2
RETRY_MIN_CONCURRENCY = 32

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

ACCESS_LOG_FORMAT: dict[str, str] = {
    "start_time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    # The transcoder rewrites :method and :path to the gRPC call and keeps the client's
    # in these two headers. The query string stays out of the log: a download link's
    # signature travels in it.
    "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
    "path": "%PATH(WQ:ORIG)%",
    "protocol": "%PROTOCOL%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS(NUMBER)%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "flags": "%RESPONSE_FLAGS%",
    "duration_ms": "%DURATION%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "upstream": "%UPSTREAM_HOST%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "subject": f"%DYNAMIC_METADATA({JWT_FILTER_NAME}:{JWT_PAYLOAD_KEY}:sub)%",
    "user_agent": "%REQ(USER-AGENT)%",
}


def _typed(type_name: str, **fields: Any) -> Json:
    return {"@type": f"type.googleapis.com/{type_name}", **fields}


def _socket_address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _listen_host(host: str) -> str:
    if host in ("", "localhost"):
        return "127.0.0.1"
    if not _is_ip(host):
        raise ValueError(f"Envoy listens on IP addresses only, got {host!r}")
    return host


def _upstream_host(host: str) -> str:
    # A service bound to the wildcard address is reached over loopback.
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding it
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _access_log(access_log_path: Path | None) -> list[Json]:
    log_format = {"json_format": ACCESS_LOG_FORMAT}
    if access_log_path is None:
        typed = _typed(
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", log_format=log_format
        )
        return [{"name": "envoy.access_loggers.stdout", "typed_config": typed}]
    typed = _typed(
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        path=str(access_log_path),
        log_format=log_format,
    )
    return [{"name": "envoy.access_loggers.file", "typed_config": typed}]


def _cors_policy(origins: list[str]) -> Json:
    matchers: list[Json] = [
        {"safe_regex": {"regex": ".*"}} if origin == "*" else {"exact": origin}
        for origin in origins
    ]
    return _typed(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        allow_origin_string_match=matchers,
        allow_methods=", ".join(CORS_ALLOW_METHODS),
        allow_headers=", ".join(CORS_ALLOW_HEADERS),
        expose_headers=", ".join(CORS_EXPOSE_HEADERS),
        max_age="86400",
    )


def _ca_bundle() -> str:
    """A CA file for verifying the JWKS server: the JWKS is the root of all trust here."""
    paths = ssl.get_default_verify_paths()
    candidates = [
        os.environ.get("SSL_CERT_FILE"),
        paths.cafile,
        paths.openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    try:
        import certifi
    except ImportError:
        pass
    else:
        return str(certifi.where())
    raise ValueError("no CA bundle found to verify the JWKS server; set SSL_CERT_FILE")


def _jwks_cluster(url: str) -> Json:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"JWKS URL must be http(s)://host/...: {url!r}")
    host = parts.hostname
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    cluster: Json = {
        "name": JWKS_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": _socket_address(host, port)}}]}
            ],
        },
    }
    if tls:
        # Envoy checks neither chain nor name unless told to: both are spelled out.
        san_type = "IP_ADDRESS" if _is_ip(host) else "DNS"
        tls_context = _typed(
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            common_tls_context={
                "validation_context": {
                    "trusted_ca": {"filename": _ca_bundle()},
                    "match_typed_subject_alt_names": [
                        {"san_type": san_type, "matcher": {"exact": host}}
                    ],
                }
            },
        )
        if not _is_ip(host):
            tls_context["sni"] = host
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": tls_context,
        }
    return cluster


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
    return _typed(
        "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        providers={JWT_PROVIDER: _jwt_provider(settings)},
        # Everything else is the web app (its files and config), which anyone may load.
        rules=[*no_token, *({"match": {"prefix": prefix}, **requires} for prefix in protected)],
    )


def _transcoder_config(descriptor_path: Path) -> Json:
    # max_request_body_size / max_response_body_size stay unset: they bound what the
    # transcoder buffers for one message, and HttpBody streams must not be capped here
    # (the registry enforces its own upload limit and answers 413).
    return _typed(
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


def _http_filters(settings: Settings, descriptor_path: Path, rules: list[RpcRule]) -> list[Json]:
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
            "typed_config": _typed("envoy.extensions.filters.http.cors.v3.Cors"),
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
            "typed_config": _typed(
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
            "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router"),
        },
    ]


def _direct(status: int, body: str, content_type: str) -> Json:
    return {
        "direct_response": {"status": status, "body": {"inline_string": body}},
        "response_headers_to_add": [
            {
                "header": {"key": "content-type", "value": content_type},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def _not_found_route(name: str, match: Json) -> Json:
    """A forwarding route whose cluster does not exist: Envoy answers 404 itself.

    The cors filter ignores routes without a route entry (direct responses), and REST
    requests are routed by their REST path before the transcoder re-routes them by
    their gRPC path. So REST paths need a *forwarding* route for CORS to apply, and
    one that ends in a 404 for whatever the transcoder did not take.
    """
    return {
        "name": name,
        "match": match,
        "route": {"cluster": UNROUTED_CLUSTER, "cluster_not_found_response_code": "NOT_FOUND"},
    }


def _body_limit_routes(rules: list[RpcRule], limits: list[BodyLimit]) -> list[Json]:
    """The upload bindings' own REST routes, each enabling its body limit; like the `api`
    route they end in a 404 for whatever the transcoder did not take."""
    routes: list[Json] = []
    for limit in limits:
        if limit.rpc is None:
            continue
        for index, match in enumerate(binding_matches(rules, limit.rpc)):
            route = _not_found_route(f"{limit.route_name}-{index}", match)
            route["typed_per_filter_config"] = enable_filter(limit.filter_name)
            routes.append(route)
    return routes


def is_read(rule: RpcRule) -> bool:
    """A call that changes nothing when done twice: every REST binding of it is a GET."""
    return (
        bool(rule.bindings)
        and not rule.client_streaming
        and all(binding.method == "GET" for binding in rule.bindings)
    )


def _retry_policy(retry_on: str) -> Json:
    return {
        "retry_on": retry_on,
        "num_retries": RETRIES,
        # Another replica, when there is one.
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": _typed(
                    "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                ),
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def _service_routes(rules: list[RpcRule]) -> list[Json]:
    """Each service's gRPC paths (REST requests arrive here too, re-routed by the transcoder),
    with the retry policy each kind of call allows (see RETRY_ON_READS): a route per read and
    per upload, then the service's prefix for the rest."""
    routes: list[Json] = []
    for service, cluster in SERVICE_CLUSTERS.items():
        forward: Json = {
            "cluster": cluster,
            "timeout": "0s",
            # Let gRPC clients' deadlines (grpc-timeout) bound the stream.
            "max_stream_duration": {"grpc_timeout_header_max": "0s"},
        }
        for rule in (rule for rule in rules if rule.service == service):
            if is_read(rule):
                route = {**forward, "retry_policy": _retry_policy(RETRY_ON_READS)}
            elif rule.client_streaming:
                route = dict(forward)
            else:
                continue
            name = f"{cluster}-{rule.name}"
            routes.append({"name": name, "match": {"path": rule.grpc_path}, "route": route})
        routes.append(
            {
                "name": cluster,
                "match": {"prefix": f"/{service}/"},
                "route": {**forward, "retry_policy": _retry_policy(RETRY_ON_WRITES)},
            }
        )
    return routes


def _routes(settings: Settings, web_files: list[WebFile], rules: list[RpcRule]) -> list[Json]:
    routes: list[Json] = [
        {"name": "healthz", "match": {"path": HEALTHZ_PATH}, **_direct(200, "ok\n", "text/plain")},
        # Preflights the cors filter did not answer (origin not allowed) pass jwt_authn
        # and rbac without a token; they must end here, never at a service.
        _not_found_route("preflight", {"prefix": "/", "headers": [method_is("OPTIONS")["header"]]}),
    ]
    routes += _service_routes(rules)
    # The REST surface: routed by the transcoder (which re-routes by the gRPC path); what
    # it does not take ends in a 404 here, never in the web app's pages.
    limits = body_limits(settings.max_model_bytes)
    routes += _body_limit_routes(rules, limits)
    api = _not_found_route("api", {"prefix": API_PREFIX})
    for limit in limits:
        if limit.rpc is None:
            api["typed_per_filter_config"] = enable_filter(limit.filter_name)
    routes.append(api)
    routes += web_routes(settings, web_files)
    routes += page_routes(web_files)
    routes.append(_not_found_route("unrouted", {"prefix": "/"}))
    return routes


def _http_connection_manager(
    settings: Settings, descriptor_path: Path, access_log_path: Path | None
) -> Json:
    rules = load_rpc_rules(descriptor_path, SERVICE_CLUSTERS)
    dist = settings.web_dist_dir
    web_files = collect_web_files(dist, settings.web_cache_dir) if dist is not None else []
    virtual_host: Json = {
        "name": "mlplane",
        "domains": ["*"],
        "routes": _routes(settings, web_files, rules),
    }
    if settings.cors_allowed_origins:
        virtual_host["typed_per_filter_config"] = {
            "envoy.filters.http.cors": _cors_policy(settings.cors_allowed_origins)
        }
    return _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="ingress",
        codec_type="AUTO",
        use_remote_address=True,
        generate_request_id=True,
        # Browsers and the SDK send their own x-request-id (allowed by CORS) to
        # correlate logs; without this Envoy replaces it for non-internal clients.
        preserve_external_request_id=True,
        always_set_request_id_in_response=True,
        # By default Envoy rewrites the 15th character of any 36-character request id
        # to record a tracing decision; ids must reach the services' logs unchanged.
        request_id_extension={
            "typed_config": _typed(
                "envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig",
                pack_trace_reason=False,
            )
        },
        # RBAC and the transcoder must see the same canonical path, or a path spelled
        # differently (`//`, `%61pi`) could match an RPC for one and not the other.
        normalize_path=True,
        merge_slashes=True,
        stream_idle_timeout=STREAM_IDLE_TIMEOUT,
        request_headers_timeout="10s",
        # Below what the services accept (gateway/limits.py): the gateway refuses first.
        max_request_headers_kb=MAX_REQUEST_HEADERS_KB,
        # The filters decide on `Expect: 100-continue`: a body refused on its headers (413,
        # 401, 403) gets no `100 Continue` first. Envoy otherwise answers it itself before
        # any filter runs.
        proxy_100_continue=True,
        access_log=_access_log(access_log_path),
        # validate_clusters off: the 404 routes name a cluster that must not exist.
        route_config={
            "name": "mlplane",
            "virtual_hosts": [virtual_host],
            "validate_clusters": False,
            # The web app's files are direct responses (gateway/web_routes.py).
            "max_direct_response_body_size_bytes": max(4096, largest_body(web_files)),
        },
        http_filters=_http_filters(settings, descriptor_path, rules),
        local_reply_config={
            "mappers": local_reply_mappers(
                settings, rules, METHOD_ROLES, rate_limited=rate_limit_enabled(settings)
            )
        },
    )


def _addresses(value: Address | Sequence[Address]) -> list[Address]:
    """One (host, port), or a list of them (the replicas of `mlplane up --replicas N`)."""
    if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        return [(value[0], value[1])]
    found = [(str(host), int(port)) for host, port in cast("Sequence[Address]", value)]
    if not found:
        raise ValueError("a service cluster needs at least one address")
    return found


def _service_cluster(name: str, service: str, addresses: list[Address]) -> Json:
    """A service's cluster: every replica an endpoint, balanced request by request and
    health-checked on the service's gRPC health status.

    On Kubernetes the one address is the service's headless name, which resolves to every
    ready pod (STRICT_DNS makes each a host); `mlplane up --replicas N` lists its N
    processes' ports instead (STATIC). Either way the same policy and the same checks."""
    hosts = [(_upstream_host(host), port) for host, port in addresses]
    return {
        "name": name,
        "type": "STATIC" if all(_is_ip(host) for host, _ in hosts) else "STRICT_DNS",
        "connect_timeout": "2s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(host, port)}}
                        for host, port in hosts
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                # Envoy's defaults (256 MiB windows) let a few streams whose clients stopped
                # reading fill the one HTTP/2 connection to the service and stall every other
                # caller behind them; windows sized as Envoy's edge-proxy guidance suggests
                # keep each stalled stream to 1 MiB of the connection's 64 MiB.
                explicit_http_config={
                    "http2_protocol_options": {
                        "initial_stream_window_size": 1024 * 1024,
                        "initial_connection_window_size": 64 * 1024 * 1024,
                    }
                },
            )
        },
        "health_checks": [
            {
                "timeout": f"{HEALTH_CHECK_TIMEOUT_SECONDS}s",
                "interval": f"{HEALTH_CHECK_INTERVAL_SECONDS}s",
                "no_traffic_interval": f"{HEALTH_CHECK_INTERVAL_SECONDS}s",
                "unhealthy_threshold": HEALTH_CHECK_UNHEALTHY_THRESHOLD,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": service},
            }
        ],
        # A replica that refuses or resets a connection (it died, or is restarting) is taken
        # out at once, not after its next two health checks: calls that cannot be retried
        # (uploads) stop going there. Its first passing health check brings it back. Never
        # more than half of the replicas; with one replica nothing changes (a cluster whose
        # every host is out is balanced over all of them, as when all fail health checks).
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 1,
            "enforcing_consecutive_local_origin_failure": 100,
            "enforcing_consecutive_5xx": 0,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_success_rate": 0,
            "enforcing_local_origin_success_rate": 0,
            "max_ejection_percent": 50,
            "successful_active_health_check_uneject_host": True,
        },
        # Retries go to another replica (routes' retry_policy); Envoy's default allows only 3
        # at once per cluster, fewer than the calls a replica that dies under load had in
        # flight. A budget instead: retries up to a quarter of the cluster's active requests,
        # never fewer than RETRY_MIN_CONCURRENCY at once.
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "retry_budget": {
                        "budget_percent": {"value": 25.0},
                        "min_retry_concurrency": RETRY_MIN_CONCURRENCY,
                    },
                }
            ]
        },
    }


def render_envoy_config(
    settings: Settings,
    *,
    query_address: Address | Sequence[Address],
    models_address: Address | Sequence[Address],
    descriptor_path: Path,
    listen_address: tuple[str, int],
    admin_port: int,
    access_log_path: Path | None = None,
    stats_port: int | None = None,
) -> dict[str, Any]:
    """The Envoy bootstrap for the gateway, as a JSON-serialisable dict.

    `query_address` / `models_address`: a service's (host, port), or a list of them, one per
    replica; a host name is resolved to every address it has (a headless Service).
    Raises ValueError for a descriptor set Envoy's transcoder would refuse at start-up.
    """
    unsupported = unsupported_response_bodies(descriptor_path, SERVICE_CLUSTERS)
    if unsupported:
        raise ValueError(
            "Envoy's gRPC-JSON transcoder supports `response_body` only for "
            "google.api.HttpBody fields; remove it from: " + ", ".join(unsupported)
        )
    listen_host = _listen_host(listen_address[0])
    listener_address = _socket_address(listen_host, listen_address[1])
    if ":" in listen_host:
        listener_address["socket_address"]["ipv4_compat"] = True
    clusters = [
        _service_cluster(QUERY_CLUSTER, QUERY_SERVICE, _addresses(query_address)),
        _service_cluster(MODELS_CLUSTER, MODEL_REGISTRY, _addresses(models_address)),
    ]
    if settings.jwt_jwks_url is not None:
        clusters.append(_jwks_cluster(settings.jwt_jwks_url))
    hcm = _http_connection_manager(settings, descriptor_path, access_log_path)
    listeners = [
        {
            "name": LISTENER_NAME,
            "address": listener_address,
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": hcm,
                        }
                    ]
                }
            ],
        }
    ]
    if stats_port is not None:
        listeners.append(_stats_listener(listen_host, stats_port))
        clusters.append(_admin_cluster(admin_port))
    return {
        "admin": {
            "address": _socket_address("127.0.0.1", admin_port),
            "access_log": [
                {
                    "name": "envoy.access_loggers.file",
                    "typed_config": _typed(
                        "envoy.extensions.access_loggers.file.v3.FileAccessLog", path="/dev/null"
                    ),
                }
            ],
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": _typed(
                        "envoy.extensions.resource_monitors.downstream_connections.v3."
                        "DownstreamConnectionsConfig",
                        max_active_downstream_connections=MAX_DOWNSTREAM_CONNECTIONS,
                    ),
                }
            ]
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def _stats_listener(host: str, port: int) -> Json:
    """Envoy's own metrics for a scraper: `GET /stats/prometheus` passed to the admin port and
    nothing else (the admin port also stops Envoy and dumps its config, so it stays on
    127.0.0.1). Paths are normalised and escaped slashes refused before the match."""
    hcm = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="stats",
        normalize_path=True,
        merge_slashes=True,
        path_with_escaped_slashes_action="REJECT_REQUEST",
        http_filters=[
            {
                "name": "envoy.filters.http.router",
                "typed_config": _typed("envoy.extensions.filters.http.router.v3.Router"),
            }
        ],
        route_config={
            "name": "stats",
            "virtual_hosts": [
                {
                    "name": "stats",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"path": STATS_PATH, "headers": [method_is("GET")["header"]]},
                            "route": {"cluster": ADMIN_CLUSTER, "timeout": "10s"},
                        },
                        {"match": {"prefix": "/"}, **_direct(404, "not found\n", "text/plain")},
                    ],
                }
            ],
        },
    )
    address = _socket_address(host, port)
    if ":" in host:
        address["socket_address"]["ipv4_compat"] = True
    return {
        "name": STATS_LISTENER_NAME,
        "address": address,
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _admin_cluster(admin_port: int) -> Json:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address("127.0.0.1", admin_port)}}
                    ]
                }
            ],
        },
    }


def write_envoy_config(path: Path, config: dict[str, Any]) -> None:
    """Write atomically: an Envoy (re)starting concurrently never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
            handle.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
