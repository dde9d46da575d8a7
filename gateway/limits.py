"""The gateway's size limits: headers, tokens and request bodies, refused at the gateway first.

Every limit here sits *below* what the services' transport accepts, so an oversized request
is refused by the gateway with a reason of its own, never passed on to be refused by gRPC's
transport (whose RESOURCE_EXHAUSTED becomes a 429, which tells the client to retry):

* **Headers**: Envoy's `max_request_headers_kb` (HTTP/1.1: 431, reason `HEADERS_TOO_LARGE`).
  The services accept `MAX_METADATA_BYTES` (services/common/server.py), more than that, so
  whatever Envoy forwards (plus the few headers it adds) always fits.
* **Tokens**: an `Authorization` header over `MAX_TOKEN_BYTES` is refused before jwt_authn
  verifies anything: 401 / UNAUTHENTICATED, reason `TOKEN_TOO_LARGE`.
* **Bodies**: Envoy's body_size_limit filter (Envoy >= 1.40) refuses a declared
  `Content-Length` over its limit when the headers arrive, and a body without one (chunked)
  as soon as it crosses the limit: 413. One instance per kind of REST body, each enabled
  only on its routes (disabled by default, enabled by the route's `FilterConfig`): the
  model uploads get the model limit (plus room for the form's fields), every other REST
  body (small JSON) `MAX_JSON_BODY_BYTES`. gRPC calls are left to the services' message
  limit (their uploads are streams of small messages).

`proxy_100_continue` must be on for the 413 to come without a `100 Continue`: otherwise
Envoy's connection manager answers `Expect: 100-continue` itself before any filter runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.http_rules import RpcRule, template_to_regex
from gateway.rbac import method_is
from services.common.auth import MAX_AUTHORIZATION_BYTES

Json = dict[str, Any]

# HCM max_request_headers_kb: Envoy's default, spelled out. The services accept more
# (services/common/server.py MAX_METADATA_BYTES, checked by tests/gateway/
# test_hostile_requests.py). Over it, HTTP/1.1 callers get a 431; an HTTP/2 (gRPC) caller's
# stream or connection is reset by Envoy's codec, before any filter or local reply can run.
MAX_REQUEST_HEADERS_KB = 60
# The whole `Authorization` header value; the services refuse the same (services/common/auth.py).
MAX_TOKEN_BYTES = MAX_AUTHORIZATION_BYTES
# Any REST body but a model upload: JSON requests of a few KiB.
MAX_JSON_BODY_BYTES = 1024 * 1024
# The multipart form's text fields around the model file (name, description, labels,
# metrics, lineage: at most 64 KiB each, services/models/multipart_form.py) and its part
# headers: a body larger than the model limit plus this cannot hold an acceptable file.
UPLOAD_FORM_ALLOWANCE = 1024 * 1024

UPLOAD_MULTIPART_RPC = "/mlplane.v1.ModelRegistry/UploadModelMultipart"
UPLOAD_JSON_RPC = "/mlplane.v1.ModelRegistry/UploadModel"

# Where the token-size check records why it refused, for the local-reply mappers.
GATEWAY_METADATA_NAMESPACE = "mlplane.gateway"
REFUSAL_KEY = "refusal"
TOKEN_TOO_LARGE = "TOKEN_TOO_LARGE"  # noqa: S105 - a refusal reason, not a secret
TOKEN_SIZE_FILTER_NAME = "mlplane.token_size"  # noqa: S105 - a filter name

BODY_SIZE_LIMIT_TYPE = "envoy.extensions.filters.http.body_size_limit.v3.BodySizeLimit"
ROUTE_FILTER_CONFIG_TYPE = "envoy.config.route.v3.FilterConfig"

TOKEN_SIZE_LUA = f"""\
function envoy_on_request(request_handle)
  local token = request_handle:headers():get("authorization")
  if token ~= nil and string.len(token) > {MAX_TOKEN_BYTES} then
    request_handle:streamInfo():dynamicMetadata():set(
      "{GATEWAY_METADATA_NAMESPACE}", "{REFUSAL_KEY}", "{TOKEN_TOO_LARGE}")
    request_handle:respond({{[":status"] = "401"}}, "token too large")
  end
end
"""


def token_size_filter() -> Json:
    return {
        "name": TOKEN_SIZE_FILTER_NAME,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": TOKEN_SIZE_LUA},
        },
    }


def token_too_large() -> Json:
    """A local-reply filter: the token-size check refused this request."""
    return {
        "metadata_filter": {
            "matcher": {
                "filter": GATEWAY_METADATA_NAMESPACE,
                "path": [{"key": REFUSAL_KEY}],
                "value": {"string_match": {"exact": TOKEN_TOO_LARGE}},
            },
            "match_if_key_not_found": False,
        }
    }


@dataclass(frozen=True)
class BodyLimit:
    """One body_size_limit instance and the REST bindings it guards."""

    filter_name: str
    route_name: str
    max_bytes: int
    rpc: str | None  # None: every other REST request


def upload_limit_bytes(max_model_bytes: int) -> int:
    return max_model_bytes + UPLOAD_FORM_ALLOWANCE


def json_upload_limit_bytes(max_model_bytes: int) -> int:
    # The JSON binding carries the file base64-encoded: 4 bytes for every 3.
    return -(-max_model_bytes * 4 // 3) + UPLOAD_FORM_ALLOWANCE


def body_limits(max_model_bytes: int) -> list[BodyLimit]:
    return [
        BodyLimit(
            "mlplane.body_limit.upload",
            "upload-multipart",
            upload_limit_bytes(max_model_bytes),
            UPLOAD_MULTIPART_RPC,
        ),
        BodyLimit(
            "mlplane.body_limit.upload_json",
            "upload-json",
            json_upload_limit_bytes(max_model_bytes),
            UPLOAD_JSON_RPC,
        ),
        BodyLimit("mlplane.body_limit.json", "api", MAX_JSON_BODY_BYTES, None),
    ]


def body_limit_filters(limits: Iterable[BodyLimit]) -> list[Json]:
    """The HCM filters, each disabled unless a route enables it."""
    return [
        {
            "name": limit.filter_name,
            "disabled": True,
            "typed_config": {
                "@type": f"type.googleapis.com/{BODY_SIZE_LIMIT_TYPE}",
                "max_request_bytes": limit.max_bytes,
            },
        }
        for limit in limits
    ]


def enable_filter(filter_name: str) -> Json:
    """A route's `typed_per_filter_config` entry that enables a disabled-by-default filter:
    a FilterConfig whose `config` is set but empty enables the filter with its HCM config."""
    return {filter_name: {"@type": f"type.googleapis.com/{ROUTE_FILTER_CONFIG_TYPE}", "config": {}}}


def binding_matches(rules: Iterable[RpcRule], rpc: str) -> list[Json]:
    """Route matches for the REST bindings of `rpc`."""
    matches: list[Json] = []
    for rule in rules:
        if rule.grpc_path != rpc:
            continue
        for binding in rule.bindings:
            matches.append(
                {
                    "safe_regex": {"regex": template_to_regex(binding.template)},
                    "headers": [method_is(binding.method)["header"]],
                }
            )
    return matches


def rest_binding_filter(rules: Iterable[RpcRule], rpc: str) -> list[Json]:
    """Local-reply filters (request headers) for the REST bindings of `rpc`. Once the
    transcoder has seen the request, `:path` is the gRPC path and the REST one is in
    x-envoy-original-path (a body refused as it streams)."""
    filters: list[Json] = []
    for match in binding_matches(rules, rpc):
        path_regex = {"safe_regex": {"regex": match["safe_regex"]["regex"][:-1] + r"(\?.*)?$"}}
        paths = [
            {"header_filter": {"header": {"name": name, "string_match": path_regex}}}
            for name in (":path", "x-envoy-original-path")
        ]
        filters.append(
            {
                "and_filter": {
                    "filters": [
                        {"header_filter": {"header": match["headers"][0]}},
                        {"or_filter": {"filters": paths}},
                    ]
                }
            }
        )
    return filters
