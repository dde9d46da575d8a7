"""mlplane SDK: history exports into pandas / Arrow, the ONNX model registry and
approvals, over gRPC (sync API, so it works the same in notebooks and scripts).

Results are typed (`Model`, `ModelVersion`, `Approval`, `ValidationReport`,
`Asset`, `ExportManifest`, …): statuses are words (`VersionStatus`,
`ApprovalState`, `ValidationState`, `CompatibilityVerdict`, `ExportFormat`,
`ExportStatus`), times UTC `datetime`s; `.to_dict()` gives JSON values and
`.raw` the protobuf message.

>>> from mlplane_client import Client, NotFound
>>> c = Client.from_env()  # MLPLANE_URL, MLPLANE_TOKEN  # doctest: +SKIP
>>> c.get_version(model_id, 1).status == "PENDING_APPROVAL"  # doctest: +SKIP
True
"""

from mlplane_client._transport import RetryPolicy, Target
from mlplane_client.client import Client
from mlplane_client.enums import (
    ApprovalState,
    CompatibilityVerdict,
    ExportFormat,
    ExportStatus,
    ValidationState,
    VersionStatus,
)
from mlplane_client.errors import (
    Conflict,
    DeadlineExceeded,
    FieldViolation,
    IntegrityError,
    InvalidArgument,
    MlplaneError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    ValidationTimeout,
)
from mlplane_client.exports import ArrowExport, ExportManifest, HistoryExport
from mlplane_client.resources import (
    Approval,
    Asset,
    FailureEvent,
    MetricCheck,
    MetricsVerification,
    Model,
    ModelVersion,
    OnnxSignature,
    OperatorSetId,
    RuntimeCheck,
    RuntimeOutput,
    SandboxLimits,
    SignatureCompatibility,
    SignatureDifference,
    StatusChange,
    Tag,
    TensorSpec,
    ValidationReport,
)

__all__ = [
    "Approval",
    "ApprovalState",
    "ArrowExport",
    "Asset",
    "Client",
    "CompatibilityVerdict",
    "Conflict",
    "DeadlineExceeded",
    "ExportFormat",
    "ExportManifest",
    "ExportStatus",
    "FailureEvent",
    "FieldViolation",
    "HistoryExport",
    "IntegrityError",
    "InvalidArgument",
    "MetricCheck",
    "MetricsVerification",
    "MlplaneError",
    "Model",
    "ModelVersion",
    "NotFound",
    "OnnxSignature",
    "OperatorSetId",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "RuntimeCheck",
    "RuntimeOutput",
    "SandboxLimits",
    "SignatureCompatibility",
    "SignatureDifference",
    "StatusChange",
    "Tag",
    "Target",
    "TensorSpec",
    "Unauthenticated",
    "Unavailable",
    "ValidationReport",
    "ValidationState",
    "ValidationTimeout",
    "VersionStatus",
]
