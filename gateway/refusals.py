"""What the gateway says when it refuses a request itself: Envoy's local replies, rewritten.

Kept whole (over 400 lines): its mappers are one ordered list, the first match wins.

Every refusal the gateway makes reads like a service's error, in one domain
(`gateway.mlplane`):

* REST callers get the `google.rpc.Status` JSON body the services' errors have: `code`,
  `message` and an `ErrorInfo` with a reason. Envoy's `json_format` writes it, so a message
  that echoes request data (a bad query parameter) is escaped properly.
* gRPC callers get `grpc-status` and `grpc-message`, and, where the message is fixed, the same
  Status in `grpc-status-details-bin`, so the SDK reads one reason whichever part refused.

Token and role refusals use the services' own words (`services.common.auth.token_refusal`,
`role_refusal`): jwt_authn writes why it refused a token to dynamic metadata
(`failed_status_in_metadata`), and each RPC's role refusal matches the RPC's gRPC path or REST
bindings. The first mapper that matches wins, so the specific ones come first, and gRPC ones
before REST ones.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.http_rules import RpcRule, template_to_regex
from gateway.limits import (
    MAX_JSON_BODY_BYTES,
    TOKEN_TOO_LARGE,
    UPLOAD_JSON_RPC,
    UPLOAD_MULTIPART_RPC,
    json_upload_limit_bytes,
    rest_binding_filter,
    token_too_large,
    upload_limit_bytes,
)
from gateway.rate_limit import RATE_LIMITED_MESSAGE, is_grpc_request, status_is
from gateway.rbac import JWT_FILTER_NAME, JWT_PAYLOAD_KEY, ROLES_CLAIM
from services.common.auth import role_refusal, token_refusal, token_too_large_message
from services.common.settings import Settings

Json = dict[str, Any]

GATEWAY_ERROR_DOMAIN = "gateway.mlplane"
# Where jwt_authn writes the status of a token it refused ({code, message}).
JWT_FAILURE_KEY = "jwt_failure"
STATUS_DETAILS_HEADER = "grpc-status-details-bin"
# Marks the transcoder's refusals for the Lua filter, which gives their proto field names
# (`start_time`) the JSON names a REST caller sent (`startTime`) and drops the mark.
FIELD_NAMES_HEADER = "x-mlplane-proto-field-names"

# google.rpc.Code values.
INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 3, 5, 7, 8
UNAVAILABLE, UNAUTHENTICATED, UNKNOWN, DEADLINE_EXCEEDED = 14, 16, 2, 4

# jwt_authn's failure texts (Envoy's jwt_verify_lib) and the services' reason for each.
JWT_FAILURES: tuple[tuple[str, str, str], ...] = (
    ("exact", "Jwt is missing", "TOKEN_MISSING"),
    ("exact", "Jwt is expired", "TOKEN_EXPIRED"),
    ("exact", "Jwt not yet valid", "TOKEN_NOT_YET_VALID"),
    ("prefix", "Jwt is not in the form of Header.Payload.Signature", "TOKEN_MALFORMED"),
    ("prefix", "Jwt header is an invalid", "TOKEN_MALFORMED"),
    ("prefix", "Jwt payload is an invalid", "TOKEN_MALFORMED"),
    ("prefix", "Jwt signature is an invalid", "TOKEN_MALFORMED"),
    ("exact", "Jwt verification fails", "TOKEN_SIGNATURE"),
    ("exact", "Jwt issuer is not configured", "TOKEN_ISSUER"),
    ("exact", "Audiences in Jwt are not allowed", "TOKEN_AUDIENCE"),
    ("prefix", "Jwks doesn't have key to match kid or alg", "TOKEN_KEY_UNKNOWN"),
)

SERVICE_UNAVAILABLE_MESSAGE = (
    "the service behind the gateway is not available (stopped, starting or overloaded); "
    "retry shortly"
)
UPSTREAM_TIMEOUT_MESSAGE = "the service did not answer in time"

# Other local replies a REST caller can meet, by HTTP status: (google.rpc code, reason,
# message). No message keeps Envoy's own text (e.g. the transcoder's "Could not find field").
OTHER_LOCAL_REPLIES: tuple[tuple[int, int, str, str | None], ...] = (
    (400, INVALID_ARGUMENT, "INVALID_REQUEST", None),
    (
        404,
        NOT_FOUND,
        "UNKNOWN_PATH",
        "no mlplane endpoint answers this method and path; the REST surface is under /api/v1/",
    ),
    (408, DEADLINE_EXCEEDED, "REQUEST_TIMEOUT", None),
    (
        413,
        RESOURCE_EXHAUSTED,
        "REQUEST_TOO_LARGE",
        f"the request body is larger than the gateway accepts ({MAX_JSON_BODY_BYTES:,} bytes)",
    ),
    (431, RESOURCE_EXHAUSTED, "HEADERS_TOO_LARGE", None),
    (503, UNAVAILABLE, "SERVICE_UNAVAILABLE", SERVICE_UNAVAILABLE_MESSAGE),
    (504, DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT", UPSTREAM_TIMEOUT_MESSAGE),
)


def _and(*filters: Json) -> Json:
    return {"and_filter": {"filters": list(filters)}}


def _or(filters: list[Json]) -> Json:
    return filters[0] if len(filters) == 1 else {"or_filter": {"filters": filters}}


def _grpc() -> Json:
    return {"header_filter": {"header": is_grpc_request()}}


def _header(name: str, match: Json) -> Json:
    return {"header_filter": {"header": {"name": name, "string_match": match}}}


def _jwt_failure(kind: str, text: str) -> Json:
    # Without match_if_key_not_found=false Envoy's MetadataFilter matches a request whose
    # token was fine (the key is then absent).
    return {
        "metadata_filter": {
            "matcher": {
                "filter": JWT_FILTER_NAME,
                "path": [{"key": JWT_FAILURE_KEY}, {"key": "message"}],
                "value": {"string_match": {kind: text}},
            },
            "match_if_key_not_found": False,
        }
    }


def _status_bin(code: int, reason: str, message: str, metadata: Mapping[str, str]) -> str:
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(reason=reason, domain=GATEWAY_ERROR_DOMAIN, metadata=metadata)
    )
    status = status_pb2.Status(code=code, message=message, details=[detail])
    return base64.b64encode(status.SerializeToString()).decode()


def _json_body(code: int, reason: str, metadata: Mapping[str, str]) -> Json:
    info: Json = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": GATEWAY_ERROR_DOMAIN,
    }
    if metadata:
        info["metadata"] = dict(metadata)
    return {
        "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": [info]},
        "content_type": "application/json",
    }


def refusal(
    when: Json,
    *,
    http_status: int,
    code: int,
    reason: str,
    message: str | None,
    metadata: Mapping[str, str] | None = None,
) -> list[Json]:
    """Two mappers for one refusal: gRPC callers (fixed message and details in the
    trailers), then REST callers (the Status JSON). `message=None` keeps Envoy's text, and
    then gRPC callers get no details (a Status whose message differs from grpc-message is
    one clients must not trust)."""
    metadata = dict(metadata or {})
    grpc_mapper: Json = {"filter": _and(when, _grpc()), "status_code": http_status}
    rest_mapper: Json = {
        "filter": when,
        "status_code": http_status,
        "body_format_override": _json_body(code, reason, metadata),
    }
    if message is not None:
        grpc_mapper["body"] = {"inline_string": message}
        grpc_mapper["headers_to_add"] = [
            {
                "header": {
                    "key": STATUS_DETAILS_HEADER,
                    "value": _status_bin(code, reason, message, metadata),
                },
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ]
        rest_mapper["body"] = {"inline_string": message}
    return [grpc_mapper, rest_mapper]


def _token_refusals(settings: Settings) -> list[Json]:
    mappers: list[Json] = []
    for kind, text, reason in JWT_FAILURES:
        # jwt_authn answers a token for another audience with 403; the services say 401.
        mappers += refusal(
            _jwt_failure(kind, text),
            http_status=401,
            code=UNAUTHENTICATED,
            reason=reason,
            message=token_refusal(reason, settings),
        )
    # A verified token whose `roles` is missing or not a list: RBAC's 403, the services' 401.
    # Envoy's MetadataFilter answers match_if_key_not_found for an absent payload or roles
    # and the value matcher otherwise; a string matcher never matches a list, so a roles
    # list means no match.
    roles_not_a_list = {
        "metadata_filter": {
            "matcher": {
                "filter": JWT_FILTER_NAME,
                "path": [{"key": JWT_PAYLOAD_KEY}, {"key": ROLES_CLAIM}],
                "value": {"string_match": {"safe_regex": {"regex": ".*"}}},
            },
            "match_if_key_not_found": True,
        }
    }
    mappers += refusal(
        _and(status_is(403), roles_not_a_list),
        http_status=401,
        code=UNAUTHENTICATED,
        reason="TOKEN_CLAIM_MISSING",
        message=token_refusal("TOKEN_ROLES_MISSING", settings),
    )
    # Any other token failure: Envoy's words.
    mappers += refusal(
        status_is(401), http_status=401, code=UNAUTHENTICATED, reason="TOKEN_INVALID", message=None
    )
    return mappers


def _rest_paths(rule: RpcRule) -> list[Json]:
    """The RPC's REST bindings as request-header filters (`:path` carries the query)."""
    return [
        _and(
            _header(":method", {"exact": binding.method}),
            _header(
                ":path",
                {"safe_regex": {"regex": template_to_regex(binding.template)[:-1] + r"(\?.*)?$"}},
            ),
        )
        for binding in rule.bindings
    ]


def _role_refusals(
    rules: Iterable[RpcRule], method_roles: Mapping[str, frozenset[str]]
) -> list[Json]:
    """Per RPC: `UploadModel requires role data_scientist`, as the service itself says."""
    mappers: list[Json] = []
    for rule in rules:
        roles = method_roles.get(rule.grpc_path, frozenset())
        if not roles:
            continue
        grpc_path = _header(":path", {"exact": rule.grpc_path})
        mappers += refusal(
            _and(status_is(403), _or([grpc_path, *_rest_paths(rule)])),
            http_status=403,
            code=PERMISSION_DENIED,
            reason="ROLE_REQUIRED",
            message=role_refusal(rule.grpc_path, roles),
            metadata={"method": rule.name, "required": ",".join(sorted(roles))},
        )
    # A method no role may call (not in the role table), or any other RBAC denial.
    mappers += refusal(
        status_is(403),
        http_status=403,
        code=PERMISSION_DENIED,
        reason="METHOD_NOT_MAPPED",
        message="this method is not open to any role",
    )
    return mappers


def _token_too_large() -> list[Json]:
    return refusal(
        token_too_large(),
        http_status=401,
        code=UNAUTHENTICATED,
        reason=TOKEN_TOO_LARGE,
        message=token_too_large_message(),
    )


def _upload_too_large(settings: Settings, rules: list[RpcRule]) -> list[Json]:
    """A model upload whose body is over the limit (gateway/limits.py): the reason and
    metadata the registry gives for a file over the limit, with the body's limit."""
    mappers: list[Json] = []
    for rpc, limit in (
        (UPLOAD_MULTIPART_RPC, upload_limit_bytes(settings.max_model_bytes)),
        (UPLOAD_JSON_RPC, json_upload_limit_bytes(settings.max_model_bytes)),
    ):
        paths = rest_binding_filter(rules, rpc)
        if not paths:
            continue
        # REST callers only (gRPC calls have no body limit at the gateway), and a request
        # the transcoder has seen says gRPC in its content-type: the JSON mapper alone.
        _grpc_mapper, rest_mapper = refusal(
            _and(status_is(413), _or(paths)),
            http_status=413,
            code=RESOURCE_EXHAUSTED,
            reason="MODEL_TOO_LARGE",
            message=(
                f"the upload is larger than the gateway accepts ({limit:,} bytes: models up "
                f"to {settings.max_model_bytes:,} bytes and their form fields); nothing was "
                "stored"
            ),
            metadata={
                "limitBytes": str(settings.max_model_bytes),
                "bodyLimitBytes": str(limit),
            },
        )
        mappers.append(rest_mapper)
    return mappers


def _upstream_failures() -> list[Json]:
    """gRPC callers of a service that is down, resetting or too slow: Envoy's own words
    (`upstream connect error ...`) become the status every other refusal has. Only callers
    that sent gRPC: a transcoded REST request says gRPC too by now, but it still carries
    x-envoy-original-path, and gets its JSON from `_other_local_replies`."""
    mappers: list[Json] = []
    for http_status, code, reason, message in (
        (503, UNAVAILABLE, "SERVICE_UNAVAILABLE", SERVICE_UNAVAILABLE_MESSAGE),
        (504, DEADLINE_EXCEEDED, "UPSTREAM_TIMEOUT", UPSTREAM_TIMEOUT_MESSAGE),
    ):
        grpc_mapper, _rest_mapper = refusal(
            _and(status_is(http_status), _not_transcoded()),
            http_status=http_status,
            code=code,
            reason=reason,
            message=message,
        )
        mappers.append(grpc_mapper)
    return mappers


def _not_transcoded() -> Json:
    return {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": False}}}


def _rate_limited() -> list[Json]:
    # local_ratelimit answers gRPC callers RESOURCE_EXHAUSTED itself (see rate_limit.py).
    return refusal(
        status_is(429),
        http_status=429,
        code=RESOURCE_EXHAUSTED,
        reason="RATE_LIMITED",
        message=RATE_LIMITED_MESSAGE,
    )


def _rest_caller() -> Json:
    """A request that did not arrive as gRPC. Once the transcoder has turned a REST request
    into gRPC its content-type says gRPC too, but it also leaves x-envoy-original-path."""
    not_grpc = {
        "header_filter": {
            "header": {
                **is_grpc_request(),
                "invert_match": True,
                # An absent header never matches otherwise, inverted or not.
                "treat_missing_header_as_empty": True,
            }
        },
    }
    transcoded = {
        "header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True}}
    }
    return _or([not_grpc, transcoded])


def _other_local_replies() -> list[Json]:
    """REST callers only: gRPC callers keep Envoy's status and text for these. A 400 is
    always the transcoder's (a bad query parameter or JSON body), which may refuse a request
    after rewriting its headers to gRPC and before marking it as transcoded."""
    mappers: list[Json] = []
    for http_status, code, reason, message in OTHER_LOCAL_REPLIES:
        mapper: Json = {
            "filter": status_is(http_status)
            if http_status == 400
            else _and(status_is(http_status), _rest_caller()),
            "body_format_override": _json_body(code, reason, {}),
        }
        if message is not None:
            mapper["body"] = {"inline_string": message}
        if http_status == 400:
            mapper["headers_to_add"] = [
                {
                    "header": {"key": FIELD_NAMES_HEADER, "value": "1"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ]
        mappers.append(mapper)
    return mappers


def local_reply_mappers(
    settings: Settings,
    rules: Iterable[RpcRule],
    method_roles: Mapping[str, frozenset[str]],
    *,
    rate_limited: bool,
) -> list[Json]:
    """The HCM's `local_reply_config.mappers`, most specific first."""
    rules = list(rules)
    mappers = [
        *_token_too_large(),
        *_token_refusals(settings),
        *_role_refusals(rules, method_roles),
        *_upload_too_large(settings, rules),
    ]
    if rate_limited:
        mappers += _rate_limited()
    return mappers + _upstream_failures() + _other_local_replies()
