"""Placeholder wiring for a service whose methods have not landed yet.

Every method answers UNIMPLEMENTED with an ErrorInfo, after authentication and
role checks ran exactly as for a real method, so the security surface can be
tested before the bodies exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from grpc import aio

from services.common.errors import not_implemented
from services.common.server import ServiceSpec


def _unimplemented(service: str, name: str) -> Any:
    async def method(self: object, request: Any, context: Any) -> Any:
        raise not_implemented(f"{service}.{name}")

    method.__name__ = name
    return method


def placeholder_spec(pb2: ModuleType, pb2_grpc: ModuleType, service: str) -> ServiceSpec:
    descriptor = pb2.DESCRIPTOR.services_by_name[service]
    servicer_cls = type(
        f"{service}Servicer",
        (getattr(pb2_grpc, f"{service}Servicer"),),
        {m.name: _unimplemented(service, m.name) for m in descriptor.methods},
    )
    add_to_server = getattr(pb2_grpc, f"add_{service}Servicer_to_server")

    async def register(server: aio.Server) -> Callable[[], Awaitable[None]]:
        add_to_server(servicer_cls(), server)

        async def cleanup() -> None:
            return None

        return cleanup

    return ServiceSpec(name=descriptor.full_name, register=register)
