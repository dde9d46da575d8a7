"""The contract's field rules, checked for every request in one place.

The rules are `buf.validate` annotations in `protos/mlplane/v1/` (lengths, patterns, bounds,
sizes of maps and lists); `protovalidate` evaluates them from the very descriptors the web app
and any other client read, so a rule is written once. A failure is INVALID_ARGUMENT with an
`ErrorInfo` (reason `MISSING_FIELD` or `INVALID_FIELD`, metadata `field` and `rule`) and a
`google.rpc.BadRequest` listing every violation. Fields are named the way a REST caller spells
them: JSON names, `metadata.labels["team"]`, `trainingExportIds[0]`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import protovalidate
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from services.common.errors import ServiceError, invalid_argument

# Echoed user input (a map key) is cut short: a message must stay readable and small.
_KEY_ECHO_CHARS = 64
_MESSAGE_VIOLATIONS = 3
# protovalidate's own wording for `required`; ours reads "<field> is required".
_REQUIRED_RULE = "required"


class RequestValidator:
    """Checks messages against their contract rules (one compiled rule set per type)."""

    def __init__(self) -> None:
        self._validator = protovalidate.Validator()

    def check(self, message: Message, *, prefix: str = "") -> None:
        """Raise `ServiceError` (INVALID_ARGUMENT) if `message` breaks a rule.

        `prefix` names where the message sits for the caller (empty at the top level).
        """
        violations = self._validator.collect_violations(message)
        if violations:
            descriptor = cast(Descriptor, message.DESCRIPTOR)
            raise rule_error(descriptor, [v.proto for v in violations], prefix=prefix)


def rule_error(root: Descriptor, violations: Sequence[Any], *, prefix: str = "") -> ServiceError:
    """The error for protovalidate violations of a message of type `root`."""
    described = [_describe(root, violation, prefix) for violation in violations]
    field, rule, _ = described[0]
    sentences = [text for _, _, text in described[:_MESSAGE_VIOLATIONS]]
    if len(described) > _MESSAGE_VIOLATIONS:
        sentences.append(f"and {len(described) - _MESSAGE_VIOLATIONS} more")
    error = invalid_argument(
        "MISSING_FIELD" if rule == _REQUIRED_RULE else "INVALID_FIELD",
        "; ".join(sentences),
        field=field,
        rule=rule,
    )
    error.details.append(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=name, description=text, reason=rule_id
                )
                for name, rule_id, text in described
            ]
        )
    )
    return error


def _describe(root: Descriptor, violation: Any, prefix: str) -> tuple[str, str, str]:
    """(field path, rule id, sentence) of one violation."""
    path = field_path(root, violation.field.elements if violation.field else ())
    if prefix:
        path = f"{prefix}.{path}" if path else prefix
    rule = violation.rule_id or "invalid"
    subject = f"{path} key" if violation.for_key else path
    if rule == _REQUIRED_RULE:
        return path, rule, f"{subject} is required"
    return path, rule, f"{subject} {violation.message}".strip()


def field_path(root: Descriptor, elements: Sequence[Any]) -> str:
    """A protovalidate field path in JSON names: `metadata.labels["team"]`, `tags[2]`."""
    parts: list[str] = []
    descriptor: Descriptor | None = root
    for element in elements:
        field = (
            descriptor.fields_by_number.get(element.field_number)
            if descriptor is not None and element.field_number
            else None
        )
        # A oneof (`part`) has no number: its proto name is the only name it has.
        name = field.json_name if field is not None else element.field_name
        subscript = element.subscript
        if subscript is not None:
            key = subscript.value
            if isinstance(key, str):
                name += f"[{json.dumps(key[:_KEY_ECHO_CHARS])}]"
            else:
                name += f"[{key}]"
        parts.append(name)
        descriptor = _child(field, element)
    return ".".join(parts)


def _child(field: FieldDescriptor | None, element: Any) -> Descriptor | None:
    if field is None or field.message_type is None:
        return None
    entry = field.message_type
    if entry.GetOptions().map_entry:
        # A map's value type is where a path continues after a key.
        value = entry.fields_by_name["value"]
        return value.message_type if element.subscript is not None else entry
    return entry
