"""The RPCs of the gateway's services and their REST bindings, read from the descriptor set.

The `google.api.http` annotations in the descriptor set Envoy's transcoder loads are the
only definition of the REST surface, so the RBAC policy reads the very same bytes: a REST
path cannot be transcoded without also being known to the authorisation rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2


@dataclass(frozen=True)
class HttpBinding:
    """One REST binding of an RPC: an HTTP method and a path template."""

    method: str
    template: str


@dataclass(frozen=True)
class RpcRule:
    """An RPC of a transcoded service with every REST binding it has."""

    service: str
    name: str
    bindings: tuple[HttpBinding, ...]
    # `response_body` of every binding that sets one (checked against Envoy's limits).
    response_bodies: tuple[str, ...] = ()
    output_type: str = ""
    # The client streams its request (an upload): a retry could not replay it.
    client_streaming: bool = False

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.name}"


_PATTERN_FIELDS = ("get", "put", "post", "delete", "patch")


def _response_bodies(rule: http_pb2.HttpRule) -> list[str]:
    found = [rule.response_body] if rule.response_body else []
    for extra in rule.additional_bindings:
        found.extend(_response_bodies(extra))
    return found


def _bindings(rule: http_pb2.HttpRule) -> list[HttpBinding]:
    found: list[HttpBinding] = []
    kind = rule.WhichOneof("pattern")
    if kind in _PATTERN_FIELDS:
        found.append(HttpBinding(kind.upper(), str(getattr(rule, kind))))
    elif kind == "custom":
        found.append(HttpBinding(rule.custom.kind.upper(), rule.custom.path))
    for extra in rule.additional_bindings:
        found.extend(_bindings(extra))
    return found


def load_rpc_rules(descriptor_path: Path, services: Iterable[str]) -> list[RpcRule]:
    """Every method of `services` in the descriptor set, in declaration order.

    Raises ValueError when a service is missing: Envoy would refuse the transcoder config
    anyway, and a clear message here beats its start-up error.
    """
    fds = _read_descriptor_set(descriptor_path)
    wanted = list(services)
    by_name: dict[str, list[RpcRule]] = {}
    for file in fds.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}" if file.package else service.name
            if full_name not in wanted:
                continue
            by_name[full_name] = [
                RpcRule(
                    service=full_name,
                    name=method.name,
                    bindings=tuple(_bindings(method.options.Extensions[annotations_pb2.http])),
                    response_bodies=tuple(
                        _response_bodies(method.options.Extensions[annotations_pb2.http])
                    ),
                    output_type=method.output_type.lstrip("."),
                    client_streaming=method.client_streaming,
                )
                for method in service.method
            ]
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise ValueError(f"services {missing} not found in descriptor set {descriptor_path}")
    return [rule for name in wanted for rule in by_name[name]]


def _read_descriptor_set(descriptor_path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())


HTTP_BODY_TYPE = "google.api.HttpBody"


def unsupported_response_bodies(descriptor_path: Path, services: Iterable[str]) -> list[str]:
    """RPCs whose `response_body` Envoy's transcoder refuses to load.

    Envoy (1.40 included) only supports `response_body` naming a `google.api.HttpBody`
    field and fails at start-up otherwise ("Setting response_body is not supported yet
    for non-HttpBody fields"); naming them here gives a clear error before Envoy runs.
    """
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}

    def collect(prefix: str, message: descriptor_pb2.DescriptorProto) -> None:
        full = f"{prefix}.{message.name}" if prefix else message.name
        messages[full] = message
        for nested in message.nested_type:
            collect(full, nested)

    for file in _read_descriptor_set(descriptor_path).file:
        for message in file.message_type:
            collect(file.package, message)

    def field_type(message_name: str, field_path: str) -> str | None:
        current = message_name
        for name in field_path.split("."):
            message = messages.get(current)
            field = next((f for f in message.field if f.name == name), None) if message else None
            if field is None or not field.type_name:
                return None
            current = field.type_name.lstrip(".")
        return current

    bad: list[str] = []
    for rule in load_rpc_rules(descriptor_path, services):
        for body in rule.response_bodies:
            if field_type(rule.output_type, body) != HTTP_BODY_TYPE:
                bad.append(f"{rule.grpc_path} (response_body: {body!r})")
    return bad


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split on `sep` outside `{...}` (a variable may hold its own `/`-separated pattern)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced '}}' in path template {text!r}")
        if char == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced '{{' in path template {text!r}")
    parts.append("".join(current))
    return parts


def _segments_regex(segments: list[str], template: str) -> str:
    """Regex for `/seg/seg...` (each segment with its leading slash)."""
    out: list[str] = []
    for segment in segments:
        if segment == "**":
            # Zero or more segments, like the transcoder's `**`.
            out.append("(?:/.*)?")
        elif segment == "*":
            out.append("/[^/]+")
        elif segment.startswith("{") and segment.endswith("}"):
            _field, eq, pattern = segment[1:-1].partition("=")
            if not eq:
                out.append("/[^/]+")
            else:
                inner = _segments_regex(_split_top_level(pattern, "/"), template)
                # The variable's own pattern starts with a segment, not a slash.
                out.append(inner)
        elif segment and not any(c in segment for c in "{}*"):
            out.append("/" + re.escape(segment))
        else:
            raise ValueError(f"unsupported segment {segment!r} in path template {template!r}")
    return "".join(out)


def template_to_regex(template: str) -> str:
    """An anchored RE2 regex for the request paths (query string excluded) a template matches.

    `{var}` and `*` are one non-empty segment, `**` any number of segments, a `:verb`
    suffix is literal. Trailing slashes are accepted because the transcoder's path matcher
    drops them before matching (`/api/v1/models/` is ListModels to it), and an RBAC regex
    that is narrower than the transcoder would let such a request skip its role check.
    Empty segments (`//`) are not handled here: the listener merges slashes first.
    """
    if not template.startswith("/"):
        raise ValueError(f"path template must start with '/': {template!r}")
    top = _split_top_level(template, ":")
    if len(top) > 2:
        raise ValueError(f"more than one ':verb' in path template {template!r}")
    path, verb = top[0], (top[1] if len(top) == 2 else None)
    if verb is not None and (not verb or "/" in verb):
        raise ValueError(f"bad ':verb' in path template {template!r}")
    body = _segments_regex(_split_top_level(path[1:], "/"), template)
    tail = "/*" if verb is None else "/*:" + re.escape(verb)
    return f"^{body}{tail}$"
