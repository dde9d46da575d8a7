"""The contract's enums as words: `VersionStatus`, `ApprovalState`, `ExportFormat`,
`ExportStatus`, `ValidationState`, `CompatibilityVerdict`.

Each is a `StrEnum` whose values are the protobuf value names, so a status
compares equal to its name, prints as it, and serialises to JSON as the REST
surface spells it:

>>> VersionStatus.PENDING_APPROVAL == "PENDING_APPROVAL"
True
>>> print(VersionStatus.APPROVED)
APPROVED
>>> ApprovalState.parse("open")
ApprovalState.OPEN
>>> VersionStatus.from_proto(3), VersionStatus.APPROVED.number
(VersionStatus.APPROVED, 3)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from google.protobuf.descriptor import EnumDescriptor
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import query_service_pb2 as qpb


class ProtoWord(StrEnum):
    """A protobuf enum value as its name. Subclasses list the names of one enum."""

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        """The protobuf enum this mirrors."""
        raise NotImplementedError

    @classmethod
    def from_proto(cls, number: int) -> Self:
        """The member for a wire value. A value this SDK does not know yet (a newer
        server) reads as the zero value: the raw message still holds the number."""
        known = cls.descriptor().values_by_number.get(number)
        return cls(known.name if known is not None else cls.descriptor().values[0].name)

    @classmethod
    def parse(cls, value: str) -> Self:
        """A member from its name, in any case and with surrounding blanks.

        Raises ValueError naming the accepted words.
        """
        try:
            return cls(value.strip().upper())
        except ValueError:
            words = ", ".join(m.value for m in cls if m.number)
            raise ValueError(f"{value!r} is not one of {words}") from None

    @property
    def number(self) -> int:
        """The wire value."""
        return int(self.descriptor().values_by_name[self.value].number)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class VersionStatus(ProtoWord):
    """Lifecycle of a model version: `PENDING_APPROVAL` (uploaded, validated) →
    `IN_REVIEW` (submitted) → `APPROVED` | `REJECTED`; any → `ARCHIVED`.
    `STATUS_UNSPECIFIED` only appears as the `from_status` of the upload."""

    STATUS_UNSPECIFIED = "STATUS_UNSPECIFIED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    IN_REVIEW = "IN_REVIEW"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    ARCHIVED = "ARCHIVED"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        return mpb.ModelVersion.Status.DESCRIPTOR


class ApprovalState(ProtoWord):
    """Where an approval request is: `OPEN` until an approver decides it
    (`APPROVED`, `REJECTED`), or `CANCELLED` when its version was archived."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    OPEN = "OPEN"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        return mpb.Approval.State.DESCRIPTOR


class ValidationState(ProtoWord):
    """Where a version's validation stands: `PENDING` (queued), `RUNNING`, then
    `PASSED` or `FAILED` (see the report's `reason`). Approval needs `PASSED`."""

    STATE_UNSPECIFIED = "STATE_UNSPECIFIED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PASSED = "PASSED"
    FAILED = "FAILED"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        return mpb.ValidationReport.State.DESCRIPTOR

    @property
    def done(self) -> bool:
        """Whether the validation is over (`PASSED` or `FAILED`).

        >>> ValidationState.RUNNING.done, ValidationState.FAILED.done
        (False, True)
        """
        return self in (ValidationState.PASSED, ValidationState.FAILED)


class CompatibilityVerdict(ProtoWord):
    """A version's signature against the model's approved version: `COMPATIBLE`,
    `BREAKING` (the differences are listed) or `NO_APPROVED_VERSION`."""

    VERDICT_UNSPECIFIED = "VERDICT_UNSPECIFIED"
    COMPATIBLE = "COMPATIBLE"
    BREAKING = "BREAKING"
    NO_APPROVED_VERSION = "NO_APPROVED_VERSION"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        return mpb.SignatureCompatibility.Verdict.DESCRIPTOR


class ExportFormat(ProtoWord):
    """How an export's data was encoded: protobuf `ROWS`, `ARROW` IPC or `CSV`."""

    FORMAT_UNSPECIFIED = "FORMAT_UNSPECIFIED"
    ROWS = "ROWS"
    ARROW = "ARROW"
    CSV = "CSV"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        return qpb.Export.Format.DESCRIPTOR


class ExportStatus(ProtoWord):
    """Where an export is: `RUNNING`, then `COMPLETED`, `FAILED` or `CANCELLED`."""

    STATUS_UNSPECIFIED = "STATUS_UNSPECIFIED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @classmethod
    def descriptor(cls) -> EnumDescriptor:
        return qpb.Export.Status.DESCRIPTOR
