"""The gateway's route table: health, each service's gRPC paths with the retries each kind of
call allows, the REST surface (what the transcoder does not take ends in a 404, the upload
bindings with their body limits), then the web app."""

from __future__ import annotations

from gateway.clusters import SERVICE_CLUSTERS
from gateway.envoy_json import Json, direct_response, typed
from gateway.http_rules import RpcRule
from gateway.limits import BodyLimit, binding_matches, body_limits, enable_filter
from gateway.rbac import HEALTHZ_PATH, method_is
from gateway.web_routes import WebFile, page_routes, web_routes
from services.common.settings import Settings

# Deliberately not defined: routes to it answer 404 (see _not_found_route).
UNROUTED_CLUSTER = "no-such-endpoint"
API_PREFIX = "/api/"

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
#   the clusters' outlier detection (gateway/clusters.py) keeps new uploads off a replica
#   that refused one.
RETRY_ON_READS = "reset,connect-failure,refused-stream"
RETRY_ON_WRITES = "connect-failure,refused-stream,reset-before-request"
RETRIES = 2


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
                "typed_config": typed(
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


def route_table(settings: Settings, web_files: list[WebFile], rules: list[RpcRule]) -> list[Json]:
    routes: list[Json] = [
        {
            "name": "healthz",
            "match": {"path": HEALTHZ_PATH},
            **direct_response(200, "ok\n", "text/plain"),
        },
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
