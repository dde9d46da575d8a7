"""mlplane SDK: history exports into pandas / Arrow, the ONNX model registry and
approvals, over gRPC (sync API, so it works the same in notebooks and scripts).

>>> from mlplane_client import Client, NotFound
>>> c = Client.from_env()  # MLPLANE_URL, MLPLANE_TOKEN  # doctest: +SKIP
"""

from mlplane_client._transport import RetryPolicy, Target
from mlplane_client.client import Client
from mlplane_client.errors import (
    Conflict,
    DeadlineExceeded,
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

__all__ = [
    "ArrowExport",
    "Client",
    "Conflict",
    "DeadlineExceeded",
    "ExportManifest",
    "HistoryExport",
    "IntegrityError",
    "InvalidArgument",
    "MlplaneError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "Target",
    "Unauthenticated",
    "Unavailable",
]
