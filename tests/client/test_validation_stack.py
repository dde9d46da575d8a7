"""Validation reports against the real stack, through Envoy, with its validation worker:
an evaluation set uploaded with a version, its claimed metrics reproduced (or not), the
approval gate, the evaluation sets the registry refuses, and `mlplane validation show`.
What needs no stack is in `test_validation.py`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from google.protobuf.json_format import MessageToDict
from sklearn.metrics import roc_auc_score

from mlplane_client import (
    Client,
    CompatibilityVerdict,
    Conflict,
    InvalidArgument,
    ResourceExhausted,
    ValidationState,
)
from services.cli import main
from tests.client.conftest import alice_token, unique_name
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack

EVAL_LIMIT = 64 * 1024 * 1024  # the contract's bound on an evaluation set
FEATURES = 6


def _cli(
    stack: RunningStack, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """`mlplane ARGS` in-process, as alice, through the gateway."""
    capsys.readouterr()
    argv = [*args, "--url", stack.gateway_target, "--token", alice_token(stack)]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _holdout(seed: int, rows: int = 240) -> tuple[bytes, pd.DataFrame, float]:
    """A linear model, held-out rows for it (its input columns in order and a label),
    and the ROC AUC its scores give on them, computed here with ONNX Runtime."""
    model = linear_model(FEATURES, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    scores = session.run(None, {"X": x})[0][:, 0]
    noisy = scores + rng.normal(scale=scores.std(), size=rows)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)])
    frame["label"] = noisy > np.median(noisy)
    return model, frame, float(roc_auc_score(frame["label"], scores))


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_claimed_metrics_reproduced_then_approved(
    stack: RunningStack, alice: Client, bob: Client, tmp_path: Path
) -> None:
    model, frame, auc = _holdout(seed=11)
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(model)
    holdout = tmp_path / "holdout.parquet"
    frame.to_parquet(holdout, index=False)
    name = unique_name("eval")
    version = alice.upload_model(
        model_file,
        name,
        "linear, with held-out rows",
        metrics={"roc_auc": round(auc, 3), "baseline_roc_auc": 0.5},
        evaluation_set=holdout,
        progress=False,
    )
    assert version.has_evaluation_set is True
    assert version.validation_state in ("PENDING", "RUNNING", "PASSED")

    report = alice.wait_for_validation(version.model_id, 1, timeout=120)
    assert report.state is ValidationState.PASSED, (report.reason, report.message)
    assert (report.model_id, report.version, report.reason) == (version.model_id, 1, "")
    assert report.attempts >= 1
    assert report.create_time is not None
    assert report.complete_time is not None
    assert report.complete_time >= report.create_time

    assert report.runtime is not None
    assert report.runtime.passed
    assert report.runtime.latency_p95_ms >= report.runtime.latency_p50_ms > 0
    assert report.runtime.peak_memory_bytes > 0
    assert [o.name for o in report.runtime.outputs] == ["Y"]

    assert report.metrics is not None
    assert (report.metrics.passed, report.metrics.rows) == (True, len(frame))
    assert report.metrics.label_column == "label"
    check = report.metrics.check("roc_auc")
    assert check is not None
    assert check.status == "MATCH"
    assert check.verified == pytest.approx(auc, abs=1e-4)
    assert check.claimed == round(auc, 3)
    assert report.metrics.unknown_metrics == ("baseline_roc_auc",)
    assert report.compatibility is not None
    assert report.compatibility.verdict is CompatibilityVerdict.NO_APPROVED_VERSION

    again = alice.get_version(version.model_id, 1)
    assert (again.validation_state, again.has_evaluation_set) == ("PASSED", True)
    # The SDK's message is exactly what REST returns for the report.
    rest = httpx.get(
        f"{stack.gateway_url}/api/v1/models/{version.model_id}/versions/1/validation",
        headers={"authorization": f"Bearer {alice_token(stack)}"},
    )
    assert rest.status_code == 200, rest.text
    assert rest.json() == MessageToDict(
        alice.get_validation_report(version.model_id, 1).raw,
        always_print_fields_with_no_presence=True,
    )

    approval = alice.submit_for_approval(version.model_id, 1, comment="reproduced")
    assert bob.approve(approval.approval_id, comment="ok").state == "APPROVED"

    # The next version, without an evaluation set and with one more input, breaks callers.
    wider = tmp_path / "wider.onnx"
    wider.write_bytes(linear_model(FEATURES + 1, seed=11))
    second = alice.upload_model(wider, name, "one more feature", progress=False)
    assert second.has_evaluation_set is False
    report2 = alice.wait_for_validation(second.model_id, 2, timeout=120)
    assert report2.state is ValidationState.PASSED, (report2.reason, report2.message)
    assert report2.metrics is None
    assert report2.compatibility is not None
    assert report2.compatibility.verdict is CompatibilityVerdict.BREAKING
    assert report2.compatibility.approved_version == 1
    assert report2.compatibility.breaking


def test_a_claim_that_does_not_hold_fails_and_cannot_be_approved(
    stack: RunningStack, alice: Client, bob: Client, tmp_path: Path
) -> None:
    model, frame, auc = _holdout(seed=12)
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(model)
    frame = frame.rename(columns={"label": "failed"})
    version = alice.upload_model(
        model_file,
        unique_name("overclaim"),
        "claims more than it does",
        metrics={"auc": min(auc + 0.2, 1.0) if auc < 0.75 else auc - 0.2},
        evaluation_set=_parquet(frame),
        evaluation_label_column="failed",
        progress=False,
    )
    report = alice.wait_for_validation(version.model_id, 1, timeout=120)
    assert (report.state, report.reason) == ("FAILED", "METRICS_MISMATCH"), report.message
    assert report.metrics is not None
    assert report.metrics.label_column == "failed"
    check = report.metrics.check("auc")
    assert check is not None
    assert (check.metric, check.status) == ("roc_auc", "MISMATCH")
    assert check.verified == pytest.approx(auc, abs=1e-4)
    assert check.difference is not None
    assert check.tolerance is not None
    assert abs(check.difference) > check.tolerance

    approval = alice.submit_for_approval(version.model_id, 1)
    with pytest.raises(Conflict) as refused:
        bob.approve(approval.approval_id)
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.reason == "VALIDATION_NOT_PASSED"
    assert "get_validation_report(" in refused.value.hint


def test_evaluation_sets_the_server_refuses(
    stack: RunningStack, alice: Client, tmp_path: Path
) -> None:
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(linear_model(FEATURES))
    name = unique_name("refused")
    with pytest.raises(InvalidArgument) as not_parquet:
        alice.upload_model(
            model_file, name, "", evaluation_set=b"a,b,label\n1,2,0\n", progress=False
        )
    assert not_parquet.value.reason == "EVALUATION_SET_NOT_PARQUET"
    too_large = io.BytesIO(b"PAR1" + bytes(EVAL_LIMIT))  # one file object, never in a list
    with pytest.raises(ResourceExhausted) as large:
        alice.upload_model(model_file, name, "", evaluation_set=too_large, progress=False)
    assert large.value.reason == "EVALUATION_SET_TOO_LARGE"
    assert large.value.hint.startswith("an evaluation set is at most 64 MiB")
    assert alice.list_models(f'name = "{name}"') == []  # nothing half-stored


def test_cli_upload_and_validation_show_against_the_stack(
    stack: RunningStack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model, frame, auc = _holdout(seed=13)
    model_file = tmp_path / "m.onnx"
    model_file.write_bytes(model)
    holdout = tmp_path / "holdout.parquet"
    frame.rename(columns={"label": "y"}).to_parquet(holdout, index=False)

    def run(*args: str) -> tuple[int, str, str]:
        return _cli(stack, capsys, *args)

    code, out, err = run(
        "upload", str(model_file), "--name", unique_name("cli-eval"),
        "--metric", f"roc_auc={auc:.4f}", "--evaluation-set", str(holdout),
        "--label-column", "y", "--json",
    )  # fmt: skip
    assert code == 0, err
    uploaded = json.loads(out)
    assert uploaded["hasEvaluationSet"] is True
    model_id = uploaded["modelId"]
    code, out, err = run("validation", "show", model_id, "1", "--wait", "--wait-timeout", "120")
    assert code == 0, err
    lines = out.splitlines()
    assert "state:            PASSED" in lines
    assert any(line.startswith("  latency:        P50 ") for line in lines), out
    assert any(line.split()[:1] == ["roc_auc"] and line.split()[-1] == "MATCH" for line in lines)
    assert "compatibility:    NO_APPROVED_VERSION" in lines
    code, out, err = run("validation", "show", model_id, "1", "--json")
    assert code == 0, err
    rest = httpx.get(
        f"{stack.gateway_url}/api/v1/models/{model_id}/versions/1/validation",
        headers={"authorization": f"Bearer {alice_token(stack)}"},
    )
    assert json.loads(out) == rest.json()
    assert rest.json()["metrics"]["labelColumn"] == "y"
    code, out, _ = run("versions", "show", model_id, "1")
    assert "validation:       PASSED (with evaluation set)" in out.splitlines()
