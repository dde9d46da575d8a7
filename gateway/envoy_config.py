"""Render the Envoy bootstrap (JSON) for the mlplane gateway from Settings.

One listener serves gRPC (h2c) and REST (HTTP/1.1). Filter order, fixed by design:
cors -> jwt_authn -> rbac -> lua -> grpc_json_transcoder -> router. The first three run
on the REST path as the client sent it, so their denials stay plain HTTP; the transcoder
then rewrites REST to gRPC and clears the route cache so the router picks the cluster by
the gRPC path.

This module assembles the listener and the bootstrap from the gateway's parts: the upstream
clusters (`clusters.py`), the route table (`routes.py`), the HTTP filter chain
(`filter_chain.py`, built from `rbac.py`, `limits.py`, `rate_limit.py`) and the gateway's own
refusals (`refusals.py`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.clusters import (
    ADMIN_CLUSTER,
    HEALTH_CHECK_INTERVAL_SECONDS,
    HEALTH_CHECK_UNHEALTHY_THRESHOLD,
    JWKS_CLUSTER,
    MODEL_REGISTRY,
    MODELS_CLUSTER,
    QUERY_CLUSTER,
    QUERY_SERVICE,
    SERVICE_CLUSTERS,
    Address,
    admin_cluster,
    jwks_cluster,
    replica_addresses,
    service_cluster,
)
from gateway.envoy_json import Json, direct_response, is_ip, socket_address, typed
from gateway.filter_chain import cors_policy, http_filters
from gateway.http_rules import load_rpc_rules, unsupported_response_bodies
from gateway.limits import MAX_REQUEST_HEADERS_KB
from gateway.rate_limit import rate_limit_enabled
from gateway.rbac import JWT_FILTER_NAME, JWT_PAYLOAD_KEY, method_is
from gateway.refusals import local_reply_mappers
from gateway.routes import RETRY_ON_READS, RETRY_ON_WRITES, is_read, route_table
from gateway.web_routes import collect_web_files, largest_body
from services.common.access import METHOD_ROLES
from services.common.settings import Settings

# What the stack, the CLI and the tests name from here.
__all__ = [
    "HEALTH_CHECK_INTERVAL_SECONDS",
    "HEALTH_CHECK_UNHEALTHY_THRESHOLD",
    "JWKS_CLUSTER",
    "LISTENER_NAME",
    "MODELS_CLUSTER",
    "MODEL_REGISTRY",
    "QUERY_CLUSTER",
    "QUERY_SERVICE",
    "RETRY_ON_READS",
    "RETRY_ON_WRITES",
    "STATS_LISTENER_NAME",
    "STATS_PATH",
    "is_read",
    "render_envoy_config",
    "write_envoy_config",
]

LISTENER_NAME = "mlplane_gateway"
STATS_LISTENER_NAME = "mlplane_gateway_stats"
STATS_PATH = "/stats/prometheus"

# A cap on downstream connections (Envoy warns at start-up without one); far above what
# one gateway of this plane serves, it only bounds a connection flood.
MAX_DOWNSTREAM_CONNECTIONS = 50_000

# Exports and uploads stream for as long as they take; only silence ends a stream.
STREAM_IDLE_TIMEOUT = "300s"

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


def _listen_host(host: str) -> str:
    if host in ("", "localhost"):
        return "127.0.0.1"
    if not is_ip(host):
        raise ValueError(f"Envoy listens on IP addresses only, got {host!r}")
    return host


def _access_log(access_log_path: Path | None) -> list[Json]:
    log_format = {"json_format": ACCESS_LOG_FORMAT}
    if access_log_path is None:
        stdout = typed(
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", log_format=log_format
        )
        return [{"name": "envoy.access_loggers.stdout", "typed_config": stdout}]
    file = typed(
        "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        path=str(access_log_path),
        log_format=log_format,
    )
    return [{"name": "envoy.access_loggers.file", "typed_config": file}]


def _http_connection_manager(
    settings: Settings, descriptor_path: Path, access_log_path: Path | None
) -> Json:
    rules = load_rpc_rules(descriptor_path, SERVICE_CLUSTERS)
    dist = settings.web_dist_dir
    web_files = collect_web_files(dist, settings.web_cache_dir) if dist is not None else []
    virtual_host: Json = {
        "name": "mlplane",
        "domains": ["*"],
        "routes": route_table(settings, web_files, rules),
    }
    if settings.cors_allowed_origins:
        virtual_host["typed_per_filter_config"] = {
            "envoy.filters.http.cors": cors_policy(settings.cors_allowed_origins)
        }
    return typed(
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
            "typed_config": typed(
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
        http_filters=http_filters(settings, descriptor_path, rules),
        local_reply_config={
            "mappers": local_reply_mappers(
                settings, rules, METHOD_ROLES, rate_limited=rate_limit_enabled(settings)
            )
        },
    )


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
    listener_address = socket_address(listen_host, listen_address[1])
    if ":" in listen_host:
        listener_address["socket_address"]["ipv4_compat"] = True
    clusters = [
        service_cluster(QUERY_CLUSTER, QUERY_SERVICE, replica_addresses(query_address)),
        service_cluster(MODELS_CLUSTER, MODEL_REGISTRY, replica_addresses(models_address)),
    ]
    if settings.jwt_jwks_url is not None:
        clusters.append(jwks_cluster(settings.jwt_jwks_url))
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
        clusters.append(admin_cluster(admin_port))
    return {
        "admin": {
            "address": socket_address("127.0.0.1", admin_port),
            "access_log": [
                {
                    "name": "envoy.access_loggers.file",
                    "typed_config": typed(
                        "envoy.extensions.access_loggers.file.v3.FileAccessLog", path="/dev/null"
                    ),
                }
            ],
        },
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": typed(
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
    hcm = typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="stats",
        normalize_path=True,
        merge_slashes=True,
        path_with_escaped_slashes_action="REJECT_REQUEST",
        http_filters=[
            {
                "name": "envoy.filters.http.router",
                "typed_config": typed("envoy.extensions.filters.http.router.v3.Router"),
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
                        {
                            "match": {"prefix": "/"},
                            **direct_response(404, "not found\n", "text/plain"),
                        },
                    ],
                }
            ],
        },
    )
    address = socket_address(host, port)
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
