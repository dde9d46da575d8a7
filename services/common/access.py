"""Which roles may call which RPC: the single table both the services' role
interceptor and the gateway's RBAC policy are built from.

A method missing from the table is refused (fail closed); a test checks the
table covers every method in the descriptors.
"""

from __future__ import annotations

from services.common.settings import ROLE_DATA_SCIENTIST as DS
from services.common.settings import ROLE_MODEL_APPROVER as APPROVER

_READERS = frozenset({DS, APPROVER})
_SCIENTISTS = frozenset({DS})
_APPROVERS = frozenset({APPROVER})

METHOD_ROLES: dict[str, frozenset[str]] = {
    # History is read by scientists, and by approvers judging a model's data.
    "/mlplane.v1.QueryService/ListAssets": _READERS,
    "/mlplane.v1.QueryService/GetAsset": _READERS,
    "/mlplane.v1.QueryService/ExportHistory": _READERS,
    "/mlplane.v1.QueryService/ExportHistoryCsv": _READERS,
    "/mlplane.v1.QueryService/GetExport": _READERS,
    "/mlplane.v1.QueryService/ListExports": _READERS,
    # A download link carries its creator's roles; whoever may export may make one.
    "/mlplane.v1.QueryService/CreateExportLink": _READERS,
    # Failure labels are for training: scientists only.
    "/mlplane.v1.QueryService/ListFailureEvents": _SCIENTISTS,
    # Scientists bring models in and submit them.
    "/mlplane.v1.ModelRegistry/UploadModel": _SCIENTISTS,
    "/mlplane.v1.ModelRegistry/UploadModelMultipart": _SCIENTISTS,
    "/mlplane.v1.ModelRegistry/SubmitForApproval": _SCIENTISTS,
    # Everyone in the tenant may read the registry.
    "/mlplane.v1.ModelRegistry/ListModels": _READERS,
    "/mlplane.v1.ModelRegistry/GetModel": _READERS,
    "/mlplane.v1.ModelRegistry/ListModelVersions": _READERS,
    "/mlplane.v1.ModelRegistry/GetModelVersion": _READERS,
    "/mlplane.v1.ModelRegistry/GetValidationReport": _READERS,
    "/mlplane.v1.ModelRegistry/DownloadModelVersion": _READERS,
    "/mlplane.v1.ModelRegistry/CreateModelDownloadLink": _READERS,
    "/mlplane.v1.ModelRegistry/GetApproval": _READERS,
    "/mlplane.v1.ModelRegistry/ListAuditEntries": _READERS,
    # Decisions belong to approvers.
    "/mlplane.v1.ModelRegistry/ListApprovals": _APPROVERS,
    "/mlplane.v1.ModelRegistry/ApproveModelVersion": _APPROVERS,
    "/mlplane.v1.ModelRegistry/RejectModelVersion": _APPROVERS,
    "/mlplane.v1.ModelRegistry/ArchiveModelVersion": _APPROVERS,
}

# Methods whose request carries its own credential (a signed download link) instead of a
# bearer token: a browser's download cannot send one. The servicer verifies the link, and the
# roles it carries must still allow the export it names.
LINK_METHODS: dict[str, str] = {
    "/mlplane.v1.QueryService/DownloadExport": "/mlplane.v1.QueryService/ExportHistoryCsv",
    "/mlplane.v1.ModelRegistry/DownloadModelVersionByLink": (
        "/mlplane.v1.ModelRegistry/DownloadModelVersion"
    ),
}

# Infrastructure services anyone may call without a token: load balancers and
# grpcurl need them before they have one.
OPEN_SERVICE_PREFIXES: tuple[str, ...] = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
)


def is_open(method: str) -> bool:
    return method.startswith(OPEN_SERVICE_PREFIXES)


def allowed_roles(method: str) -> frozenset[str]:
    return METHOD_ROLES.get(method, frozenset())


def is_link_authenticated(method: str) -> bool:
    return method in LINK_METHODS
