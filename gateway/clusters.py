"""The gateway's upstream clusters: each service's replicas (balanced, health-checked, taken
out on a refused connection, with a retry budget), the JWKS server, and Envoy's admin port."""

from __future__ import annotations

import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from gateway.envoy_json import Json, is_ip, socket_address, typed

Address = tuple[str, int]

QUERY_SERVICE = "mlplane.v1.QueryService"
MODEL_REGISTRY = "mlplane.v1.ModelRegistry"
QUERY_CLUSTER = "query"
MODELS_CLUSTER = "models"
JWKS_CLUSTER = "jwks"
SERVICE_CLUSTERS: dict[str, str] = {QUERY_SERVICE: QUERY_CLUSTER, MODEL_REGISTRY: MODELS_CLUSTER}
ADMIN_CLUSTER = "envoy_admin"

# Envoy's active health checks of each service replica (gRPC health, on the service's own
# name). A replica that turns NOT_SERVING (on SIGTERM: services/common/server.py) is out of
# rotation after at most INTERVAL x UNHEALTHY_THRESHOLD seconds: its drain
# (MLPLANE_SHUTDOWN_DRAIN_SECONDS) lasts longer, so no call reaches it once it stops.
HEALTH_CHECK_INTERVAL_SECONDS = 2
HEALTH_CHECK_TIMEOUT_SECONDS = 1
HEALTH_CHECK_UNHEALTHY_THRESHOLD = 2

# Retries (the routes' retry policies, gateway/routes.py) a cluster allows at once, at the least.
RETRY_MIN_CONCURRENCY = 32


def _upstream_host(host: str) -> str:
    # A service bound to the wildcard address is reached over loopback.
    if host in ("", "0.0.0.0"):  # noqa: S104 - recognising the wildcard, not binding it
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


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


def jwks_cluster(url: str) -> Json:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"JWKS URL must be http(s)://host/...: {url!r}")
    host = parts.hostname
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    cluster: Json = {
        "name": JWKS_CLUSTER,
        "type": "STATIC" if is_ip(host) else "LOGICAL_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": JWKS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}
            ],
        },
    }
    if tls:
        # Envoy checks neither chain nor name unless told to: both are spelled out.
        san_type = "IP_ADDRESS" if is_ip(host) else "DNS"
        tls_context = typed(
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
        if not is_ip(host):
            tls_context["sni"] = host
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": tls_context,
        }
    return cluster


def replica_addresses(value: Address | Sequence[Address]) -> list[Address]:
    """One (host, port), or a list of them (the replicas of `mlplane up --replicas N`)."""
    if len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        return [(value[0], value[1])]
    found = [(str(host), int(port)) for host, port in cast("Sequence[Address]", value)]
    if not found:
        raise ValueError("a service cluster needs at least one address")
    return found


def service_cluster(name: str, service: str, addresses: list[Address]) -> Json:
    """A service's cluster: every replica an endpoint, balanced request by request and
    health-checked on the service's gRPC health status.

    On Kubernetes the one address is the service's headless name, which resolves to every
    ready pod (STRICT_DNS makes each a host); `mlplane up --replicas N` lists its N
    processes' ports instead (STATIC). Either way the same policy and the same checks."""
    hosts = [(_upstream_host(host), port) for host, port in addresses]
    return {
        "name": name,
        "type": "STATIC" if all(is_ip(host) for host, _ in hosts) else "STRICT_DNS",
        "connect_timeout": "2s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": socket_address(host, port)}}
                        for host, port in hosts
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": typed(
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


def admin_cluster(admin_port: int) -> Json:
    return {
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": socket_address("127.0.0.1", admin_port)}}
                    ]
                }
            ],
        },
    }
