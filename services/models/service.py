"""Wiring of the ModelRegistry."""

from __future__ import annotations

from mlplane.v1 import model_registry_pb2, model_registry_pb2_grpc

from services.common.server import ServiceSpec
from services.common.settings import Settings
from services.common.unimplemented import placeholder_spec


def models_spec(settings: Settings) -> ServiceSpec:
    # Methods answer UNIMPLEMENTED until the registry and approval issues (#4, #5) land.
    return placeholder_spec(model_registry_pb2, model_registry_pb2_grpc, "ModelRegistry")
