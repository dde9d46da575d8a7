"""`mlplane grant` changes who may read what, immediately, and is audited."""

from __future__ import annotations

import subprocess

import httpx

from tests.stack_runner import RunningStack, run_cli


def _mlplane(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(stack.state_dir, *args)


def _turbines_visible_to_bob(stack: RunningStack) -> list[str]:
    token = stack.tokens.valid("data_scientist", subject="bob")
    response = httpx.get(
        f"{stack.gateway_url}/api/v1/query/assets",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200
    return [a["assetId"] for a in response.json()["assets"] if a["assetId"].startswith("turbine")]


def test_grant_add_list_revoke(stack: RunningStack) -> None:
    assert _turbines_visible_to_bob(stack) == []
    added = _mlplane(
        stack,
        "grant",
        "add",
        "--tenant",
        "demo",
        "--subject",
        "bob",
        "--assets",
        "turbine-002",
        "--by",
        "ops-lead",
    )
    assert added.returncode == 0, added.stderr
    grant_id = added.stdout.split()[1].rstrip(":")
    try:
        assert _turbines_visible_to_bob(stack) == ["turbine-002"]
        listed = _mlplane(stack, "grant", "list", "--tenant", "demo")
        assert "bob" in listed.stdout
        assert "pump-*" in listed.stdout
    finally:
        revoked = _mlplane(stack, "grant", "revoke", grant_id, "--by", "ops-lead")
    assert revoked.returncode == 0, revoked.stderr
    assert _turbines_visible_to_bob(stack) == []
    again = _mlplane(stack, "grant", "revoke", grant_id)
    assert again.returncode == 1
    assert "no grant" in again.stderr
