"""`mlplane grant` changes who may read what, immediately, and is audited."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx

from tests.stack_runner import ROOT, RunningStack


def _mlplane(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    env["MLPLANE_STATE_DIR"] = str(stack.state_dir)
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


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
