"""Validation on the session stack, over gRPC: an upload with its evaluation set, the report
its worker writes, the approval it gates, and a second version compared with the first."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc
from sklearn.metrics import accuracy_score, roc_auc_score  # type: ignore[import-untyped]

from tests.polling import poll_until
from tests.stack_runner import RunningStack
from tests.validation.models import classifier_model

FEATURES = 4
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def registry(stack: RunningStack) -> Iterator[pb_grpc.ModelRegistryStub]:
    with grpc.insecure_channel(stack.gateway_target) as channel:
        yield pb_grpc.ModelRegistryStub(channel)


def _who(stack: RunningStack, role: str, subject: str) -> Metadata:
    return (("authorization", f"Bearer {stack.tokens.valid(role, subject=subject)}"),)


def _held_out(model: bytes, rows: int = 400) -> tuple[bytes, dict[str, float]]:
    """A Parquet evaluation set for the classifier (its features, then `label`) and the
    metrics it truly scores on it, computed here as a data scientist would."""
    rng = np.random.default_rng(11)
    features = rng.standard_normal((rows, FEATURES)).astype(np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    probability = session.run(["probability"], {"X": features})[0][:, 0]
    # Labels that agree with the model most of the time: an AUC well inside (0.5, 1).
    labels = ((probability + rng.normal(0, 0.25, rows)) > 0.5).astype(np.int64)
    table = pa.table({**{f"f{i}": features[:, i] for i in range(FEATURES)}, "label": labels})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    truth = {
        "roc_auc": float(roc_auc_score(labels, probability)),
        "accuracy": float(accuracy_score(labels, probability >= 0.5)),
    }
    return sink.getvalue(), truth


def _upload(
    registry: pb_grpc.ModelRegistryStub,
    who: Metadata,
    name: str,
    model: bytes,
    metrics: dict[str, float],
    evaluation_set: bytes | None,
) -> pb.ModelVersion:
    def requests() -> Iterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name=name, metrics=metrics))
        if evaluation_set is not None:
            for start in range(0, len(evaluation_set), 1000):
                yield pb.UploadModelRequest(
                    evaluation_set_chunk=evaluation_set[start : start + 1000]
                )
        yield pb.UploadModelRequest(chunk=model)

    version: pb.ModelVersion = registry.UploadModel(requests(), metadata=who, timeout=30)
    return version


def _report(
    registry: pb_grpc.ModelRegistryStub, who: Metadata, version: pb.ModelVersion
) -> pb.ValidationReport:
    def current() -> pb.ValidationReport:
        report: pb.ValidationReport = registry.GetValidationReport(
            pb.GetValidationReportRequest(model_id=version.model_id, version=version.version),
            metadata=who,
            timeout=10,
        )
        return report

    poll_until(
        lambda: current().state in (pb.ValidationReport.PASSED, pb.ValidationReport.FAILED),
        f"validation of {version.name} v{version.version}",
        timeout=60,
    )
    return current()


def _submit_and_approve(
    registry: pb_grpc.ModelRegistryStub, alice: Metadata, bob: Metadata, version: pb.ModelVersion
) -> pb.Approval:
    approval = registry.SubmitForApproval(
        pb.SubmitForApprovalRequest(model_id=version.model_id, version=version.version),
        metadata=alice,
        timeout=10,
    )
    decided: pb.Approval = registry.ApproveModelVersion(
        pb.ApproveModelVersionRequest(approval_id=approval.approval_id, comment="evidence ok"),
        metadata=bob,
        timeout=10,
    )
    return decided


def test_claimed_metrics_are_reproduced_and_the_report_gates_approval(
    stack: RunningStack, registry: pb_grpc.ModelRegistryStub
) -> None:
    alice = _who(stack, "data_scientist", "alice")
    bob = _who(stack, "model_approver", "bob")
    model = classifier_model(FEATURES, seed=3)
    evaluation_set, truth = _held_out(model)
    claimed = {"roc_auc": round(truth["roc_auc"], 3), "accuracy": round(truth["accuracy"], 3)}
    version = _upload(registry, alice, "validated-pump", model, claimed, evaluation_set)
    assert version.has_evaluation_set
    assert version.validation_state in (
        pb.ValidationReport.PENDING,
        pb.ValidationReport.RUNNING,
        pb.ValidationReport.PASSED,
    )

    report = _report(registry, alice, version)
    assert report.state == pb.ValidationReport.PASSED, report
    assert report.attempts == 1
    assert report.runtime.passed
    assert report.runtime.latency_p50_ms > 0
    assert report.runtime.latency_p95_ms >= report.runtime.latency_p50_ms
    assert [o.name for o in report.runtime.outputs] == ["probability", "label"]
    assert report.metrics.passed
    assert report.metrics.rows == 400
    checks = {c.metric: c for c in report.metrics.checks}
    assert set(checks) == {"roc_auc", "accuracy"}
    for metric, check in checks.items():
        assert check.status == "MATCH"
        assert check.verified == pytest.approx(truth[metric], abs=1e-4)
        assert check.claimed == claimed[metric]
    assert report.compatibility.verdict == pb.SignatureCompatibility.NO_APPROVED_VERSION
    stored = registry.GetModelVersion(
        pb.GetModelVersionRequest(model_id=version.model_id, version=version.version),
        metadata=bob,
        timeout=10,
    )
    assert stored.validation_state == pb.ValidationReport.PASSED

    decided = _submit_and_approve(registry, alice, bob, version)
    assert decided.state == pb.Approval.APPROVED

    # The next version claims more than it scores, and takes one more feature: its report
    # fails on the metric, names the breaking change, and it cannot be approved.
    wider = classifier_model(FEATURES + 1, seed=3)
    second = _upload(registry, alice, "validated-pump", wider, {"roc_auc": 0.999}, None)
    assert not second.has_evaluation_set
    report = _report(registry, alice, second)
    assert report.state == pb.ValidationReport.PASSED  # no evaluation set: claims unverified
    assert not report.HasField("metrics")
    assert report.compatibility.verdict == pb.SignatureCompatibility.BREAKING
    assert report.compatibility.approved_version == version.version
    assert [d.change for d in report.compatibility.breaking] == ["DIM_SIZE_CHANGED"]

    third = _upload(
        registry,
        alice,
        "validated-pump",
        model,
        {"roc_auc": min(truth["roc_auc"] + 0.2, 1.0)},
        evaluation_set,
    )
    report = _report(registry, alice, third)
    assert report.state == pb.ValidationReport.FAILED
    assert report.reason == "METRICS_MISMATCH"
    assert [c.status for c in report.metrics.checks] == ["MISMATCH"]
    assert report.compatibility.verdict == pb.SignatureCompatibility.COMPATIBLE
    with pytest.raises(grpc.RpcError) as refused:
        _submit_and_approve(registry, alice, bob, third)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "METRICS_MISMATCH" in (refused.value.details() or "")


def test_a_report_of_another_tenant_is_not_found(
    stack: RunningStack, registry: pb_grpc.ModelRegistryStub
) -> None:
    alice = _who(stack, "data_scientist", "alice")
    version = _upload(registry, alice, "tenant-bound", classifier_model(2), {}, None)
    eve = (
        (
            "authorization",
            f"Bearer {stack.tokens.valid('model_approver', subject='eve', tenant='other')}",
        ),
    )
    with pytest.raises(grpc.RpcError) as hidden:
        registry.GetValidationReport(
            pb.GetValidationReportRequest(model_id=version.model_id, version=1),
            metadata=eve,
            timeout=10,
        )
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
