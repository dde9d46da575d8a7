from __future__ import annotations

from services.common.auth import Principal
from services.query.grants import Grant, may_read

ALICE = Principal(subject="alice", tenant="demo", roles=frozenset({"data_scientist"}))


def test_role_glob() -> None:
    grants = [Grant("role", "data_scientist", "pump-*")]
    assert may_read(grants, ALICE, "pump-001")
    assert not may_read(grants, ALICE, "turbine-001")
    assert not may_read(grants, ALICE, "PUMP-001")  # ids are case-sensitive


def test_subject_grant_and_other_roles() -> None:
    grants = [Grant("subject", "alice", "turbine-002"), Grant("role", "model_approver", "*")]
    assert may_read(grants, ALICE, "turbine-002")
    assert not may_read(grants, ALICE, "turbine-001")


def test_no_grants_no_access() -> None:
    assert not may_read([], ALICE, "pump-001")
