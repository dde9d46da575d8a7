"""The gateway's RBAC ALLOW policies, built from METHOD_ROLES and the REST bindings.

RBAC runs before the transcoder, so a REST request is still `GET /api/v1/...` there: each
RPC's permission is its gRPC path OR any of its REST bindings (method + anchored path
regex). Principals are the roles in the `roles` claim that jwt_authn wrote to metadata.

Requests that match no RPC at all (decision, see `UNROUTED_POLICY`): outside the gRPC
service prefixes they are allowed for any authenticated caller, so a typo'd REST path is
a 404 from the router instead of a 403 that would wrongly suggest "exists, not for you".
This is only safe because the policy's permission is the *negation* of every RPC's
permission (ALLOW policies are OR-ed: a plain "any authenticated" policy would open
every RPC to every role) and because each RPC permission is at least as wide as what the
transcoder maps to that RPC. Under the service prefixes an unknown method is denied, the
same fail-closed rule the services apply to methods missing from METHOD_ROLES.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.http_rules import RpcRule, template_to_regex

JWT_FILTER_NAME = "envoy.filters.http.jwt_authn"
JWT_PAYLOAD_KEY = "jwt_payload"
ROLES_CLAIM = "roles"
HEALTHZ_PATH = "/healthz"

OPEN_POLICY = "open-endpoints"
UNROUTED_POLICY = "authenticated-unrouted"

Json = dict[str, Any]


def method_is(method: str) -> Json:
    return {"header": {"name": ":method", "string_match": {"exact": method}}}


def _path_exact(path: str) -> Json:
    return {"url_path": {"path": {"exact": path}}}


def _path_prefix(prefix: str) -> Json:
    return {"url_path": {"path": {"prefix": prefix}}}


def _path_regex(regex: str) -> Json:
    return {"url_path": {"path": {"safe_regex": {"regex": regex}}}}


def _jwt_metadata(path: list[str], value: Json) -> Json:
    # `Principal.metadata` is deprecated in Envoy 1.40; `sourced_metadata` (dynamic
    # metadata by default) is its replacement.
    return {
        "sourced_metadata": {
            "metadata_matcher": {
                "filter": JWT_FILTER_NAME,
                "path": [{"key": key} for key in path],
                "value": value,
            }
        }
    }


def role_principal(role: str) -> Json:
    """The caller's `roles` claim (a list) contains `role`."""
    return _jwt_metadata(
        [JWT_PAYLOAD_KEY, ROLES_CLAIM],
        {"list_match": {"one_of": {"string_match": {"exact": role}}}},
    )


def authenticated_principal() -> Json:
    """jwt_authn verified a token (it only writes the payload for a valid one)."""
    return _jwt_metadata([JWT_PAYLOAD_KEY], {"present_match": True})


def rpc_permission(rule: RpcRule) -> Json:
    """The gRPC path, or any REST binding of the RPC (method and path)."""
    alternatives: list[Json] = [_path_exact(rule.grpc_path)]
    for binding in rule.bindings:
        alternatives.append(
            {
                "and_rules": {
                    "rules": [
                        method_is(binding.method),
                        _path_regex(template_to_regex(binding.template)),
                    ]
                }
            }
        )
    return {"or_rules": {"rules": alternatives}}


def open_permissions(open_prefixes: Iterable[str]) -> list[Json]:
    """What needs no identity: the health endpoint, gRPC infra services and CORS preflights."""
    return [
        _path_exact(HEALTHZ_PATH),
        *(_path_prefix(prefix) for prefix in open_prefixes),
        method_is("OPTIONS"),
    ]


def outside(prefixes: Iterable[str]) -> Json:
    """A path under none of `prefixes`."""
    return {"not_rule": {"or_rules": {"rules": [_path_prefix(p) for p in prefixes]}}}


def build_rbac_policies(
    rules: Iterable[RpcRule],
    method_roles: Mapping[str, frozenset[str]],
    *,
    open_prefixes: Iterable[str],
    service_prefixes: Iterable[str],
    link_methods: Iterable[str] = (),
    api_prefixes: Iterable[str] = (),
) -> dict[str, Json]:
    """Policy name -> Policy for the RBAC filter's ALLOW rules.

    An RPC without roles in `method_roles` gets no policy (denied) but still counts as
    known, so the unrouted fallback cannot let its REST path through. A link method (its
    request carries a signed link the service checks) is open, like everything outside the
    API and the gRPC services: the web app's files and pages.
    """
    rules = list(rules)
    service_prefixes = list(service_prefixes)
    links = set(link_methods)
    permissions = open_permissions(open_prefixes)
    permissions += [rpc_permission(rule) for rule in rules if rule.grpc_path in links]
    if api_prefixes:
        permissions.append(outside([*api_prefixes, *service_prefixes]))
    policies: dict[str, Json] = {
        OPEN_POLICY: {"permissions": permissions, "principals": [{"any": True}]}
    }
    for rule in rules:
        roles = sorted(method_roles.get(rule.grpc_path, frozenset()))
        if not roles:
            continue
        policies[rule.grpc_path] = {
            "permissions": [rpc_permission(rule)],
            "principals": [role_principal(role) for role in roles],
        }
    known = [rpc_permission(rule) for rule in rules]
    known.extend(_path_prefix(prefix) for prefix in service_prefixes)
    policies[UNROUTED_POLICY] = {
        "permissions": [{"not_rule": {"or_rules": {"rules": known}}}],
        "principals": [authenticated_principal()],
    }
    return policies


def rbac_filter_config(policies: Mapping[str, Json]) -> Json:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
        "rules": {"action": "ALLOW", "policies": dict(policies)},
    }
