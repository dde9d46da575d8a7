"""Requests for any RPC, generated from the proto descriptors (Hypothesis strategies).

A request is wire bytes, not a message: most are a message built field by field from its
descriptor (strings with control characters and every plane of Unicode, integers at and past
their type's edges, unknown enum numbers, nested and repeated fields, oversized text), some
are that message with a string field's bytes replaced by invalid UTF-8 (which no protobuf
library will serialize), some are arbitrary bytes. The services must answer each with a
status that names the problem, never INTERNAL/UNKNOWN.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from tests.security.harness import message_class

INT_EDGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

# Text people and attackers send: control characters, NUL, RTL marks, emoji, huge runs.
_NASTY = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\nb",
        "\r\n",
        "\u202e",
        "😀" * 50,
        "../../etc/passwd",
        "' OR 1=1 --",
        "%00",
        "${jndi:ldap://x}",
        'name:"pump" AND status = APPROVED',
        "2026-12-01T00:00:00Z",
        "9" * 400,
        "-1",
        "a" * 70_000,
    ]
)
_TEXT = st.one_of(
    _NASTY,
    st.text(max_size=300),
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40),
)


def _scalar(field: FieldDescriptor, known: dict[str, list[str]]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        hints = known.get(field.name, [])
        return st.one_of(st.sampled_from(hints), _TEXT) if hints else _TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=2048)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32 if kind == 2 else 64)
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-(2**31), 2**31 - 1))
    low, high = INT_EDGES[kind]
    return st.one_of(
        st.sampled_from([low, high, 0, 1, -1 if low < 0 else 2, 2**31 - 1, 2**31 % (high + 1)]),
        st.integers(low, high),
    )


def message_strategy(
    descriptor: Descriptor, known: dict[str, list[str]], depth: int = 0
) -> st.SearchStrategy[Any]:
    """A message of this type with any subset of its fields set to anything valid on the wire."""
    cls = message_class(descriptor.full_name)
    if descriptor.full_name.startswith("google.protobuf.") or depth > 3:
        return st.just(cls())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            entry = field.message_type
            if entry.GetOptions().map_entry:
                key = _scalar(entry.fields_by_name["key"], known)
                value_field = entry.fields_by_name["value"]
                value = (
                    message_strategy(value_field.message_type, known, depth + 1)
                    if value_field.type == FieldDescriptor.TYPE_MESSAGE
                    else _scalar(value_field, known)
                )
                fields[field.name] = st.dictionaries(key, value, max_size=4)
                continue
            inner = message_strategy(entry, known, depth + 1)
        else:
            inner = _scalar(field, known)
        if field.is_repeated:
            fields[field.name] = st.lists(inner, max_size=4)
        else:
            fields[field.name] = inner

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        message = cls()
        chosen = draw(st.lists(st.sampled_from(sorted(fields)), unique=True)) if fields else []
        for name in chosen:
            value = draw(fields[name])
            target = getattr(message, name)
            field = descriptor.fields_by_name[name]
            if (
                field.type == FieldDescriptor.TYPE_MESSAGE
                and field.message_type.GetOptions().map_entry
            ):
                for k, v in value.items():
                    if (
                        field.message_type.fields_by_name["value"].type
                        == FieldDescriptor.TYPE_MESSAGE
                    ):
                        target[k].CopyFrom(v)
                    else:
                        target[k] = v
            elif field.is_repeated:
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                target.CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return build()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int) -> bytes:
    return _varint(number << 3 | 2)  # wire type 2: length-delimited


def _invalid_utf8_field(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """One of the message's string fields, on the wire, holding bytes that are not UTF-8."""
    strings = [f for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]
    if not strings:
        return st.just(b"")
    bad = st.sampled_from([b"\xff", b"\xc3\x28", b"abc\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
    return st.builds(
        lambda field, raw: _key(field.number) + _varint(len(raw)) + raw,
        st.sampled_from(strings),
        bad,
    )


def request_bytes(descriptor: Descriptor, known: dict[str, list[str]]) -> st.SearchStrategy[bytes]:
    """Wire bytes for a request of this type: well formed, with invalid UTF-8, or random."""
    well_formed = message_strategy(descriptor, known).map(lambda m: m.SerializeToString())
    return st.one_of(
        well_formed,
        well_formed,
        well_formed,
        st.builds(lambda a, b: a + b, well_formed, _invalid_utf8_field(descriptor)),
        st.binary(max_size=256),
    )
