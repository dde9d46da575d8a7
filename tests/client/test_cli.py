"""The `mlplane` client verbs end to end against the real stack: `--json` for
scripts, tables for humans, exit codes and one-line errors.

Most runs call `services.cli.main` in-process (same parser and dispatch as the
console script, a second faster); `run_cli` runs the real entry point where the
process boundary matters (exit status, stderr, `mlplane audit`)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    assert manifest["rows"] == len(body.splitlines()) - 1 > 0
    assert manifest["encoding"] == "csv"
    assert manifest["file"] == str(csv_file)

    parquet_file = tmp_path / "p1.parquet"
    code, out, err = cli.run(
        "export", "pump-001", "--start", start, "--end", end, "--resolution", "15m",
        "-o", str(parquet_file), token=token,
    )  # fmt: skip
    assert code == 0, err
    table = pq.read_table(parquet_file)
    assert table.column_names == ["bucket_time", "tag", "avg", "min", "max", "count"]
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert int(lines["rows"]) == table.num_rows > 0
    assert lines["encoding"].strip() == "arrow"
    assert lines["resolution"].strip() == "900s"
    assert not list(tmp_path.glob(".*part"))


def test_export_upload_submit_approve_download_and_audit(
    cli: Cli, stack: RunningStack, window: tuple[datetime, datetime], tmp_path: Path
) -> None:
    alice, bob = alice_token(stack), bob_token(stack)
    export_id = cli.json(
        "export", "pump-002", "--start", _iso(window[0]), "--end", _iso(window[1]),
        "--tags", "flow", "-o", str(tmp_path / "train.parquet"), token=alice,
    )["export_id"]  # fmt: skip
    model = tmp_path / "m.onnx"
    model.write_bytes(linear_model(12, seed=3))
    name = unique_name("cli")
    version = cli.json(
        "upload", str(model), "--name", name, "--description", "from the CLI",
        "--metric", "auc=0.9", "--metric", "f1=0.5", "--training-export", export_id,
        "--label", "team=reliability", token=alice,
    )  # fmt: skip
    assert version["version"] == "1"  # proto3 JSON: int64 is a string
    assert version["status"] == "MODEL_VERSION_STATUS_PENDING_APPROVAL"
    assert version["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert version["metrics"] == {"auc": 0.9, "f1": 0.5}
    assert version["trainingExportIds"] == [export_id]
    model_id = version["modelId"]

    models = cli.json("models", "list", "--filter", f'name = "{name}"', token=alice)
    assert [m["modelId"] for m in models] == [model_id]
    assert cli.json("models", "show", model_id, token=alice)["latestVersion"] == "1"
    assert [v["version"] for v in cli.json("versions", "list", model_id, token=alice)] == ["1"]
    code, out, _ = cli.run("versions", "show", model_id, "1", token=alice)
    assert code == 0
    assert "status:           PENDING_APPROVAL" in out

    back = tmp_path / "back.onnx"
    download = cli.json("download", model_id, "1", "-o", str(back), token=alice)
    assert back.read_bytes() == model.read_bytes()
    assert download["sha256"] == version["sha256"]

    approval = cli.json("submit", model_id, "--comment", "ready", token=alice)
    assert approval["state"] == "APPROVAL_STATE_OPEN"
    queue = cli.json("approvals", "list", token=bob)
    assert approval["approvalId"] in [a["approvalId"] for a in queue]
    code, out, _ = cli.run("approvals", "list", "--state", "open", token=bob)
    assert code == 0
    assert approval["approvalId"] in out
    decided = cli.json("approvals", "approve", approval["approvalId"], "--comment", "ok", token=bob)
    assert decided["state"] == "APPROVAL_STATE_APPROVED"
    assert decided["decidedBy"] == "bob"

    # archiving is the approver's: the data scientist is refused, one line, exit 1
    code, out, err = cli.run("archive", model_id, "1", token=alice)
    assert (code, out) == (1, "")
    assert err.startswith("mlplane: PERMISSION_DENIED"), err
    archived = cli.json("archive", model_id, "1", "--comment", "superseded", token=bob)
    assert archived["status"] == "MODEL_VERSION_STATUS_ARCHIVED"

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
    assert rejected["state"] == "APPROVAL_STATE_REJECTED"
    assert rejected["decisionComment"] == "too slow"


def test_server_errors_exit_1_with_one_line(
    cli: Cli, stack: RunningStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLPLANE_TOKEN", raising=False)
    missing = "00000000-0000-4000-8000-000000000000"
    code, out, err = cli.run("models", "show", missing, token=alice_token(stack))
    assert (code, out) == (1, "")
    assert err == f"mlplane: NOT_FOUND MODEL_NOT_FOUND: model {missing} does not exist\n"

    code, _, err = cli.run("approvals", "list", token=alice_token(stack))
    assert code == 1
    assert err.startswith("mlplane: PERMISSION_DENIED")  # Envoy RBAC: no ErrorInfo
    assert err.count("\n") == 1

    code, _, err = cli.run("assets")  # no token anywhere
    assert code == 1
    assert err.startswith("mlplane: UNAUTHENTICATED")
    assert err.count("\n") == 1


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
