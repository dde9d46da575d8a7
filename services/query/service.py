"""Wiring of the QueryService."""

from __future__ import annotations

from mlplane.v1 import query_service_pb2, query_service_pb2_grpc

from services.common.server import ServiceSpec
from services.common.settings import Settings
from services.common.unimplemented import placeholder_spec


def query_spec(settings: Settings) -> ServiceSpec:
    # Methods answer UNIMPLEMENTED until the QueryService issue (#3) lands.
    return placeholder_spec(query_service_pb2, query_service_pb2_grpc, "QueryService")
