"""mlplane SDK: history exports into pandas / Arrow, the ONNX model registry and
approvals, over gRPC (sync API, so it works the same in notebooks and scripts).

Results are typed (`Model`, `ModelVersion`, `Approval`, `Asset`,
`ExportManifest`, …): statuses are words (`VersionStatus`, `ApprovalState`,
`ExportFormat`, `ExportStatus`), times UTC `datetime`s; `.to_dict()` gives JSON
values and `.raw` the protobuf message.

>>> from mlplane_client import Client, NotFound
>>> c = Client.from_env()  # MLPLANE_URL, MLPLANE_TOKEN  # doctest: +SKIP
>>> c.get_version(model_id, 1).status == "PENDING_APPROVAL"  # doctest: +SKIP
True
"""

from mlplane_client._transport import RetryPolicy, Target
from mlplane_client.client import Client
from mlplane_client.enums import ApprovalState, ExportFormat, ExportStatus, VersionStatus
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
)
from mlplane_client.exports import ArrowExport, ExportManifest, HistoryExport
from mlplane_client.resources import (
    Approval,
    Asset,
    FailureEvent,
    Model,
    ModelVersion,
    OnnxSignature,
    OperatorSetId,
    StatusChange,
    Tag,
    TensorSpec,
)

__all__ = [
    "Approval",
    "ApprovalState",
    "ArrowExport",
    "Asset",
    "Client",
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
    "MlplaneError",
    "Model",
    "ModelVersion",
    "NotFound",
    "OnnxSignature",
    "OperatorSetId",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "StatusChange",
    "Tag",
    "Target",
    "TensorSpec",
    "Unauthenticated",
    "Unavailable",
    "VersionStatus",
]
