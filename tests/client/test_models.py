"""SDK registry and approvals against the real stack, through Envoy and straight
to the ModelRegistry."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from mlplane.v1 import model_registry_pb2 as mpb

from mlplane_client import (
    Approval,
    ApprovalState,
    Client,
    Conflict,
    IntegrityError,
    InvalidArgument,
    Model,
    ModelVersion,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    VersionStatus,
)
from tests.admin_sql import admin_rows
from tests.client.conftest import alice_token, unique_name
from tests.models.onnx_models import broken_model, linear_model
from tests.stack_runner import RunningStack

LIMIT = 8 * 1024 * 1024  # MLPLANE_MAX_MODEL_BYTES of the test stack


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("route", ["gateway", "service"])
def test_upload_with_lineage_then_read_and_download(
    stack: RunningStack,
    alice: Client,
    models_direct: Client,
    window: tuple[datetime, datetime],
    model_file: Path,
    tmp_path: Path,
    route: str,
) -> None:
    client = alice if route == "gateway" else models_direct
    ex = alice.export_history("pump-005", *window, tags=["flow"], progress=False)
    ax = alice.export_history_arrow("pump-006", *window, tags=["flow"], progress=False)
    name = unique_name()
    first = client.upload_model(
        model_file,
        name,
        "linear, one hour of pump-005",
        metrics={"auc": 0.91, "f1": 1},
        training_exports=[ex, ax.manifest, ex.export_id],
        labels={"team": "reliability"},
        progress=route == "gateway",
    )
    assert isinstance(first, ModelVersion)
    assert first.version == 1
    assert first.status == "PENDING_APPROVAL" == VersionStatus.PENDING_APPROVAL
    assert first.raw.status == mpb.ModelVersion.PENDING_APPROVAL
    assert first.sha256 == _sha(model_file)
    assert first.size_bytes == model_file.stat().st_size
    assert first.training_export_ids == (ex.export_id, ax.export_id)
    assert first.metrics == {"auc": 0.91, "f1": 1.0}
    assert first.labels == {"team": "reliability"}
    assert first.created_by == "alice"
    assert first.create_time is not None
    assert first.create_time.tzinfo is not None
    assert first.create_time.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - first.create_time) < timedelta(minutes=5)
    assert [(c.from_status, c.to_status, c.actor) for c in first.status_history] == [
        (VersionStatus.STATUS_UNSPECIFIED, VersionStatus.PENDING_APPROVAL, "alice")
    ]
    stored = admin_rows(
        stack,
        "SELECT sha256, training_export_ids FROM model_versions WHERE model_id = $1",
        uuid.UUID(first.model_id),
    )
    assert stored[0]["sha256"] == _sha(model_file)
    assert stored[0]["training_export_ids"] == [ex.export_id, ax.export_id]

    other = tmp_path / "v2.onnx"
    other.write_bytes(linear_model(32, seed=7))
    second = client.upload_model(other, name, "bigger", progress=False)
    assert (second.model_id, second.version) == (first.model_id, 2)

    model = client.get_model(first.model_id)
    assert isinstance(model, Model)
    assert (model.name, model.latest_version, model.created_by) == (name, 2, "alice")
    assert [v.version for v in client.list_versions(first.model_id)] == [2, 1]
    again = client.get_version(first.model_id, 1)
    # The same fields (`raw` is left out of ==), but where its validation stands: the
    # stack's worker moves that on meanwhile.
    assert replace(again, validation_state=first.validation_state) == first
    sig = again.signature  # tests/models/onnx_models.linear_model(16): Y = X @ W
    assert [(t.name, t.element_type, t.shape) for t in sig.inputs] == [
        ("X", "FLOAT", ("batch", 16))
    ]
    assert [str(t) for t in sig.outputs] == ["Y: FLOAT[batch, 1]"]
    assert [(o.domain, o.version) for o in sig.opset_imports] == [("", 17)]
    assert (sig.producer_name, sig.producer_version) == ("mlplane-tests", "1.0")
    assert again.to_dict()["status"] == "PENDING_APPROVAL"
    assert [m.model_id for m in client.list_models(f'name = "{name}"')] == [first.model_id]

    dest = client.download_model(first.model_id, 1, tmp_path / "out" / "back.onnx", progress=True)
    assert dest.read_bytes() == model_file.read_bytes()
    into_dir = client.download_model(first.model_id, 2, tmp_path, progress=False)
    assert into_dir == tmp_path / f"{name}-v2.onnx"
    assert _sha(into_dir) == second.sha256
    assert not list(tmp_path.rglob("*.part"))


def test_list_models_walks_every_page(stack: RunningStack, alice: Client, model_file: Path) -> None:
    prefix = unique_name("pages")
    for i in range(3):
        alice.upload_model(model_file, f"{prefix}-{i}", "", progress=False)
    with Client(stack.gateway_target, token=alice_token(stack), page_size=2) as small_pages:
        names = [m.name for m in small_pages.list_models() if m.name.startswith(prefix)]
    assert names == [f"{prefix}-{i}" for i in range(3)]


@pytest.mark.parametrize("route", ["gateway", "service"])
def test_refused_uploads_are_typed(
    stack: RunningStack, alice: Client, models_direct: Client, tmp_path: Path, route: str
) -> None:
    client = alice if route == "gateway" else models_direct
    text = tmp_path / "notes.onnx"
    text.write_bytes(b"this is not a model\n" * 100)
    with pytest.raises(InvalidArgument) as not_onnx:
        client.upload_model(text, unique_name(), "", progress=False)
    assert not_onnx.value.reason == "NOT_ONNX"

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(broken_model())
    with pytest.raises(InvalidArgument) as failed_check:
        client.upload_model(broken, unique_name(), "", progress=False)
    assert failed_check.value.reason == "ONNX_CHECK_FAILED"

    good = tmp_path / "good.onnx"
    good.write_bytes(linear_model(8))
    with pytest.raises(InvalidArgument) as bad_digest:
        client.upload_model(good, unique_name(), "", sha256="0" * 64, progress=False)
    assert bad_digest.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(InvalidArgument) as bad_name:
        client.upload_model(good, "Not A Valid Name!", "", progress=False)
    # Named as a REST caller spells it (the JSON name under the first message's `metadata`).
    assert [f for f, _ in bad_name.value.field_violations] == ["metadata.name"]
    assert "lower-case" in bad_name.value.field_violations[0].description
    assert bad_name.value.hint == ""

    # The server ends the client stream as soon as the limit is crossed; the
    # sync client must see RESOURCE_EXHAUSTED, not INTERNAL (grpc/grpc#36066).
    huge = tmp_path / "huge.onnx"
    huge.write_bytes(linear_model(LIMIT // 4 + 1024))
    with pytest.raises(ResourceExhausted) as too_large:
        client.upload_model(huge, unique_name(), "", progress=False)
    assert too_large.value.reason == "MODEL_TOO_LARGE"
    assert too_large.value.metadata["limitBytes"] == str(LIMIT)


def test_not_found_is_typed_with_a_one_line_message(alice: Client, models_direct: Client) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for client in (alice, models_direct):
        with pytest.raises(NotFound) as caught:
            client.get_model(missing)
        assert caught.value.reason == "MODEL_NOT_FOUND"
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert str(caught.value) == f"NOT_FOUND MODEL_NOT_FOUND: model {missing} does not exist"
        with pytest.raises(NotFound):
            client.download_model(missing, 1, "/nonexistent-dir/x.onnx", progress=False)


def test_submit_approve_and_reject_with_two_people(
    stack: RunningStack, alice: Client, bob: Client, model_file: Path
) -> None:
    name = unique_name("flow")
    v1 = alice.upload_model(model_file, name, "first", progress=False)
    alice.upload_model(model_file, name, "second", progress=False)
    # Approval needs a passed validation report: wait for the stack's worker.
    assert alice.wait_for_validation(v1.model_id, 1, timeout=120).passed

    ap1 = alice.submit_for_approval(v1.model_id, 1, comment="auc 0.91")
    assert isinstance(ap1, Approval)
    assert ap1.state == ApprovalState.OPEN == "OPEN"
    assert str(ap1.state) == "OPEN"
    assert ap1.submitted_by == "alice"
    assert ap1.submit_time is not None
    assert ap1.submit_time.utcoffset() == timedelta(0)
    assert ap1.decide_time is None
    assert alice.get_version(v1.model_id, 1).status == "IN_REVIEW"
    with pytest.raises(Conflict):
        alice.submit_for_approval(v1.model_id, 1)
    ap2 = alice.submit_for_approval(v1.model_id)  # the newest: version 2
    assert ap2.version == 2

    # alice may approve in general, but never her own upload.
    both_roles = stack.tokens.valid("data_scientist", "model_approver", subject="alice")
    with Client(stack.gateway_target, token=both_roles) as alice_approver:
        with pytest.raises(PermissionDenied) as own:
            alice_approver.approve(ap1.approval_id)
        assert own.value.reason == "SEPARATION_OF_DUTIES"
    # a data scientist cannot see the queue at all
    with pytest.raises(PermissionDenied):
        alice.list_approvals()

    queue = bob.list_approvals("open")  # any case, or the enum
    assert [a.approval_id for a in queue] == [
        a.approval_id for a in bob.list_approvals(ApprovalState.OPEN)
    ]
    assert {ap1.approval_id, ap2.approval_id} <= {a.approval_id for a in queue}
    queued = next(a for a in queue if a.approval_id == ap1.approval_id)
    assert queued.model_version is not None
    assert queued.model_version.status == VersionStatus.IN_REVIEW
    assert queued.model_version.sha256 == v1.sha256
    with pytest.raises(ValueError, match="OPEN, APPROVED, REJECTED, CANCELLED"):
        bob.list_approvals("pending")
    approved = bob.approve(ap1.approval_id, comment="ok")
    assert approved.state == "APPROVED"
    assert approved.decided_by == "bob"
    assert approved.decide_time is not None
    assert bob.get_approval(ap1.approval_id).decision_comment == "ok"
    with pytest.raises(Conflict):
        bob.approve(ap1.approval_id)
    with pytest.raises(InvalidArgument) as no_comment:
        bob.reject(ap2.approval_id, "")
    assert [f for f, _ in no_comment.value.field_violations] == ["comment"]
    rejected = bob.reject(ap2.approval_id, "drift on pump-008")
    assert rejected.state == ApprovalState.REJECTED
    assert alice.get_version(v1.model_id, 1).status == VersionStatus.APPROVED
    assert alice.get_version(v1.model_id, 2).status == VersionStatus.REJECTED
    archived = bob.archive(v1.model_id, 2, comment="superseded")
    assert archived.status == VersionStatus.ARCHIVED
    assert [(c.to_status, c.actor) for c in archived.status_history] == [
        (VersionStatus.PENDING_APPROVAL, "alice"),
        (VersionStatus.IN_REVIEW, "alice"),
        (VersionStatus.REJECTED, "bob"),
        (VersionStatus.ARCHIVED, "bob"),
    ]
    assert archived.status_history[-1].comment == "superseded"
    assert ap1.approval_id not in [a.approval_id for a in bob.list_approvals()]
    assert ap1.approval_id in [a.approval_id for a in bob.list_approvals(None)]


def test_a_corrupted_stored_file_never_reaches_the_destination(
    stack: RunningStack, alice: Client, model_file: Path, tmp_path: Path
) -> None:
    """A real fault: the stored object is altered on disk behind the registry's back."""
    version = alice.upload_model(model_file, unique_name("rot"), "", progress=False)
    stored = stack.state_dir / "objects" / "demo" / version.model_id / "1.onnx"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    dest = tmp_path / "got.onnx"
    with pytest.raises(IntegrityError) as caught:
        alice.download_model(version.model_id, 1, dest, progress=False)
    assert caught.value.reason == "SHA256_MISMATCH"
    assert caught.value.code == grpc.StatusCode.DATA_LOSS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no got.onnx, no .part
