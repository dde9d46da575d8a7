"""Per-asset read grants: (tenant, role or subject, asset glob)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from services.common.auth import Principal


@dataclass(frozen=True)
class Grant:
    principal_kind: str  # "role" or "subject"
    principal: str
    asset_pattern: str  # shell-style glob over asset ids, e.g. "pump-*"

    def applies_to(self, principal: Principal) -> bool:
        if self.principal_kind == "role":
            return self.principal in principal.roles
        return self.principal_kind == "subject" and self.principal == principal.subject

    def covers(self, asset_id: str) -> bool:
        # Case-sensitive whatever the OS: asset ids are exact identifiers.
        return fnmatchcase(asset_id, self.asset_pattern)


def may_read(grants: list[Grant], principal: Principal, asset_id: str) -> bool:
    return any(g.applies_to(principal) and g.covers(asset_id) for g in grants)
