"""The typed results of the SDK: `Model`, `ModelVersion` (with its `OnnxSignature`
and `StatusChange` history), `Approval`, `ValidationReport` (with its
`RuntimeCheck`, `MetricsVerification` and `SignatureCompatibility`), `Asset`
(with its `Tag`s) and `FailureEvent`. (`ExportManifest` lives with the exports,
in `exports.py`.)

Kept whole (over 400 lines): one small frozen dataclass per message, each beside the
proto it is read from; splitting them would only scatter the imports.

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

from mlplane_client._record import Record, binary_size, brief, utc
from mlplane_client.enums import (
    ApprovalState,
    CompatibilityVerdict,
    ValidationState,
    VersionStatus,
)

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
    (`training_export_ids`), every status change (`status_history`), where its
    validation stands (`validation_state`; the report is
    `Client.get_validation_report`) and whether an evaluation set came with it."""

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
    validation_state: ValidationState = ValidationState.STATE_UNSPECIFIED
    has_evaluation_set: bool = False
    raw: mpb.ModelVersion = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "name",
        "version",
        "status",
        "validation_state",
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
            validation_state=ValidationState.from_proto(message.validation_state),
            has_evaluation_set=bool(message.has_evaluation_set),
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


# --- validation -----------------------------------------------------------------------------
def _optional(message: Message, name: str) -> float | None:
    return float(getattr(message, name)) if message.HasField(name) else None


def _failed(reason: str, message: str) -> str:
    """`failed REASON: message`, either part left out when empty."""
    return f"failed {': '.join(p for p in (reason, message) if p)}".rstrip()


def _number(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


@dataclass(frozen=True, slots=True, repr=False)
class SandboxLimits(Record):
    """The limits the runtime check's child process ran under."""

    memory_bytes: int
    cpu_seconds: int
    wall_seconds: float
    threads: int
    raw: mpb.SandboxLimits = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("memory_bytes", "cpu_seconds", "wall_seconds", "threads")

    @classmethod
    def from_proto(cls, message: mpb.SandboxLimits) -> SandboxLimits:
        return cls(
            memory_bytes=int(message.memory_bytes),
            cpu_seconds=int(message.cpu_seconds),
            wall_seconds=float(message.wall_seconds),
            threads=int(message.threads),
            raw=message,
        )

    def __str__(self) -> str:
        return (
            f"memory {binary_size(self.memory_bytes)}, CPU {self.cpu_seconds} s, "
            f"wall {self.wall_seconds:g} s, {self.threads} thread(s)"
        )


@dataclass(frozen=True, slots=True, repr=False)
class RuntimeOutput(Record):
    """One output of the runtime check's inference: ONNX Runtime's `type`
    (`tensor(float)`), the `shape` the model returned (empty when not a tensor)."""

    name: str
    type: str
    shape: tuple[int, ...]
    non_finite: bool
    raw: mpb.RuntimeOutput = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("name", "type", "shape", "non_finite")

    @classmethod
    def from_proto(cls, message: mpb.RuntimeOutput) -> RuntimeOutput:
        return cls(
            name=message.name,
            type=message.type,
            shape=tuple(int(d) for d in message.shape),
            non_finite=bool(message.non_finite),
            raw=message,
        )

    def __str__(self) -> str:
        flag = " (NaN or infinity)" if self.non_finite else ""
        return f"{self.name}: {self.type}[{', '.join(map(str, self.shape))}]{flag}"


@dataclass(frozen=True, slots=True, repr=False)
class RuntimeCheck(Record):
    """The model loaded and run in ONNX Runtime in a sandboxed child process:
    load time, latency of one batch (P50/P95 over `timed_runs`), peak memory,
    the outputs, and why it failed (`reason`, `message`) when it did."""

    passed: bool
    reason: str
    message: str
    onnxruntime_version: str
    batch_size: int
    load_seconds: float
    latency_p50_ms: float
    latency_p95_ms: float
    timed_runs: int
    peak_memory_bytes: int
    outputs: tuple[RuntimeOutput, ...]
    non_finite_output: bool
    limits: SandboxLimits | None
    network_isolation: tuple[str, ...]
    raw: mpb.RuntimeCheck = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "passed",
        "reason",
        "load_seconds",
        "latency_p50_ms",
        "latency_p95_ms",
        "peak_memory_bytes",
    )

    @classmethod
    def from_proto(cls, message: mpb.RuntimeCheck) -> RuntimeCheck:
        return cls(
            passed=bool(message.passed),
            reason=message.reason,
            message=message.message,
            onnxruntime_version=message.onnxruntime_version,
            batch_size=int(message.batch_size),
            load_seconds=float(message.load_seconds),
            latency_p50_ms=float(message.latency_p50_ms),
            latency_p95_ms=float(message.latency_p95_ms),
            timed_runs=int(message.timed_runs),
            peak_memory_bytes=int(message.peak_memory_bytes),
            outputs=tuple(RuntimeOutput.from_proto(o) for o in message.outputs),
            non_finite_output=bool(message.non_finite_output),
            limits=(
                SandboxLimits.from_proto(message.limits) if message.HasField("limits") else None
            ),
            network_isolation=tuple(message.network_isolation),
            raw=message,
        )

    @property
    def latency(self) -> str:
        """`P50 1.20 ms, P95 2.05 ms per batch of 1 (50 runs)`."""
        return (
            f"P50 {self.latency_p50_ms:.2f} ms, P95 {self.latency_p95_ms:.2f} ms "
            f"per batch of {self.batch_size} ({self.timed_runs} runs)"
        )

    def __str__(self) -> str:
        if not self.passed:
            return _failed(self.reason, self.message)
        flag = "; NaN or infinity in an output" if self.non_finite_output else ""
        return (
            f"loaded in {self.load_seconds:.3f} s; {self.latency}; "
            f"peak memory {binary_size(self.peak_memory_bytes)}{flag}"
        )


@dataclass(frozen=True, slots=True, repr=False)
class MetricCheck(Record):
    """One claimed metric (`name`, read as `metric`) against the value the
    evaluation set gave (`verified`, None when it could not be computed);
    `status` is `MATCH`, `MISMATCH` or `NOT_COMPUTED`."""

    name: str
    metric: str
    claimed: float
    verified: float | None
    difference: float | None
    tolerance: float | None
    status: str
    message: str
    raw: mpb.MetricCheck = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("name", "claimed", "verified", "status")

    @classmethod
    def from_proto(cls, message: mpb.MetricCheck) -> MetricCheck:
        return cls(
            name=message.name,
            metric=message.metric,
            claimed=float(message.claimed),
            verified=_optional(message, "verified"),
            difference=_optional(message, "difference"),
            tolerance=_optional(message, "tolerance"),
            status=message.status,
            message=message.message,
            raw=message,
        )

    def __str__(self) -> str:
        if self.verified is None:
            why = f": {self.message}" if self.message else ""
            return f"{self.name}: claimed {self.claimed:.4g}, {self.status}{why}"
        return (
            f"{self.name}: claimed {self.claimed:.4g}, verified {self.verified:.4g} "
            f"(difference {_number(self.difference, '+.2g')}, "
            f"tolerance {_number(self.tolerance, '.2g')}) {self.status}"
        )


@dataclass(frozen=True, slots=True, repr=False)
class MetricsVerification(Record):
    """The claimed metrics reproduced on the evaluation set: one `MetricCheck`
    per metric the service knows, the names it does not (`unknown_metrics`,
    reported, not checked), and why the evaluation could not run (`reason`)."""

    passed: bool
    reason: str
    message: str
    rows: int
    label_column: str
    checks: tuple[MetricCheck, ...]
    unknown_metrics: tuple[str, ...]
    threshold: float
    raw: mpb.MetricsVerification = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("passed", "reason", "rows", "checks", "unknown_metrics")

    @classmethod
    def from_proto(cls, message: mpb.MetricsVerification) -> MetricsVerification:
        return cls(
            passed=bool(message.passed),
            reason=message.reason,
            message=message.message,
            rows=int(message.rows),
            label_column=message.label_column,
            checks=tuple(MetricCheck.from_proto(c) for c in message.checks),
            unknown_metrics=tuple(message.unknown_metrics),
            threshold=float(message.threshold),
            raw=message,
        )

    def check(self, name: str) -> MetricCheck | None:
        """The check of a claimed metric, by the name it was claimed under."""
        return next((c for c in self.checks if c.name == name), None)

    def __str__(self) -> str:
        if self.reason:
            head = _failed(self.reason, self.message)
        else:
            head = f"{'passed' if self.passed else 'failed'} on {self.rows:,} rows"
        lines = [head, *map(str, self.checks)]
        if self.unknown_metrics:
            lines.append(f"not checked: {', '.join(self.unknown_metrics)}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True, repr=False)
class SignatureDifference(Record):
    """One difference between the version's signature and the approved
    version's: `change` (`REMOVED`, `ELEMENT_TYPE_CHANGED`, …) of an `input`,
    `output` or the `model` (`side`), from `old` to `new`."""

    change: str
    side: str
    tensor: str
    message: str
    old: str
    new: str
    raw: mpb.SignatureDifference = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("change", "side", "tensor", "old", "new")

    @classmethod
    def from_proto(cls, message: mpb.SignatureDifference) -> SignatureDifference:
        return cls(
            change=message.change,
            side=message.side,
            tensor=message.tensor,
            message=message.message,
            old=message.old,
            new=message.new,
            raw=message,
        )

    def __str__(self) -> str:
        where = f"{self.side} {self.tensor}".strip()
        what = self.message or f"{self.old or '-'} -> {self.new or '-'}"
        return f"{self.change} {where}: {what}"


@dataclass(frozen=True, slots=True, repr=False)
class SignatureCompatibility(Record):
    """The version's inputs and outputs against the model's approved version
    (`approved_version`, 0 when there is none): the verdict and every
    difference, `breaking` for callers of the approved version or not."""

    verdict: CompatibilityVerdict
    approved_version: int
    breaking: tuple[SignatureDifference, ...]
    non_breaking: tuple[SignatureDifference, ...]
    raw: mpb.SignatureCompatibility = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = ("verdict", "approved_version", "breaking")

    @classmethod
    def from_proto(cls, message: mpb.SignatureCompatibility) -> SignatureCompatibility:
        return cls(
            verdict=CompatibilityVerdict.from_proto(message.verdict),
            approved_version=int(message.approved_version),
            breaking=tuple(SignatureDifference.from_proto(d) for d in message.breaking),
            non_breaking=tuple(SignatureDifference.from_proto(d) for d in message.non_breaking),
            raw=message,
        )

    def __str__(self) -> str:
        head = str(self.verdict)
        if self.approved_version:
            head += f" with approved v{self.approved_version}"
        return "\n".join(
            [head, *(f"breaking: {d}" for d in self.breaking)]
            + [f"non-breaking: {d}" for d in self.non_breaking]
        )


@dataclass(frozen=True, slots=True, repr=False)
class ValidationReport(Record):
    """What the validation worker found out about a version: its `state`
    (`PENDING`, `RUNNING`, `PASSED`, `FAILED` with a `reason`), the ONNX Runtime
    check (`runtime`), the claimed metrics reproduced on the evaluation set
    (`metrics`, None without one) and the signature against the approved
    version (`compatibility`). Approval needs `PASSED`."""

    model_id: str
    version: int
    state: ValidationState
    reason: str
    message: str
    attempts: int
    create_time: datetime | None
    start_time: datetime | None
    complete_time: datetime | None
    runtime: RuntimeCheck | None
    metrics: MetricsVerification | None
    compatibility: SignatureCompatibility | None
    raw: mpb.ValidationReport = field(kw_only=True, compare=False, repr=False)

    _SHOWN: ClassVar[tuple[str, ...]] = (
        "model_id",
        "version",
        "state",
        "reason",
        "attempts",
        "complete_time",
    )

    @classmethod
    def from_proto(cls, message: mpb.ValidationReport) -> ValidationReport:
        return cls(
            model_id=message.model_id,
            version=int(message.version),
            state=ValidationState.from_proto(message.state),
            reason=message.reason,
            message=message.message,
            attempts=int(message.attempts),
            create_time=_when(message, "create_time"),
            start_time=_when(message, "start_time"),
            complete_time=_when(message, "complete_time"),
            runtime=(
                RuntimeCheck.from_proto(message.runtime) if message.HasField("runtime") else None
            ),
            metrics=(
                MetricsVerification.from_proto(message.metrics)
                if message.HasField("metrics")
                else None
            ),
            compatibility=(
                SignatureCompatibility.from_proto(message.compatibility)
                if message.HasField("compatibility")
                else None
            ),
            raw=message,
        )

    @property
    def done(self) -> bool:
        """Whether the validation is over (`PASSED` or `FAILED`)."""
        return self.state.done

    @property
    def passed(self) -> bool:
        return self.state is ValidationState.PASSED


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
