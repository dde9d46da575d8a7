"""The role table covers every RPC in the contracts, and only those."""

from __future__ import annotations

from mlplane.v1 import model_registry_pb2, query_service_pb2

from services.common import access
from services.common.settings import KNOWN_ROLES


def _contract_methods() -> set[str]:
    methods = set()
    for module in (query_service_pb2, model_registry_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            methods |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    return methods


def test_every_rpc_has_roles_or_a_link_and_nothing_else_does() -> None:
    assert set(access.METHOD_ROLES) | set(access.LINK_METHODS) == _contract_methods()
    assert not set(access.METHOD_ROLES) & set(access.LINK_METHODS)


def test_a_link_method_is_as_strict_as_the_method_it_stands_for() -> None:
    for method, stands_for in access.LINK_METHODS.items():
        assert access.is_link_authenticated(method)
        assert access.allowed_roles(stands_for), method
        assert access.allowed_roles(method) == frozenset()  # never by bearer token


def test_roles_are_known_and_non_empty() -> None:
    for method, roles in access.METHOD_ROLES.items():
        assert roles, method
        assert roles <= KNOWN_ROLES, method


def test_unmapped_methods_get_no_roles() -> None:
    assert access.allowed_roles("/mlplane.v1.QueryService/DropAllTables") == frozenset()
    assert access.is_open("/grpc.health.v1.Health/Check")
    assert not access.is_open("/mlplane.v1.QueryService/ListAssets")
