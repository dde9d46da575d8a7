"""The admin commands as a user runs them from any folder against a running stack: `mlplane
token` (found through the stack's record, refused with a real issuer, its lifetime told on a
terminal), and `mlplane demo load` printing every id the next command needs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from tests.stack_runner import RunningStack

MLPLANE = str(Path(sys.executable).parent / "mlplane")


def _mlplane(
    *args: str, cwd: Path, xdg: Path, stderr: int | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
    environment["XDG_STATE_HOME"] = str(xdg)
    environment.update(env)
    return subprocess.run(
        [MLPLANE, *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        text=True,
        timeout=120,
        check=False,
    )


def _assets(stack: RunningStack, token: str) -> list[str]:
    response = httpx.get(
        f"{stack.gateway_url}/api/v1/query/assets",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return [a["assetId"] for a in response.json()["assets"]]


def test_token_from_another_folder_finds_the_running_stack(
    stack: RunningStack, tmp_path: Path
) -> None:
    done = _mlplane("token", "--role", "data_scientist", cwd=tmp_path, xdg=stack.xdg_state_home)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: nothing but the token, on stdout
    assert "pump-001" in _assets(stack, done.stdout.strip())


def test_grant_and_audit_from_another_folder(stack: RunningStack, tmp_path: Path) -> None:
    listed = _mlplane("grant", "list", "--tenant", "demo", cwd=tmp_path, xdg=stack.xdg_state_home)
    assert listed.returncode == 0, listed.stderr
    assert "pump-*" in listed.stdout
    audit = _mlplane("audit", "--limit", "1", cwd=tmp_path, xdg=stack.xdg_state_home)
    assert audit.returncode == 0, audit.stderr


@pytest.mark.parametrize(
    "command",
    [["token"], ["grant", "list"], ["audit"], ["demo", "load", "--assets", "1"]],
)
def test_without_a_running_stack_the_error_says_what_to_do(
    tmp_path: Path, command: list[str]
) -> None:
    done = _mlplane(*command, cwd=tmp_path, xdg=tmp_path / "xdg")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "make up" in done.stderr
    assert "MLPLANE_STATE_DIR=/path/to/.mlplane" in done.stderr


def test_a_stale_record_whose_folder_is_gone_is_not_used(
    stack: RunningStack, tmp_path: Path
) -> None:
    xdg = tmp_path / "xdg"
    stacks = xdg / "mlplane" / "stacks"
    stacks.mkdir(parents=True)
    # A live process (the running stack's), but the folder it names was deleted.
    record = stacks / "0123456789abcdef.json"
    record.write_text(json.dumps({"state_dir": str(tmp_path / "gone"), "pid": stack.proc.pid}))
    done = _mlplane("token", cwd=tmp_path, xdg=xdg)
    assert done.returncode == 2
    assert "make up" in done.stderr
    assert not record.exists()


def test_mlplane_state_dir_comes_first(stack: RunningStack, tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-a-stack"
    done = _mlplane(
        "token", cwd=tmp_path, xdg=stack.xdg_state_home, MLPLANE_STATE_DIR=str(elsewhere)
    )
    assert done.returncode == 2
    assert f"no dev signing key in {elsewhere}" in done.stderr
    local = tmp_path / "project"
    (local / ".mlplane").mkdir(parents=True)
    done = _mlplane("token", cwd=local, xdg=stack.xdg_state_home)
    assert done.returncode == 2
    assert "no dev signing key in .mlplane" in done.stderr


def test_token_refuses_with_a_real_issuer(stack: RunningStack, tmp_path: Path) -> None:
    for xdg in (stack.xdg_state_home, tmp_path / "xdg"):
        done = _mlplane(
            "token",
            cwd=tmp_path,
            xdg=xdg,
            MLPLANE_JWT_JWKS_URL="https://issuer.invalid/jwks.json",
        )
        assert done.returncode == 2
        assert done.stdout == ""
        assert "a real issuer is configured" in done.stderr


def test_on_a_terminal_token_says_whom_it_is_for_and_until_when(
    stack: RunningStack, tmp_path: Path
) -> None:
    for ttl, lasts in ((None, "1 h"), ("120", "2 min")):
        master, slave = os.openpty()
        try:
            extra = [] if ttl is None else ["--ttl", ttl]
            done = _mlplane(
                *("token", "--role", "data_scientist", "--subject", "carol", *extra),
                cwd=tmp_path,
                xdg=stack.xdg_state_home,
                stderr=slave,
            )
            os.close(slave)
            slave = -1
            note = _read_all(master)
        finally:
            os.close(master)
            if slave != -1:
                os.close(slave)
        assert done.returncode == 0
        token = done.stdout.strip()
        assert token not in note
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == (3600 if ttl is None else 120)
        match = re.fullmatch(
            r"mlplane token: for carol \(data_scientist; tenant demo\), valid until "
            r"(\S+ \S+) UTC \((.+); --ttl SECONDS changes it\)",
            note.strip(),
        )
        assert match, note
        assert match.group(2) == lasts


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_token_help_states_the_default_lifetime(tmp_path: Path) -> None:
    done = _mlplane("token", "--help", cwd=tmp_path, xdg=tmp_path)
    assert done.returncode == 0
    assert "default 3600 = 1 hour" in " ".join(done.stdout.split())


def test_demo_load_prints_the_assets_and_the_grant_they_need(
    stack: RunningStack, tmp_path: Path
) -> None:
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    xdg = stack.xdg_state_home
    load = ("demo", "load", "--tenant", tenant, "--assets", "2", "--days", "0.02")
    load += ("--hz", "0.05", "--tags", "3", "--prefix", "line7")
    done = _mlplane(*load, cwd=tmp_path, xdg=xdg)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("loaded 516 rows (2 assets, 6 tags, ")
    assert lines[1].startswith(f"tenant {tenant}: line7-001, line7-002, ")
    assert (
        lines[2]
        == "line7-001, line7-002: no grant covers them yet; to let role data_scientist read them:"
    )
    command = lines[3].strip()
    assert command == (
        f"{MLPLANE} grant add --tenant {tenant} --role data_scientist --assets 'line7-*'"
    )
    reader = stack.tokens.valid("data_scientist", tenant=tenant)
    assert _assets(stack, reader) == []

    # The printed command, run as printed, grants them; its output names the grant's id.
    granted = _mlplane(*shlex.split(command)[1:], cwd=tmp_path, xdg=xdg)
    assert granted.returncode == 0, granted.stderr
    grant = re.fullmatch(
        rf"grant (\d+): role 'data_scientist' may read 'line7-\*' in tenant '{tenant}'\n",
        granted.stdout,
    )
    assert grant, granted.stdout
    assert _assets(stack, reader) == ["line7-001", "line7-002"]

    again = _mlplane(*load, cwd=tmp_path, xdg=xdg)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[2] == (
        f"line7-001, line7-002: readable by role data_scientist (grant {grant.group(1)}: 'line7-*')"
    )

    # ... and `grant revoke` takes that id.
    revoked = _mlplane("grant", "revoke", grant.group(1), cwd=tmp_path, xdg=xdg)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == f"grant {grant.group(1)} revoked\n"
    assert _assets(stack, reader) == []


def test_demo_load_of_the_plant_names_its_assets_anchor_and_grants(
    stack: RunningStack, tmp_path: Path
) -> None:
    tenant = f"plant-{uuid.uuid4().hex[:8]}"
    done = _mlplane(
        "demo", "load", "--tenant", tenant, "--days", "1", cwd=tmp_path, xdg=stack.xdg_state_home
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(
        r"loaded [\d,]+ rows \(10 assets, 50 tags, \d+ failure events\) in .*", lines[0]
    )
    assert re.fullmatch(
        rf"tenant {tenant}: pump-001 … pump-008, turbine-001, turbine-002, "
        r"\S+ \S+ \.\. \S+ \S+ UTC \(anchored \d{4}-\d\d-\d\d 00:00 UTC\)",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        r"pump-001 … pump-008: readable by role data_scientist \(grant \d+: 'pump-\*'\)", lines[2]
    )
    assert lines[3:] == [
        "turbine-001, turbine-002: no grant covers them yet; to let role data_scientist read them:",
        f"  {MLPLANE} grant add --tenant {tenant} --role data_scientist --assets 'turbine-*'",
    ]
    audit = _mlplane(
        "audit",
        "--tenant",
        tenant,
        "--action",
        "demo.load",
        "--json",
        cwd=tmp_path,
        xdg=stack.xdg_state_home,
    )
    (row,) = [json.loads(line) for line in audit.stdout.splitlines()]
    assert (row["subject"], row["resource"], row["detail"]["seed"]) == (
        "cli",
        f"demo-plant/{tenant}",
        7,
    )
