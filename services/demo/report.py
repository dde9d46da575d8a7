"""What `mlplane demo load` tells its user: the assets it made, where, and who may read them.

Every id a later command needs is printed here, with the exact `mlplane grant add` that lets
a role read the assets no grant covers yet (loads never grant anything but the demo plant's
own `pump-*` grant).
"""

from __future__ import annotations

import glob
import shlex
from fnmatch import fnmatchcase
from itertools import groupby

from services.db.grants import GrantRow, list_grants
from services.demo.load import DEMO_GRANT_ROLE, DEMO_TENANT, LoadReport


def _family(asset_id: str) -> str:
    return asset_id.rsplit("-", 1)[0]


def _span(ids: list[str]) -> str:
    return ", ".join(ids) if len(ids) <= 2 else f"{ids[0]} … {ids[-1]}"


def describe_ids(asset_ids: list[str]) -> str:
    """``pump-001 … pump-008, turbine-001, turbine-002``: runs of one prefix shortened."""
    return ", ".join(_span(list(run)) for _, run in groupby(asset_ids, key=_family))


async def describe_load(dsn: str, report: LoadReport, *, prog: str = "mlplane") -> list[str]:
    lines = [
        f"loaded {report.rows:,} rows ({report.assets} assets, {report.tags} tags, "
        f"{report.failures} failure events) in {report.seconds:.1f}s"
    ]
    where = f"tenant {report.tenant}: {describe_ids(report.asset_ids)}"
    if report.start is not None and report.until is not None:
        where += f", {report.start:%Y-%m-%d %H:%M} .. {report.until:%Y-%m-%d %H:%M} UTC"
    if report.anchor is not None:
        where += f" (anchored {report.anchor:%Y-%m-%d} 00:00 UTC"
        # `mlplane up` keeps the demo tenant's plant live, and only that one.
        where += ", kept up to now by `mlplane up`)" if report.tenant == DEMO_TENANT else ")"
    lines.append(where)
    grants = await list_grants(dsn, tenant=report.tenant)
    for family, run in groupby(report.asset_ids, key=_family):
        lines += _grant_lines(report.tenant, family, list(run), grants, prog)
    return lines


def _grant_lines(
    tenant: str, family: str, ids: list[str], grants: list[GrantRow], prog: str
) -> list[str]:
    covering = [g for g in grants if all(fnmatchcase(a, g.asset_pattern) for a in ids)]
    if covering:
        return [
            f"{_span(ids)}: readable by {g.principal_kind} {g.principal} "
            f"(grant {g.grant_id}: {g.asset_pattern!r})"
            for g in covering
        ]
    # glob.escape keeps a prefix holding *, ? or [ literal in the pattern.
    pattern = f"{glob.escape(family)}-*"
    command = shlex.join(
        [prog, "grant", "add", "--tenant", tenant, "--role", DEMO_GRANT_ROLE, "--assets", pattern]
    )
    return [
        f"{_span(ids)}: no grant covers them yet; to let role {DEMO_GRANT_ROLE} read them:",
        f"  {command}",
    ]
