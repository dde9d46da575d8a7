"""The typed results of the SDK: `Model`, `ModelVersion` (with its `OnnxSignature`
and `StatusChange` history), `Approval`, `Asset` (with its `Tag`s) and
`FailureEvent`. (`ExportManifest` lives with the exports, in `exports.py`.)

Each is a frozen dataclass with the protobuf message's field names: statuses
are words (`VersionStatus`, `ApprovalState`), times timezone-aware `datetime`s
in UTC (None when unset), numbers `int`, maps `dict`s and lists tuples. `raw`
keeps the message as received; `to_dict()` gives plain JSON values.

>>> from mlplane.v1 import model_registry_pb2 as mpb
>>> mv = ModelVersion.from_proto(mpb.ModelVersion(
...     model_id="7d2f", name="pump-risk", version=1, status=mpb.ModelVersion.PENDING_APPROVAL,
...     size_bytes=2048, metrics={"auc": 0.91}, created_by="alice"))
>>> mv
ModelVersion(name='pump-risk', version=1, status=PENDING_APPROVAL, model_id='7d2f', size_bytes=2048, metrics={'auc': 0.91}, created_by='alice')
>>> mv.status == "PENDING_APPROVAL", mv.raw.status
(True, 1)
>>> mv.to_dict()["status"], mv.to_dict()["create_time"]
('PENDING_APPROVAL', None)
"""  # noqa: E501 (a repr is one line)

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from google.protobuf.message import Message
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import query_service_pb2 as qpb

from mlplane_client._record import Record, brief, utc
from mlplane_client.enums import ApprovalState, VersionStatus

# Each result keeps `raw`, the message as received: keyword-only, left out of
# ==, hash() and repr.


def _when(message: Message, name: str) -> datetime | None:
    return utc(getattr(message, name)) if message.HasField(name) else None


# --- the registry ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, repr=False)
class Model(Record):
    """A model: a name unique per tenant, whose uploads are its versions."""

    model_id: str
    name: str
    description: str
    latest_version: int
    created_by: str
    create_time: datetime | None
    update_time: datetime | None
    latest_status: VersionStatus = VersionStatus.STATUS_UNSPECIFIED
    raw: mpb.Model = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "name",
        "model_id",
        "latest_version",
        "latest_status",
        "created_by",
        "update_time",
    )

    @classmethod
    def from_proto(cls, message: mpb.Model) -> Model:
        return cls(
            model_id=message.model_id,
            name=message.name,
            description=message.description,
            latest_version=int(message.latest_version),
            created_by=message.created_by,
            create_time=_when(message, "create_time"),
            update_time=_when(message, "update_time"),
            latest_status=VersionStatus.from_proto(message.latest_status),
            raw=message,
        )


@dataclass(frozen=True, slots=True, repr=False)
class TensorSpec(Record):
    """An input or output of the ONNX graph. `shape` holds a size (`int`), a
    symbolic name (`str`, e.g. `"batch"`) or None per dimension."""

    name: str
    element_type: str
    shape: tuple[int | str | None, ...]
    raw: mpb.TensorSpec = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("name", "element_type", "shape")

    @classmethod
    def from_proto(cls, message: mpb.TensorSpec) -> TensorSpec:
        shape: list[int | str | None] = []
        for dim in message.shape:
            kind = dim.WhichOneof("value")
            shape.append(int(dim.size) if kind == "size" else dim.param if kind else None)
        return cls(
            name=message.name, element_type=message.element_type, shape=tuple(shape), raw=message
        )

    def __str__(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.element_type}[{dims}]"


@dataclass(frozen=True, slots=True, repr=False)
class OperatorSetId(Record):
    """An operator set the model imports; `domain` "" is the default ONNX domain."""

    domain: str
    version: int
    raw: mpb.OperatorSetId = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("domain", "version")

    @classmethod
    def from_proto(cls, message: mpb.OperatorSetId) -> OperatorSetId:
        return cls(domain=message.domain, version=int(message.version), raw=message)

    def __str__(self) -> str:
        return f"{self.domain or 'ai.onnx'} {self.version}"


@dataclass(frozen=True, slots=True, repr=False)
class OnnxSignature(Record):
    """What the registry read out of the ONNX file."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset_imports: tuple[OperatorSetId, ...]
    ir_version: int
    producer_name: str
    producer_version: str
    raw: mpb.OnnxSignature = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "inputs",
        "outputs",
        "opset_imports",
        "ir_version",
        "producer_name",
        "producer_version",
    )

    @classmethod
    def from_proto(cls, message: mpb.OnnxSignature) -> OnnxSignature:
        return cls(
            inputs=tuple(TensorSpec.from_proto(t) for t in message.inputs),
            outputs=tuple(TensorSpec.from_proto(t) for t in message.outputs),
            opset_imports=tuple(OperatorSetId.from_proto(o) for o in message.opset_imports),
            ir_version=int(message.ir_version),
            producer_name=message.producer_name,
            producer_version=message.producer_version,
            raw=message,
        )

    def __str__(self) -> str:
        parts = [
            f"inputs {', '.join(map(str, self.inputs)) or '-'}",
            f"outputs {', '.join(map(str, self.outputs)) or '-'}",
            f"opsets {', '.join(map(str, self.opset_imports)) or '-'}",
        ]
        if self.ir_version:
            parts.append(f"IR {self.ir_version}")
        producer = f"{self.producer_name} {self.producer_version}".strip()
        if producer:
            parts.append(f"by {producer}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True, repr=False)
class StatusChange(Record):
    """One status transition of a version (`from_status` is `STATUS_UNSPECIFIED`
    for the upload)."""

    from_status: VersionStatus
    to_status: VersionStatus
    actor: str
    comment: str
    change_time: datetime | None
    raw: mpb.StatusChange = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "from_status",
        "to_status",
        "actor",
        "comment",
        "change_time",
    )

    @classmethod
    def from_proto(cls, message: mpb.StatusChange) -> StatusChange:
        return cls(
            from_status=VersionStatus.from_proto(message.from_status),
            to_status=VersionStatus.from_proto(message.to_status),
            actor=message.actor,
            comment=message.comment,
            change_time=_when(message, "change_time"),
            raw=message,
        )

    def __str__(self) -> str:
        when = brief(self.change_time) if self.change_time else "-"
        before = "upload" if self.from_status.number == 0 else self.from_status
        comment = f": {self.comment}" if self.comment else ""
        return f"{when} {before} -> {self.to_status} by {self.actor}{comment}"


@dataclass(frozen=True, slots=True, repr=False)
class ModelVersion(Record):
    """One uploaded version of a model, with its ONNX signature, metrics, lineage
    (`training_export_ids`) and every status change (`status_history`)."""

    model_id: str
    name: str
    version: int
    status: VersionStatus
    description: str
    labels: dict[str, str] = field(hash=False)
    metrics: dict[str, float] = field(hash=False)
    training_export_ids: tuple[str, ...]
    sha256: str
    size_bytes: int
    signature: OnnxSignature
    created_by: str
    create_time: datetime | None
    update_time: datetime | None
    status_history: tuple[StatusChange, ...]
    raw: mpb.ModelVersion = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "name",
        "version",
        "status",
        "model_id",
        "size_bytes",
        "metrics",
        "created_by",
        "create_time",
    )

    @classmethod
    def from_proto(cls, message: mpb.ModelVersion) -> ModelVersion:
        return cls(
            model_id=message.model_id,
            name=message.name,
            version=int(message.version),
            status=VersionStatus.from_proto(message.status),
            description=message.description,
            # Sorted: a protobuf map has no order, and a repr should not change between runs.
            labels=dict(sorted(message.labels.items())),
            metrics=dict(sorted(message.metrics.items())),
            training_export_ids=tuple(message.training_export_ids),
            sha256=message.sha256,
            size_bytes=int(message.size_bytes),
            signature=OnnxSignature.from_proto(message.signature),
            created_by=message.created_by,
            create_time=_when(message, "create_time"),
            update_time=_when(message, "update_time"),
            status_history=tuple(StatusChange.from_proto(c) for c in message.status_history),
            raw=message,
        )


@dataclass(frozen=True, slots=True, repr=False)
class Approval(Record):
    """An approval request: a version under review (`model_version`), who sent
    it, and the decision once there is one."""

    approval_id: str
    model_id: str
    model_name: str
    version: int
    state: ApprovalState
    submitted_by: str
    submit_comment: str
    submit_time: datetime | None
    decided_by: str
    decision_comment: str
    decide_time: datetime | None
    sha256: str
    model_version: ModelVersion | None
    raw: mpb.Approval = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "model_name",
        "version",
        "state",
        "approval_id",
        "submitted_by",
        "submit_time",
        "decided_by",
        "decide_time",
    )

    @classmethod
    def from_proto(cls, message: mpb.Approval) -> Approval:
        return cls(
            approval_id=message.approval_id,
            model_id=message.model_id,
            model_name=message.model_name,
            version=int(message.version),
            state=ApprovalState.from_proto(message.state),
            submitted_by=message.submitted_by,
            submit_comment=message.submit_comment,
            submit_time=_when(message, "submit_time"),
            decided_by=message.decided_by,
            decision_comment=message.decision_comment,
            decide_time=_when(message, "decide_time"),
            sha256=message.sha256,
            model_version=(
                ModelVersion.from_proto(message.model_version)
                if message.HasField("model_version")
                else None
            ),
            raw=message,
        )


# --- history --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, repr=False)
class Tag(Record):
    """One sensor signal of an asset."""

    name: str
    unit: str
    description: str
    raw: qpb.Tag = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("name", "unit")

    @classmethod
    def from_proto(cls, message: qpb.Tag) -> Tag:
        return cls(
            name=message.name, unit=message.unit, description=message.description, raw=message
        )

    def __str__(self) -> str:
        return f"{self.name} [{self.unit}]" if self.unit else self.name


@dataclass(frozen=True, slots=True, repr=False)
class Asset(Record):
    """An asset the token may read, with its tags and the time range of its
    stored samples (None when it has none)."""

    asset_id: str
    display_name: str
    tags: tuple[Tag, ...]
    first_time: datetime | None
    last_time: datetime | None
    raw: qpb.Asset = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "asset_id",
        "display_name",
        "tag_names",
        "first_time",
        "last_time",
    )

    @classmethod
    def from_proto(cls, message: qpb.Asset) -> Asset:
        return cls(
            asset_id=message.asset_id,
            display_name=message.display_name,
            tags=tuple(Tag.from_proto(t) for t in message.tags),
            first_time=_when(message, "first_time"),
            last_time=_when(message, "last_time"),
            raw=message,
        )

    @property
    def tag_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tags)


@dataclass(frozen=True, slots=True, repr=False)
class FailureEvent(Record):
    """One recorded failure of an asset (a training label); `end_time` is None
    while the asset is still down."""

    asset_id: str
    start_time: datetime | None
    end_time: datetime | None
    failure_mode: str
    description: str
    raw: qpb.FailureEvent = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("asset_id", "failure_mode", "start_time", "end_time")

    @classmethod
    def from_proto(cls, message: qpb.FailureEvent) -> FailureEvent:
        return cls(
            asset_id=message.asset_id,
            start_time=_when(message, "start_time"),
            end_time=_when(message, "end_time"),
            failure_mode=message.failure_mode,
            description=message.description,
            raw=message,
        )
