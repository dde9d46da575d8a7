"""Validation reports in the SDK and the CLI: evaluation sets in the upload stream,
`get_validation_report`, `wait_for_validation`, the report's typed results, its
rendering by `mlplane validation show`, and the hints of the validation gate.

The first part needs no stack: reports are built from protobuf messages, and the
calls go to an in-process ModelRegistry that records what it receives and answers
what a test tells it to (real gRPC, no mocks of grpc). `test_validation_stack.py`
holds the same against the real stack, with its validation worker."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pytest
from google.protobuf import any_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import model_registry_pb2_grpc as mpb_grpc

from mlplane_client import (
    Client,
    CompatibilityVerdict,
    Conflict,
    DeadlineExceeded,
    InvalidArgument,
    MetricCheck,
    MetricsVerification,
    ModelVersion,
    ResourceExhausted,
    RuntimeCheck,
    SignatureCompatibility,
    ValidationReport,
    ValidationState,
    ValidationTimeout,
)
from mlplane_client._hints import CLI, SDK, Cause, diagnose, render
from mlplane_client.cli import _show_report
from mlplane_client.client import UPLOAD_CHUNK_BYTES
from services.cli import main
from tests.models.onnx_models import linear_model

MODEL_ID = "0c6f8e1a-2b7d-4f55-9a1e-6d1f3c2b9e40"
QUEUED = datetime(2026, 11, 27, 10, 15, 3, tzinfo=UTC)
STARTED = datetime(2026, 11, 27, 10, 15, 4, tzinfo=UTC)
COMPLETED = datetime(2026, 11, 27, 10, 15, 6, tzinfo=UTC)
EVAL_LIMIT = 64 * 1024 * 1024  # the contract's bound on an evaluation set


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _passed_report(**overrides: Any) -> mpb.ValidationReport:
    """A report with every part filled in, as a worker would write it."""
    fields: dict[str, Any] = {
        "model_id": MODEL_ID,
        "version": 2,
        "state": mpb.ValidationReport.PASSED,
        "attempts": 1,
        "create_time": _stamp(QUEUED),
        "start_time": _stamp(STARTED),
        "complete_time": _stamp(COMPLETED),
        "runtime": mpb.RuntimeCheck(
            passed=True,
            onnxruntime_version="1.32.0",
            batch_size=1,
            load_seconds=0.0421,
            latency_p50_ms=1.204,
            latency_p95_ms=2.051,
            timed_runs=50,
            peak_memory_bytes=89_434_112,
            outputs=[
                mpb.RuntimeOutput(name="label", type="tensor(int64)", shape=[1]),
                mpb.RuntimeOutput(name="probabilities", type="tensor(float)", shape=[1, 2]),
            ],
            limits=mpb.SandboxLimits(
                memory_bytes=2**30, cpu_seconds=10, wall_seconds=30, threads=1
            ),
            network_isolation=["network_namespace", "audit_hook"],
        ),
        "metrics": mpb.MetricsVerification(
            passed=True,
            rows=658,
            label_column="label",
            threshold=0.5,
            checks=[
                mpb.MetricCheck(
                    name="roc_auc",
                    metric="roc_auc",
                    claimed=0.983,
                    verified=0.98312,
                    difference=0.00012,
                    tolerance=0.01,
                    status="MATCH",
                    message="within 0.01",
                ),
                mpb.MetricCheck(
                    name="F1",
                    metric="f1",
                    claimed=0.653,
                    status="NOT_COMPUTED",
                    message="the labels are not 0/1",
                ),
            ],
            unknown_metrics=["baseline_roc_auc"],
        ),
        "compatibility": mpb.SignatureCompatibility(
            verdict=mpb.SignatureCompatibility.BREAKING,
            approved_version=1,
            breaking=[
                mpb.SignatureDifference(
                    change="DIM_SIZE_CHANGED",
                    side="input",
                    tensor="X",
                    message="X: dimension 1 was 15, is 16",
                    old="15",
                    new="16",
                )
            ],
            non_breaking=[
                mpb.SignatureDifference(
                    change="OPSETS_CHANGED",
                    side="model",
                    message="the opsets changed",
                    old="ai.onnx 17",
                    new="ai.onnx 21",
                )
            ],
        ),
    }
    fields.update(overrides)
    return mpb.ValidationReport(**fields)


def _failed_report() -> mpb.ValidationReport:
    why = "the model needed more than its 1 GiB"
    return mpb.ValidationReport(
        model_id=MODEL_ID,
        version=1,
        state=mpb.ValidationReport.FAILED,
        reason="MEMORY_LIMIT",
        message=why,
        attempts=2,
        create_time=_stamp(QUEUED),
        runtime=mpb.RuntimeCheck(
            passed=False,
            reason="MEMORY_LIMIT",
            message=why,
            peak_memory_bytes=2**30,
            limits=mpb.SandboxLimits(
                memory_bytes=2**30, cpu_seconds=10, wall_seconds=30, threads=1
            ),
        ),
        compatibility=mpb.SignatureCompatibility(
            verdict=mpb.SignatureCompatibility.NO_APPROVED_VERSION
        ),
    )


# --- the typed report -------------------------------------------------------------------------
def test_a_report_is_typed_all_the_way_down() -> None:
    message = _passed_report()
    report = ValidationReport.from_proto(message)
    assert report.raw is message
    assert (report.model_id, report.version, report.attempts) == (MODEL_ID, 2, 1)
    assert report.state is ValidationState.PASSED
    assert report.state == "PASSED"
    assert (report.done, report.passed) == (True, True)
    assert (report.create_time, report.start_time, report.complete_time) == (
        QUEUED,
        STARTED,
        COMPLETED,
    )

    runtime = report.runtime
    assert isinstance(runtime, RuntimeCheck)
    assert (runtime.passed, runtime.onnxruntime_version, runtime.batch_size) == (True, "1.32.0", 1)
    assert (runtime.latency_p50_ms, runtime.latency_p95_ms, runtime.timed_runs) == (
        1.204,
        2.051,
        50,
    )
    assert runtime.peak_memory_bytes == 89_434_112
    assert [(o.name, o.type, o.shape) for o in runtime.outputs] == [
        ("label", "tensor(int64)", (1,)),
        ("probabilities", "tensor(float)", (1, 2)),
    ]
    assert runtime.limits is not None
    assert (runtime.limits.memory_bytes, runtime.limits.threads) == (2**30, 1)
    assert runtime.network_isolation == ("network_namespace", "audit_hook")
    assert str(runtime) == (
        "loaded in 0.042 s; P50 1.20 ms, P95 2.05 ms per batch of 1 (50 runs); peak memory 85.3 MiB"
    )

    metrics = report.metrics
    assert isinstance(metrics, MetricsVerification)
    assert (metrics.passed, metrics.rows, metrics.label_column, metrics.threshold) == (
        True,
        658,
        "label",
        0.5,
    )
    auc, f1 = metrics.checks
    assert isinstance(auc, MetricCheck)
    assert (auc.name, auc.claimed, auc.verified, auc.difference, auc.tolerance, auc.status) == (
        "roc_auc",
        0.983,
        0.98312,
        0.00012,
        0.01,
        "MATCH",
    )
    # `optional double`: unset is None, not 0.0.
    assert (f1.name, f1.metric, f1.verified, f1.difference, f1.tolerance) == (
        "F1",
        "f1",
        None,
        None,
        None,
    )
    assert metrics.check("F1") is f1
    assert metrics.check("accuracy") is None
    assert metrics.unknown_metrics == ("baseline_roc_auc",)
    assert str(metrics) == (
        "passed on 658 rows\n"
        "roc_auc: claimed 0.983, verified 0.9831 (difference +0.00012, tolerance 0.01) MATCH\n"
        "F1: claimed 0.653, NOT_COMPUTED: the labels are not 0/1\n"
        "not checked: baseline_roc_auc"
    )

    compatibility = report.compatibility
    assert isinstance(compatibility, SignatureCompatibility)
    assert compatibility.verdict is CompatibilityVerdict.BREAKING
    assert compatibility.approved_version == 1
    (breaking,) = compatibility.breaking
    assert (breaking.change, breaking.side, breaking.tensor, breaking.old, breaking.new) == (
        "DIM_SIZE_CHANGED",
        "input",
        "X",
        "15",
        "16",
    )
    assert str(compatibility) == (
        "BREAKING with approved v1\n"
        "breaking: DIM_SIZE_CHANGED input X: X: dimension 1 was 15, is 16\n"
        "non-breaking: OPSETS_CHANGED model: the opsets changed"
    )


def test_a_pending_report_has_no_parts_yet() -> None:
    report = ValidationReport.from_proto(
        mpb.ValidationReport(model_id=MODEL_ID, version=1, state=mpb.ValidationReport.PENDING)
    )
    assert report.state is ValidationState.PENDING
    assert (report.done, report.passed) == (False, False)
    assert (report.runtime, report.metrics, report.compatibility) == (None, None, None)
    assert (report.start_time, report.complete_time) == (None, None)
    assert repr(report) == (
        f"ValidationReport(model_id='{MODEL_ID}', version=1, state=PENDING, attempts=0)"
    )
    # A state this SDK does not know yet (a newer server) reads as the zero value.
    assert ValidationState.from_proto(42) is ValidationState.STATE_UNSPECIFIED
    assert [s for s in ValidationState if s.done] == ["PASSED", "FAILED"]


def test_a_failed_runtime_says_why() -> None:
    report = ValidationReport.from_proto(_failed_report())
    assert (report.state, report.reason, report.passed) == ("FAILED", "MEMORY_LIMIT", False)
    assert report.runtime is not None
    assert str(report.runtime) == "failed MEMORY_LIMIT: the model needed more than its 1 GiB"
    assert report.metrics is None
    assert report.compatibility is not None
    assert str(report.compatibility) == "NO_APPROVED_VERSION"


def test_report_to_dict_repr_and_jupyter() -> None:
    report = ValidationReport.from_proto(_passed_report())
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == [
        "model_id", "version", "state", "reason", "message", "attempts", "create_time",
        "start_time", "complete_time", "runtime", "metrics", "compatibility",
    ]  # fmt: skip
    assert (data["state"], data["complete_time"]) == ("PASSED", "2026-11-27T10:15:06Z")
    assert data["metrics"]["checks"][1]["verified"] is None
    assert data["compatibility"]["verdict"] == "BREAKING"
    assert data["runtime"]["outputs"][1] == {
        "name": "probabilities",
        "type": "tensor(float)",
        "shape": [1, 2],
        "non_finite": False,
    }
    assert repr(report) == (
        f"ValidationReport(model_id='{MODEL_ID}', version=2, state=PASSED, attempts=1, "
        "complete_time=2026-11-27T10:15:06Z)"
    )
    formatters = pytest.importorskip("IPython.core.formatters")
    shown, _ = formatters.DisplayFormatter().format(report)
    table = shown["text/html"]
    assert "PASSED" in table
    assert "P50 1.20 ms, P95 2.05 ms per batch of 1" in table
    assert "roc_auc: claimed 0.983, verified 0.9831" in table
    assert "breaking: DIM_SIZE_CHANGED input X" in table


def test_a_version_says_where_its_validation_stands() -> None:
    version = ModelVersion.from_proto(
        mpb.ModelVersion(
            model_id=MODEL_ID,
            name="pump-risk",
            version=1,
            status=mpb.ModelVersion.PENDING_APPROVAL,
            validation_state=mpb.ValidationReport.RUNNING,
            has_evaluation_set=True,
        )
    )
    assert version.validation_state is ValidationState.RUNNING
    assert version.has_evaluation_set is True
    assert repr(version) == (
        "ModelVersion(name='pump-risk', version=1, status=PENDING_APPROVAL, "
        f"validation_state=RUNNING, model_id='{MODEL_ID}', size_bytes=0)"
    )
    assert ModelVersion.from_proto(mpb.ModelVersion()).has_evaluation_set is False


# --- how the CLI shows it ---------------------------------------------------------------------
def test_the_cli_shows_a_report_for_humans(capsys: pytest.CaptureFixture[str]) -> None:
    _show_report(ValidationReport.from_proto(_passed_report()))
    assert capsys.readouterr().out == (
        f"model:            {MODEL_ID} v2\n"
        "state:            PASSED\n"
        "attempts:         1\n"
        "queued:           2026-11-27 10:15:03\n"
        "started:          2026-11-27 10:15:04\n"
        "completed:        2026-11-27 10:15:06\n"
        "runtime:          passed (onnxruntime 1.32.0)\n"
        "  load:           0.042 s\n"
        "  latency:        P50 1.20 ms, P95 2.05 ms per batch of 1 (50 runs)\n"
        "  peak memory:    85.3 MiB\n"
        "  outputs:        label: tensor(int64)[1], probabilities: tensor(float)[1, 2]\n"
        "  limits:         memory 1 GiB, CPU 10 s, wall 30 s, 1 thread(s)\n"
        "  network:        network_namespace, audit_hook\n"
        "metrics:          passed on 658 rows, label column 'label', threshold 0.5\n"
        "METRIC   CLAIMED  VERIFIED  DIFFERENCE  TOLERANCE  STATUS        NOTE\n"
        "roc_auc  0.983    0.9831    +0.00012    0.01       MATCH\n"
        "F1       0.653    -         -           -          NOT_COMPUTED  the labels are not 0/1\n"
        "  not checked:    baseline_roc_auc\n"
        "compatibility:    BREAKING with approved v1\n"
        "DIFFERENCE    CHANGE            SIDE   TENSOR  OLD         NEW\n"
        "breaking      DIM_SIZE_CHANGED  input  X       15          16\n"
        "non-breaking  OPSETS_CHANGED    model  -       ai.onnx 17  ai.onnx 21\n"
    )


def test_the_cli_shows_a_failure_and_a_pending_report(capsys: pytest.CaptureFixture[str]) -> None:
    _show_report(ValidationReport.from_proto(_failed_report()))
    assert capsys.readouterr().out == (
        f"model:            {MODEL_ID} v1\n"
        "state:            FAILED\n"
        "reason:           MEMORY_LIMIT: the model needed more than its 1 GiB\n"
        "attempts:         2\n"
        "queued:           2026-11-27 10:15:03\n"
        "started:          -\n"
        "completed:        -\n"
        "runtime:          FAILED MEMORY_LIMIT: the model needed more than its 1 GiB\n"
        "  peak memory:    1 GiB\n"
        "  limits:         memory 1 GiB, CPU 10 s, wall 30 s, 1 thread(s)\n"
        "metrics:          not checked (the model did not run)\n"
        "compatibility:    NO_APPROVED_VERSION\n"
    )
    _show_report(
        ValidationReport.from_proto(
            mpb.ValidationReport(model_id=MODEL_ID, version=3, state=mpb.ValidationReport.PENDING)
        )
    )
    out = capsys.readouterr().out
    assert "state:            PENDING\n" in out
    assert "runtime:          not run yet\nmetrics:          not checked yet\n" in out
    _show_report(ValidationReport.from_proto(_passed_report(metrics=None)))
    assert "\nmetrics:          no evaluation set\ncompatibility:" in capsys.readouterr().out
    evaluation_failed = _passed_report(
        state=mpb.ValidationReport.FAILED,
        reason="EVAL_COLUMNS_MISMATCH",
        message="the model takes 15 columns, the file has 14",
        metrics=mpb.MetricsVerification(
            reason="EVAL_COLUMNS_MISMATCH", message="the model takes 15 columns, the file has 14"
        ),
    )
    _show_report(ValidationReport.from_proto(evaluation_failed))
    assert (
        "metrics:          FAILED EVAL_COLUMNS_MISMATCH: the model takes 15 columns, "
        "the file has 14\ncompatibility:" in capsys.readouterr().out
    )


# --- the hints of the validation gate ---------------------------------------------------------
def test_hints_for_the_validation_gate() -> None:
    code = grpc.StatusCode
    refused = diagnose(
        code.FAILED_PRECONDITION,
        "VALIDATION_NOT_PASSED",
        "model version 1 has not passed validation",
        {"modelId": MODEL_ID, "version": "1"},
        url="http://localhost:8080",
    )
    assert refused is not None
    assert refused.cause is Cause.VALIDATION_NOT_PASSED
    assert render(refused, CLI) == (
        "a version can be approved only once its validation has PASSED: "
        f"see its report with `mlplane validation show {MODEL_ID} 1`"
    )
    assert render(refused, SDK).endswith(f'`get_validation_report("{MODEL_ID}", 1)`')
    anonymous = diagnose(code.FAILED_PRECONDITION, "VALIDATION_NOT_PASSED", "", {}, url="")
    assert anonymous is not None
    assert render(anonymous, CLI).endswith("`mlplane validation show MODEL_ID VERSION`")
    assert render(anonymous, SDK).endswith("`get_validation_report(model_id, version)`")

    large = diagnose(code.RESOURCE_EXHAUSTED, "EVALUATION_SET_TOO_LARGE", "", {}, url="")
    assert large is not None
    assert render(large, CLI) == (
        "an evaluation set is at most 64 MiB of Parquet: pass a sample of the held-out rows "
        "as --evaluation-set"
    )
    parquet = diagnose(code.INVALID_ARGUMENT, "EVALUATION_SET_NOT_PARQUET", "", {}, url="")
    assert parquet is not None
    assert render(parquet, SDK).startswith("evaluation_set= takes a Parquet file")


# --- the SDK against an in-process ModelRegistry ----------------------------------------------
@dataclass
class FakeRegistry(mpb_grpc.ModelRegistryServicer):
    """Records the upload streams and report requests; answers reports from `states`
    (the last one repeats), and refuses what a test sets in `refuse`."""

    uploads: list[list[mpb.UploadModelRequest]] = field(default_factory=list)
    report_requests: list[mpb.GetValidationReportRequest] = field(default_factory=list)
    states: list[int] = field(default_factory=lambda: [mpb.ValidationReport.PASSED])
    refuse: tuple[grpc.StatusCode, str, dict[str, str]] | None = None

    def UploadModel(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        received = list(request_iterator)
        self.uploads.append(received)
        if self.refuse:
            _abort(context, *self.refuse)
        evaluation = any(r.WhichOneof("part") == "evaluation_set_chunk" for r in received)
        return mpb.ModelVersion(
            model_id=MODEL_ID,
            name=received[0].metadata.name,
            version=1,
            status=mpb.ModelVersion.PENDING_APPROVAL,
            validation_state=mpb.ValidationReport.PENDING,
            has_evaluation_set=evaluation,
        )

    def GetValidationReport(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.report_requests.append(request)
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if state == mpb.ValidationReport.PASSED:
            return _passed_report(model_id=request.model_id, version=request.version)
        return mpb.ValidationReport(
            model_id=request.model_id, version=request.version, state=state, attempts=1
        )

    def ApproveModelVersion(self, request: Any, context: grpc.ServicerContext) -> Any:
        _abort(
            context,
            grpc.StatusCode.FAILED_PRECONDITION,
            "VALIDATION_NOT_PASSED",
            {"validationState": "FAILED", "validationReason": "METRICS_MISMATCH"},
        )


def _abort(
    context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, metadata: dict[str, str]
) -> None:
    """Refuse the way the services do: a google.rpc.Status with an ErrorInfo."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="mlplane", metadata=metadata))
    message = f"refused: {reason.lower().replace('_', ' ')}"
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))


@dataclass
class Served:
    registry: FakeRegistry
    url: str


@pytest.fixture
def served() -> Iterator[Served]:
    registry = FakeRegistry()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    mpb_grpc.add_ModelRegistryServicer_to_server(registry, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield Served(registry, f"127.0.0.1:{port}")
    finally:
        server.stop(None)


@pytest.fixture
def fake(served: Served) -> Iterator[Client]:
    with Client(served.url, token="tok", timeout=10) as client:
        yield client


def _parts(stream: list[mpb.UploadModelRequest]) -> list[tuple[str, int]]:
    """(kind, size) per message: what the server saw, in order."""
    out: list[tuple[str, int]] = []
    for message in stream:
        kind = message.WhichOneof("part") or ""
        out.append((kind, len(getattr(message, kind)) if kind != "metadata" else 0))
    return out


def _joined(stream: list[mpb.UploadModelRequest], kind: str) -> bytes:
    return b"".join(getattr(m, kind) for m in stream if m.WhichOneof("part") == kind)


@pytest.mark.parametrize("given_as", ["path", "str", "bytes", "file"])
def test_the_evaluation_set_is_streamed_before_the_model(
    served: Served, fake: Client, tmp_path: Path, given_as: str
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(linear_model(16) * 40)  # a little over 1 MiB: two chunks
    evaluation = b"PAR1" + bytes(range(256)) * 10_000 + b"PAR1"  # 2.4 MiB: three chunks
    path = tmp_path / "holdout.parquet"
    path.write_bytes(evaluation)
    source: Any = {
        "path": path,
        "str": str(path),
        "bytes": evaluation,
        "file": io.BytesIO(evaluation),
    }[given_as]
    version = fake.upload_model(
        model,
        "pump-risk",
        "with held-out rows",
        metrics={"roc_auc": 0.9},
        evaluation_set=source,
        evaluation_label_column="failed_within_48h",
        progress=False,
    )
    assert (version.validation_state, version.has_evaluation_set) == ("PENDING", True)
    (stream,) = served.registry.uploads
    metadata = stream[0].metadata
    assert (metadata.name, metadata.evaluation_label_column) == ("pump-risk", "failed_within_48h")
    assert dict(metadata.metrics) == {"roc_auc": 0.9}
    kinds = [kind for kind, _ in _parts(stream)]
    evaluation_chunks = kinds.count("evaluation_set_chunk")
    assert kinds == ["metadata"] + ["evaluation_set_chunk"] * evaluation_chunks + ["chunk"] * (
        len(kinds) - 1 - evaluation_chunks
    )
    assert evaluation_chunks == 3
    assert all(size <= UPLOAD_CHUNK_BYTES for _, size in _parts(stream))
    assert _joined(stream, "evaluation_set_chunk") == evaluation
    assert _joined(stream, "chunk") == model.read_bytes()
    if isinstance(source, io.BytesIO):
        assert not source.closed  # the caller's file stays the caller's


def test_without_an_evaluation_set_nothing_changes_on_the_wire(
    served: Served, fake: Client, tmp_path: Path
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(linear_model(8))
    version = fake.upload_model(model, "plain", "", progress=True)
    assert version.has_evaluation_set is False
    (stream,) = served.registry.uploads
    assert [kind for kind, _ in _parts(stream)] == ["metadata", "chunk"]
    assert stream[0].metadata.evaluation_label_column == ""


def test_bad_evaluation_sets_fail_before_the_call(
    served: Served, fake: Client, tmp_path: Path
) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(linear_model(8))
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="the evaluation set is empty"):
        fake.upload_model(model, "m", "", evaluation_set=empty, progress=False)
    with pytest.raises(ValueError, match="the evaluation set is empty"):
        fake.upload_model(model, "m", "", evaluation_set=b"", progress=False)
    with pytest.raises(ValueError, match="only meaningful with an evaluation_set"):
        fake.upload_model(model, "m", "", evaluation_label_column="y", progress=False)
    text = tmp_path / "text.parquet"
    text.write_text("PAR1")
    with text.open("r") as handle, pytest.raises(TypeError, match="binary mode"):
        fake.upload_model(model, "m", "", evaluation_set=handle, progress=False)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        fake.upload_model(model, "m", "", evaluation_set=tmp_path / "nope.parquet")
    assert served.registry.uploads == []


@pytest.mark.parametrize(
    ("code", "reason", "error", "hint"),
    [
        (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "EVALUATION_SET_TOO_LARGE",
            ResourceExhausted,
            "an evaluation set is at most 64 MiB of Parquet",
        ),
        (
            grpc.StatusCode.INVALID_ARGUMENT,
            "EVALUATION_SET_NOT_PARQUET",
            InvalidArgument,
            "evaluation_set= takes a Parquet file",
        ),
    ],
)
def test_refused_evaluation_sets_are_typed_errors_with_a_hint(
    served: Served,
    fake: Client,
    tmp_path: Path,
    code: grpc.StatusCode,
    reason: str,
    error: type[Exception],
    hint: str,
) -> None:
    served.registry.refuse = (code, reason, {})
    model = tmp_path / "model.onnx"
    model.write_bytes(linear_model(8))
    with pytest.raises(error) as caught:
        fake.upload_model(model, "m", "", evaluation_set=b"not parquet", progress=False)
    assert getattr(caught.value, "reason", None) == reason
    assert str(caught.value).splitlines()[1].startswith(f"hint: {hint}")


def test_get_validation_report_asks_for_the_version(served: Served, fake: Client) -> None:
    report = fake.get_validation_report(MODEL_ID, 2)
    (request,) = served.registry.report_requests
    assert (request.model_id, request.version) == (MODEL_ID, 2)
    assert report.passed
    assert report.raw == _passed_report()


def test_wait_for_validation_polls_until_a_verdict(served: Served, fake: Client) -> None:
    served.registry.states = [
        mpb.ValidationReport.PENDING,
        mpb.ValidationReport.RUNNING,
        mpb.ValidationReport.RUNNING,
        mpb.ValidationReport.FAILED,
    ]
    started = time.monotonic()
    report = fake.wait_for_validation(MODEL_ID, 1, timeout=10, poll=0.05)
    assert report.state is ValidationState.FAILED  # a verdict: returned, not raised
    assert len(served.registry.report_requests) == 4
    assert time.monotonic() - started >= 3 * 0.05
    with pytest.raises(ValueError, match="poll must be positive"):
        fake.wait_for_validation(MODEL_ID, 1, poll=0)


def test_wait_for_validation_times_out_with_the_last_report(served: Served, fake: Client) -> None:
    served.registry.states = [mpb.ValidationReport.RUNNING]
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        fake.wait_for_validation(MODEL_ID, 1, timeout=0.3, poll=0.05)
    waited = time.monotonic() - started
    assert 0.3 <= waited < 5
    error = caught.value
    assert isinstance(error, ValidationTimeout)
    assert isinstance(error, DeadlineExceeded)
    assert error.report.state is ValidationState.RUNNING
    assert (error.code, error.reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "VALIDATION_TIMEOUT")
    assert error.metadata == {"modelId": MODEL_ID, "version": "1", "state": "RUNNING"}
    assert str(error) == (
        f"DEADLINE_EXCEEDED VALIDATION_TIMEOUT: model {MODEL_ID} v1: validation still RUNNING "
        "after 0.3 s (1 attempt(s) so far)\n"
        "hint: the validation worker has not finished yet: wait longer (timeout=), or look at "
        f'the report with `get_validation_report("{MODEL_ID}", 1)`'
    )
    assert len(served.registry.report_requests) >= 2


def test_an_approval_refused_for_its_validation_points_at_the_report(
    served: Served, fake: Client
) -> None:
    with pytest.raises(Conflict) as caught:
        fake.approve("4e1d")
    assert caught.value.reason == "VALIDATION_NOT_PASSED"
    assert caught.value.metadata["validationState"] == "FAILED"
    assert caught.value.hint == (
        "a version can be approved only once its validation has PASSED: "
        "see its report with `get_validation_report(model_id, version)`"
    )


# --- the CLI against the in-process ModelRegistry ---------------------------------------------
def _cli(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main([*args, "--url", url, "--token", "tok"])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_validation_show(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(served.url, capsys, "validation", "show", MODEL_ID, "2", "--json")
    assert (code, err) == (0, "")
    expected = MessageToDict(_passed_report(), always_print_fields_with_no_presence=True)
    assert json.loads(out) == expected
    assert json.loads(out)["metrics"]["checks"][0]["verified"] == 0.98312

    code, out, _ = _cli(served.url, capsys, "validation", "show", MODEL_ID, "2")
    assert code == 0
    assert out.splitlines()[:2] == [f"model:            {MODEL_ID} v2", "state:            PASSED"]

    # A FAILED report is an answer: exit 0, the state on stdout.
    served.registry.states = [mpb.ValidationReport.FAILED]
    code, out, _ = _cli(served.url, capsys, "validation", "show", MODEL_ID, "2", "--json")
    assert (code, json.loads(out)["state"]) == (0, "FAILED")


def test_cli_validation_show_waits(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    served.registry.states = [mpb.ValidationReport.PENDING, mpb.ValidationReport.PASSED]
    code, out, _ = _cli(served.url, capsys, "validation", "show", MODEL_ID, "1", "--wait", "--json")
    assert (code, json.loads(out)["state"]) == (0, "PASSED")
    assert len(served.registry.report_requests) == 2

    served.registry.states = [mpb.ValidationReport.RUNNING]
    code, out, err = _cli(
        served.url, capsys, "validation", "show", MODEL_ID, "1", "--wait", "--wait-timeout", "0.2"
    )
    assert (code, out) == (1, "")
    head, hint = err.splitlines()
    assert head.startswith("mlplane: DEADLINE_EXCEEDED VALIDATION_TIMEOUT: model ")
    assert hint == (
        "hint: the validation worker has not finished yet: wait longer (--wait-timeout), "
        f"or look at the report with `mlplane validation show {MODEL_ID} 1`"
    )


def test_cli_upload_with_an_evaluation_set(
    served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(linear_model(4))
    holdout = tmp_path / "holdout.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "label": [True, False]}).to_parquet(holdout, index=False)
    code, out, err = _cli(
        served.url, capsys, "upload", str(model), "--name", "cli-eval", "--metric", "auc=0.8",
        "--evaluation-set", str(holdout), "--label-column", "label",
    )  # fmt: skip
    assert code == 0, err
    assert "validation:       PENDING (with evaluation set)" in out
    (stream,) = served.registry.uploads
    assert stream[0].metadata.evaluation_label_column == "label"
    assert _joined(stream, "evaluation_set_chunk") == holdout.read_bytes()

    for args, message in [
        (("--evaluation-set", str(tmp_path / "missing.parquet")), "mlplane: no such file"),
        (("--label-column", "y"), "mlplane: --label-column needs --evaluation-set"),
    ]:
        code, out, err = _cli(served.url, capsys, "upload", str(model), "--name", "x", *args)
        assert (code, out) == (2, ""), err
        assert err.strip().startswith(message), err
    assert len(served.registry.uploads) == 1
    code, _, err = _cli(served.url, capsys, "validation", "show", MODEL_ID, "one")
    assert code == 2
    assert "argument version" in err
