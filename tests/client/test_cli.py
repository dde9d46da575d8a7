"""The `mlplane` client verbs end to end against the real stack: `--json` for
scripts, tables for humans, exit codes and one-line errors.

Most runs call `services.cli.main` in-process (same parser and dispatch as the
console script, a second faster); `run_cli` runs the real entry point where the
process boundary matters (exit status, stderr, `mlplane audit`)."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from services.cli import main
from tests.client.conftest import alice_token, bob_token, unique_name
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack, run_cli


class Cli:
    def __init__(self, stack: RunningStack, capsys: pytest.CaptureFixture[str]) -> None:
        self.stack = stack
        self.capsys = capsys

    def run(self, *args: str, token: str | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        argv = [*args, "--url", self.stack.gateway_target]
        if token:
            argv += ["--token", token]
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, token: str | None = None) -> Any:
        code, out, err = self.run(*args, "--json", token=token)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(stack: RunningStack, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(stack, capsys)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_assets_json_and_table(cli: Cli, stack: RunningStack) -> None:
    assets = cli.json("assets", token=alice_token(stack))
    assert [a["assetId"] for a in assets][:2] == ["pump-001", "pump-002"]
    code, out, _ = cli.run("assets", token=alice_token(stack))
    assert code == 0
    header, first = out.splitlines()[:2]
    assert header.split()[:3] == ["ASSET", "NAME", "TAGS"]
    assert first.startswith("pump-001 ")


def test_export_csv_and_parquet(
    cli: Cli, stack: RunningStack, window: tuple[datetime, datetime], tmp_path: Path
) -> None:
    start, end = _iso(window[0]), _iso(window[1])
    token = alice_token(stack)
    csv_file = tmp_path / "p1.csv"
    manifest = cli.json(
        "export", "pump-001", "--start", start, "--end", end, "--tags", "flow,bearing_temp",
        "-o", str(csv_file), token=token,
    )  # fmt: skip
    body = csv_file.read_bytes()
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert int(manifest["rowCount"]) == len(body.splitlines()) - 1 > 0  # int64: a string
    assert (manifest["format"], manifest["status"]) == ("CSV", "COMPLETED")
    assert manifest["file"] == str(csv_file)
    # --json is what a REST caller gets for the export, plus the file written
    rest = httpx.get(
        f"{stack.gateway_url}/api/v1/query/exports/{manifest['exportId']}",
        headers={"authorization": f"Bearer {token}"},
    )
    assert rest.status_code == 200, rest.text
    assert {**rest.json(), "file": str(csv_file)} == manifest

    parquet_file = tmp_path / "p1.parquet"
    code, out, err = cli.run(
        "export", "pump-001", "--start", start, "--end", end, "--resolution", "15m",
        "-o", str(parquet_file), token=token,
    )  # fmt: skip
    assert code == 0, err
    table = pq.read_table(parquet_file)
    assert table.column_names == ["bucket_time", "tag", "avg", "min", "max", "count"]
    lines = {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}
    assert int(lines["rows"]) == table.num_rows > 0
    assert (lines["format"], lines["status"]) == ("ARROW", "COMPLETED")
    assert lines["resolution"] == "900s"
    assert not list(tmp_path.glob(".*part"))


def test_export_upload_submit_approve_download_and_audit(
    cli: Cli, stack: RunningStack, window: tuple[datetime, datetime], tmp_path: Path
) -> None:
    alice, bob = alice_token(stack), bob_token(stack)
    export_id = cli.json(
        "export", "pump-002", "--start", _iso(window[0]), "--end", _iso(window[1]),
        "--tags", "flow", "-o", str(tmp_path / "train.parquet"), token=alice,
    )["exportId"]  # fmt: skip
    model = tmp_path / "m.onnx"
    model.write_bytes(linear_model(12, seed=3))
    name = unique_name("cli")
    version = cli.json(
        "upload", str(model), "--name", name, "--description", "from the CLI",
        "--metric", "auc=0.9", "--metric", "f1=0.5", "--training-export", export_id,
        "--label", "team=reliability", token=alice,
    )  # fmt: skip
    assert version["version"] == "1"  # proto3 JSON: int64 is a string
    assert version["status"] == "PENDING_APPROVAL"
    assert version["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert version["metrics"] == {"auc": 0.9, "f1": 0.5}
    assert version["trainingExportIds"] == [export_id]
    model_id = version["modelId"]
    # Approval needs a passed validation report: wait for the stack's worker (first, so the
    # version read twice below cannot change its validation state in between).
    report = cli.json(
        "validation", "show", model_id, "1", "--wait", "--wait-timeout", "120", token=alice
    )
    assert report["state"] == "PASSED", report

    models = cli.json("models", "list", "--filter", f'name = "{name}"', token=alice)
    assert [m["modelId"] for m in models] == [model_id]
    assert cli.json("models", "show", model_id, token=alice)["latestVersion"] == "1"
    assert [v["version"] for v in cli.json("versions", "list", model_id, token=alice)] == ["1"]
    code, out, _ = cli.run("versions", "show", model_id, "1", token=alice)
    assert code == 0
    assert "status:           PENDING_APPROVAL" in out
    assert "inputs:           X: FLOAT[batch, 12]" in out
    # --json is exactly what REST returns for the same version
    rest = httpx.get(
        f"{stack.gateway_url}/api/v1/models/{model_id}/versions/1",
        headers={"authorization": f"Bearer {alice}"},
    )
    assert rest.status_code == 200, rest.text
    assert cli.json("versions", "show", model_id, "1", token=alice) == rest.json()

    back = tmp_path / "back.onnx"
    download = cli.json("download", model_id, "1", "-o", str(back), token=alice)
    assert back.read_bytes() == model.read_bytes()
    assert download["sha256"] == version["sha256"]

    approval = cli.json("submit", model_id, "--comment", "ready", token=alice)
    assert approval["state"] == "OPEN"
    queue = cli.json("approvals", "list", token=bob)
    assert approval["approvalId"] in [a["approvalId"] for a in queue]
    code, out, _ = cli.run("approvals", "list", "--state", "open", token=bob)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith(approval["approvalId"]))
    assert row.split()[1:4] == [name, "1", "OPEN"]
    decided = cli.json("approvals", "approve", approval["approvalId"], "--comment", "ok", token=bob)
    assert decided["state"] == "APPROVED"
    assert decided["decidedBy"] == "bob"

    # archiving is the approver's: the data scientist is refused, exit 1, with a hint
    code, out, err = cli.run("archive", model_id, "1", token=alice)
    assert (code, out) == (1, "")
    assert err.startswith("mlplane: PERMISSION_DENIED"), err
    assert err.splitlines()[1].startswith("hint: "), err
    archived = cli.json("archive", model_id, "1", "--comment", "superseded", token=bob)
    assert archived["status"] == "ARCHIVED"

    # the existing `mlplane audit` verb (admin DSN from the state folder) sees it all
    audit = run_cli(stack.state_dir, "audit", "--model", model_id, "--json")
    assert audit.returncode == 0, audit.stderr
    actions = {json.loads(line)["action"] for line in audit.stdout.splitlines()}
    assert "model.upload" in actions
    assert any(a.startswith("approval.") for a in actions)


def test_reject_needs_a_comment_and_records_it(
    cli: Cli, stack: RunningStack, tmp_path: Path
) -> None:
    alice, bob = alice_token(stack), bob_token(stack)
    model = tmp_path / "m.onnx"
    model.write_bytes(linear_model(6))
    model_id = cli.json("upload", str(model), "--name", unique_name("rej"), token=alice)["modelId"]
    approval_id = cli.json("submit", model_id, "--version", "1", token=alice)["approvalId"]
    code, _, err = cli.run("approvals", "reject", approval_id, token=bob)
    assert code == 2
    assert "--comment" in err
    rejected = cli.json("approvals", "reject", approval_id, "--comment", "too slow", token=bob)
    assert rejected["state"] == "REJECTED"
    assert rejected["decisionComment"] == "too slow"


def test_server_errors_exit_1_with_one_line_and_a_hint(
    cli: Cli, stack: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPLANE_TOKEN", raising=False)
    missing = "00000000-0000-4000-8000-000000000000"
    code, out, err = cli.run("models", "show", missing, token=alice_token(stack))
    assert (code, out) == (1, "")
    assert err == f"mlplane: NOT_FOUND MODEL_NOT_FOUND: model {missing} does not exist\n"

    # The wrong role: the gateway's message (today Envoy's "RBAC: access denied", or the
    # service's wording "ListApprovals requires role model_approver"), then the hint.
    code, _, err = cli.run("approvals", "list", token=alice_token(stack))
    assert code == 1
    head, hint = err.splitlines()
    assert head.startswith("mlplane: PERMISSION_DENIED")
    if "ROLE_REQUIRED" in head:
        assert "requires role model_approver" in head
        assert hint == (
            "hint: this needs a token with role model_approver "
            "(a dev stack mints one with `mlplane token --role model_approver`)"
        )
    else:
        assert hint.startswith("hint: your token lacks the role this call needs"), hint
        assert "model_approver: review queue" in hint

    code, _, err = cli.run("assets")  # no token anywhere
    assert code == 1
    head, hint = err.splitlines()
    assert head.startswith("mlplane: UNAUTHENTICATED")
    assert hint == (
        "hint: pass --token or set MLPLANE_TOKEN "
        "(a dev stack mints one with `mlplane token --role data_scientist`)"
    )


def test_an_expired_token_says_to_mint_a_new_one(cli: Cli, stack: RunningStack) -> None:
    code, _, err = cli.run("assets", token=stack.tokens.expired())
    assert code == 1
    head, hint = err.splitlines()
    assert head.startswith("mlplane: UNAUTHENTICATED")
    assert "expired" in head
    assert hint == (
        "hint: mint a new one (a dev stack: `mlplane token --role data_scientist`) "
        "and pass it as --token or MLPLANE_TOKEN"
    )


def test_a_token_pasted_with_its_scheme_works(
    cli: Cli,
    stack: RunningStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`MLPLANE_TOKEN="Bearer …"` and a trailing newline (a token read from a file)."""
    monkeypatch.setenv("MLPLANE_URL", stack.gateway_target)
    monkeypatch.setenv("MLPLANE_TOKEN", f"Bearer {alice_token(stack)}\n")
    capsys.readouterr()
    assert main(["assets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["assetId"] == "pump-001"
    code, _, err = cli.run("assets", token=f"  bearer {alice_token(stack)}  ")
    assert code == 0, err


def test_nothing_listening_names_the_url_and_make_up(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # released: nothing listens there
    monkeypatch.setenv("MLPLANE_URL", f"127.0.0.1:{port}")
    monkeypatch.setenv("MLPLANE_TOKEN", "x.y.z")
    capsys.readouterr()
    assert main(["models", "list"]) == 1
    head, hint = capsys.readouterr().err.splitlines()
    assert head.startswith("mlplane: UNAVAILABLE: failed to connect")
    assert hint == (
        f"hint: nothing answers at http://127.0.0.1:{port}: start the stack (`make up`) "
        "or point --url / MLPLANE_URL at the gateway"
    )


def test_usage_errors_exit_2(cli: Cli, stack: RunningStack, tmp_path: Path) -> None:
    token = alice_token(stack)
    model = tmp_path / "m.onnx"
    model.write_bytes(linear_model(4))
    csv = str(tmp_path / "x.csv")
    cases: list[tuple[tuple[str, ...], str]] = [
        (("export", "pump-001", "--start", "now-1h", "-o", "x.txt"), "mlplane: -o must end in"),
        (("export", "pump-001", "--start", "last tuesday", "-o", csv), "mlplane: not a time"),
        (("export", "pump-001", "--start=-1h", "--resolution", "soon", "-o", csv), "duration"),
        (("export", "pump-001", "-o", csv), "mlplane export: error: the following arguments"),
        (("upload", str(tmp_path / "missing.onnx"), "--name", "x"), "mlplane: no such file"),
        (("upload", str(tmp_path), "--name", "x"), "mlplane: no such file"),
        (("upload", str(model), "--name", "x", "--metric", "auc"), "takes KEY=VALUE"),
        (("upload", str(model), "--name", "x", "--metric", "auc=high"), "is not a number"),
        (("models", "frobnicate"), "mlplane models: error: argument models_command"),
        (("download", "m", "one", "-o", "x"), "mlplane download: error: argument version"),
    ]
    for args, message in cases:
        code, out, err = cli.run(*args, token=token)
        assert (code, out) == (2, ""), (args, err)
        assert message in err.strip().splitlines()[-1], (args, err)
    assert not (tmp_path / "x.csv").exists()


def test_the_console_entry_point(stack: RunningStack) -> None:
    """The real process (`python -m services.cli`): its exit status and stderr."""
    ok = run_cli(
        stack.state_dir, "assets", "--json",
        "--url", f"http://{stack.gateway_target}", "--token", alice_token(stack),
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["assetId"] == "pump-001"
    refused = run_cli(
        stack.state_dir, "versions", "list", "00000000-0000-4000-8000-000000000000",
        "--url", stack.gateway_target, "--token", alice_token(stack),
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr.startswith("mlplane: NOT_FOUND MODEL_NOT_FOUND: ")
    assert refused.stderr.count("\n") == 1


def test_env_variables_configure_the_client(
    cli: Cli,
    stack: RunningStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MLPLANE_URL", f"http://{stack.gateway_target}")
    monkeypatch.setenv("MLPLANE_TOKEN", alice_token(stack))
    capsys.readouterr()
    assert main(["assets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["assetId"] == "pump-001"
