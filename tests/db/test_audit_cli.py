"""`mlplane audit` shows who did what, filtered, newest first."""

from __future__ import annotations

import json
import subprocess

import httpx

from tests.models.onnx_models import linear_model
from tests.polling import validated
from tests.stack_runner import RunningStack, run_cli


def _mlplane(stack: RunningStack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(stack.state_dir, *args)


def test_audit_by_model_and_action(stack: RunningStack) -> None:
    token = stack.tokens.valid("data_scientist", subject="carol")
    created = httpx.post(
        f"{stack.gateway_url}/api/v1/models",
        data={"name": "audited-model"},
        files={"file": ("m.onnx", linear_model(4))},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).json()
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as http:
        validated(http, {"Authorization": f"Bearer {token}"}, created["modelId"])
    result = _mlplane(stack, "audit", "--model", created["modelId"], "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["subject"], r["action"], r["outcome"]) for r in rows] == [
        ("mlplane-validation-worker", "validation.complete", "PASSED"),
        ("carol", "model.upload", "ok"),
    ]
    table = _mlplane(stack, "audit", "--subject", "carol", "--action", "model.")
    assert "model.upload" in table.stdout
    assert "carol" in table.stdout


def test_audit_rejects_bad_time(stack: RunningStack) -> None:
    result = _mlplane(stack, "audit", "--since", "last tuesday")
    assert result.returncode == 2
    assert "mlplane audit" in result.stderr
