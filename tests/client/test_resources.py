"""The SDK's typed results, built from protobuf messages as the server sends them:
words for statuses, UTC datetimes, plain JSON from `to_dict()`, a short `repr`,
an HTML table for Jupyter, and the message itself in `.raw`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import query_service_pb2 as qpb

from mlplane_client import (
    Approval,
    ApprovalState,
    Asset,
    CompatibilityVerdict,
    ExportFormat,
    ExportManifest,
    ExportStatus,
    FailureEvent,
    Model,
    ModelVersion,
    OnnxSignature,
    StatusChange,
    TensorSpec,
    ValidationState,
    VersionStatus,
)
from mlplane_client.enums import ProtoWord

UPLOADED = datetime(2026, 11, 27, 10, 15, 3, 123456, tzinfo=UTC)
SUBMITTED = UPLOADED + timedelta(minutes=5)


def _stamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _version_message(**overrides: object) -> mpb.ModelVersion:
    fields: dict[str, object] = {
        "model_id": "0c6f8e1a-2b7d-4f55-9a1e-6d1f3c2b9e40",
        "name": "pump-bearing-risk",
        "version": 2,
        "status": mpb.ModelVersion.IN_REVIEW,
        "description": "RF on 7 days of pumps",
        "labels": {"team": "reliability"},
        "metrics": {"roc_auc": 0.91, "f1": 1.0},
        "training_export_ids": ["5b0c", "77aa"],
        "sha256": "ab" * 32,
        "size_bytes": 48213,
        "signature": mpb.OnnxSignature(
            inputs=[
                mpb.TensorSpec(
                    name="float_input",
                    element_type="FLOAT",
                    shape=[mpb.Dimension(param="N"), mpb.Dimension(size=16), mpb.Dimension()],
                )
            ],
            outputs=[mpb.TensorSpec(name="label", element_type="INT64")],
            opset_imports=[
                mpb.OperatorSetId(version=17),
                mpb.OperatorSetId(domain="ai.onnx.ml", version=3),
            ],
            ir_version=8,
            producer_name="skl2onnx",
            producer_version="1.20.0",
        ),
        "created_by": "alice",
        "create_time": _stamp(UPLOADED),
        "update_time": _stamp(SUBMITTED),
        "status_history": [
            mpb.StatusChange(
                to_status=mpb.ModelVersion.PENDING_APPROVAL,
                actor="alice",
                comment="uploaded",
                change_time=_stamp(UPLOADED),
            ),
            mpb.StatusChange(
                from_status=mpb.ModelVersion.PENDING_APPROVAL,
                to_status=mpb.ModelVersion.IN_REVIEW,
                actor="alice",
                comment="AUC 0.91",
                change_time=_stamp(SUBMITTED),
            ),
        ],
    }
    fields.update(overrides)
    return mpb.ModelVersion(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("words", "proto"),
    [
        (VersionStatus, mpb.ModelVersion.Status),
        (ApprovalState, mpb.Approval.State),
        (ExportFormat, qpb.Export.Format),
        (ExportStatus, qpb.Export.Status),
        (ValidationState, mpb.ValidationReport.State),
        (CompatibilityVerdict, mpb.SignatureCompatibility.Verdict),
    ],
    ids=lambda x: getattr(x, "__name__", ""),
)
def test_the_enums_are_the_contracts_values(words: type[ProtoWord], proto: object) -> None:
    """A value added to the contract fails here until the SDK knows it."""
    descriptor = proto.DESCRIPTOR  # type: ignore[attr-defined]
    assert [(m.value, m.number) for m in words] == [(v.name, v.number) for v in descriptor.values]
    for member in words:
        assert words.from_proto(member.number) is member
        assert words.parse(member.value.lower()) is member
        assert str(member) == member.value == f"{member}"
        assert repr(member) == f"{words.__name__}.{member.value}"


def test_words_compare_print_and_serialise_as_their_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = VersionStatus.from_proto(mpb.ModelVersion.PENDING_APPROVAL)
    assert status == "PENDING_APPROVAL"
    assert status != "pending_approval"  # equality is exact; `parse` is the forgiving way in
    print(status)
    assert capsys.readouterr().out == "PENDING_APPROVAL\n"
    assert json.dumps({"status": status}) == '{"status": "PENDING_APPROVAL"}'
    assert ApprovalState.parse("  Open ") is ApprovalState.OPEN
    with pytest.raises(ValueError, match=r"'opened' is not one of OPEN, APPROVED, REJECTED"):
        ApprovalState.parse("opened")
    # A value from a newer server: the zero value here, the number in `.raw`.
    assert VersionStatus.from_proto(42) is VersionStatus.STATUS_UNSPECIFIED


def test_a_version_is_typed_all_the_way_down() -> None:
    message = _version_message()
    v = ModelVersion.from_proto(message)
    assert v.raw is message
    assert (v.version, v.size_bytes) == (2, 48213)
    assert type(v.version) is int
    assert v.status is VersionStatus.IN_REVIEW
    assert v.labels == {"team": "reliability"}
    assert type(v.labels) is dict
    assert v.metrics == {"roc_auc": 0.91, "f1": 1.0}
    assert list(v.metrics) == ["f1", "roc_auc"]  # sorted: the same repr every run
    assert v.training_export_ids == ("5b0c", "77aa")
    assert v.create_time == UPLOADED
    assert v.create_time is not None
    assert v.create_time.tzinfo is UTC
    assert v.update_time == SUBMITTED

    sig = v.signature
    assert isinstance(sig, OnnxSignature)
    assert isinstance(sig.inputs[0], TensorSpec)
    assert [(t.name, t.element_type, t.shape) for t in sig.inputs] == [
        ("float_input", "FLOAT", ("N", 16, None))
    ]
    assert str(sig.inputs[0]) == "float_input: FLOAT[N, 16, ?]"
    assert sig.outputs[0].shape == ()
    assert [(o.domain, o.version) for o in sig.opset_imports] == [("", 17), ("ai.onnx.ml", 3)]
    assert (sig.ir_version, sig.producer_name, sig.producer_version) == (8, "skl2onnx", "1.20.0")
    assert str(sig) == (
        "inputs float_input: FLOAT[N, 16, ?]; outputs label: INT64[]; "
        "opsets ai.onnx 17, ai.onnx.ml 3; IR 8; by skl2onnx 1.20.0"
    )

    upload, submit = v.status_history
    assert isinstance(upload, StatusChange)
    assert (upload.from_status, upload.to_status) == (
        VersionStatus.STATUS_UNSPECIFIED,
        VersionStatus.PENDING_APPROVAL,
    )
    assert (submit.actor, submit.comment, submit.change_time) == ("alice", "AUC 0.91", SUBMITTED)
    assert str(upload) == "2026-11-27T10:15:03Z upload -> PENDING_APPROVAL by alice: uploaded"


def test_unset_times_are_none_and_an_empty_message_still_converts() -> None:
    v = ModelVersion.from_proto(mpb.ModelVersion())
    assert (v.create_time, v.update_time) == (None, None)
    assert v.status is VersionStatus.STATUS_UNSPECIFIED
    assert v.signature.inputs == ()
    assert repr(v) == "ModelVersion(version=0, size_bytes=0)"
    open_request = Approval.from_proto(mpb.Approval(approval_id="a1", state=mpb.Approval.OPEN))
    assert (open_request.decide_time, open_request.model_version) == (None, None)


def test_to_dict_is_plain_json() -> None:
    data = ModelVersion.from_proto(_version_message()).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "IN_REVIEW"
    assert data["create_time"] == "2026-11-27T10:15:03.123456Z"
    assert data["training_export_ids"] == ["5b0c", "77aa"]
    assert data["signature"]["inputs"] == [
        {"name": "float_input", "element_type": "FLOAT", "shape": ["N", 16, None]}
    ]
    assert data["status_history"][0] == {
        "from_status": "STATUS_UNSPECIFIED",
        "to_status": "PENDING_APPROVAL",
        "actor": "alice",
        "comment": "uploaded",
        "change_time": "2026-11-27T10:15:03.123456Z",
    }
    assert "raw" not in data
    # Every field, empty or not: rows of a DataFrame line up.
    assert list(data) == [
        "model_id", "name", "version", "status", "description", "labels", "metrics",
        "training_export_ids", "sha256", "size_bytes", "signature", "created_by",
        "create_time", "update_time", "status_history", "validation_state", "has_evaluation_set",
    ]  # fmt: skip
    assert (data["validation_state"], data["has_evaluation_set"]) == ("STATE_UNSPECIFIED", False)


def test_repr_is_one_short_line_with_what_matters() -> None:
    v = ModelVersion.from_proto(_version_message())
    assert repr(v) == (
        "ModelVersion(name='pump-bearing-risk', version=2, status=IN_REVIEW, "
        "model_id='0c6f8e1a-2b7d-4f55-9a1e-6d1f3c2b9e40', size_bytes=48213, "
        "metrics={'f1': 1.0, 'roc_auc': 0.91}, created_by='alice', "
        "create_time=2026-11-27T10:15:03Z)"
    )
    approval = Approval.from_proto(
        mpb.Approval(
            approval_id="4e1d",
            model_id=v.model_id,
            model_name=v.name,
            version=2,
            state=mpb.Approval.OPEN,
            submitted_by="alice",
            submit_time=_stamp(SUBMITTED),
            model_version=v.raw,
        )
    )
    assert repr(approval) == (
        "Approval(model_name='pump-bearing-risk', version=2, state=OPEN, approval_id='4e1d', "
        "submitted_by='alice', submit_time=2026-11-27T10:20:03Z)"
    )
    assert approval.model_version == v
    model = Model.from_proto(
        mpb.Model(model_id="m1", name="pump-bearing-risk", latest_version=2, created_by="alice")
    )
    assert repr(model) == (
        "Model(name='pump-bearing-risk', model_id='m1', latest_version=2, created_by='alice')"
    )
    for result in (v, approval, model):
        assert "\n" not in repr(result)
        assert "raw" not in repr(result)


def test_results_compare_by_value_and_hash() -> None:
    a, b = ModelVersion.from_proto(_version_message()), ModelVersion.from_proto(_version_message())
    assert a == b
    assert a.raw is not b.raw
    assert hash(a) == hash(b)
    assert a != ModelVersion.from_proto(_version_message(status=mpb.ModelVersion.APPROVED))
    with pytest.raises(AttributeError):
        a.status = VersionStatus.APPROVED  # type: ignore[misc]


def test_jupyter_shows_a_table_for_a_result_and_lines_in_a_list() -> None:
    formatters = pytest.importorskip("IPython.core.formatters")
    display = formatters.DisplayFormatter()
    v = ModelVersion.from_proto(_version_message(description="<b>bold</b> & co"))
    data, _ = display.format(v)
    assert data["text/plain"] == repr(v)
    table = data["text/html"]
    assert "<th" in table
    assert "IN_REVIEW" in table
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in table  # escaped, never markup
    assert "float_input: FLOAT[N, 16, ?]" in table
    assert "2026-11-27T10:20:03Z PENDING_APPROVAL -&gt; IN_REVIEW by alice: AUC 0.91" in table
    listed, _ = display.format([v, v])
    assert "text/html" not in listed
    assert listed["text/plain"].count("ModelVersion(name='pump-bearing-risk'") == 2


def test_assets_tags_and_failure_events() -> None:
    asset = Asset.from_proto(
        qpb.Asset(
            asset_id="pump-001",
            display_name="Pump 1",
            tags=[qpb.Tag(name="flow", unit="m3/h"), qpb.Tag(name="bearing_temp", unit="degC")],
            last_time=_stamp(UPLOADED),
        )
    )
    assert asset.tag_names == ("flow", "bearing_temp")
    assert (asset.tags[0].name, asset.tags[0].unit, str(asset.tags[1])) == (
        "flow",
        "m3/h",
        "bearing_temp [degC]",
    )
    assert (asset.first_time, asset.last_time) == (None, UPLOADED)
    assert repr(asset) == (
        "Asset(asset_id='pump-001', display_name='Pump 1', tag_names=('flow', 'bearing_temp'), "
        "last_time=2026-11-27T10:15:03Z)"
    )
    assert asset.to_dict()["tags"][0] == {"name": "flow", "unit": "m3/h", "description": ""}

    down = FailureEvent.from_proto(
        qpb.FailureEvent(asset_id="pump-001", start_time=_stamp(UPLOADED), failure_mode="seal_leak")
    )
    assert (down.start_time, down.end_time) == (UPLOADED, None)
    assert repr(down) == (
        "FailureEvent(asset_id='pump-001', failure_mode='seal_leak', "
        "start_time=2026-11-27T10:15:03Z)"
    )


def test_the_export_manifest_has_words_too() -> None:
    message = qpb.Export(
        export_id="5b0c",
        asset_id="pump-001",
        start_time=_stamp(UPLOADED),
        end_time=_stamp(SUBMITTED),
        tags=["flow"],
        resolution=Duration(seconds=60),
        format=qpb.Export.CSV,
        row_count=5,
        sha256="9f" * 32,
        created_by="alice",
        create_time=_stamp(UPLOADED),
        status=qpb.Export.COMPLETED,
    )
    m = ExportManifest.from_proto(message)
    assert m.raw is message
    assert (m.format, m.status) == (ExportFormat.CSV, ExportStatus.COMPLETED)
    assert (m.rows, m.row_count, m.encoding) == (5, 5, "csv")
    assert m.resolution == timedelta(minutes=1)
    data = m.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert (data["format"], data["status"], data["resolution"]) == ("CSV", "COMPLETED", 60.0)
    assert data["start_time"] == "2026-11-27T10:15:03.123456Z"
    assert repr(m).startswith(
        "ExportManifest(export_id='5b0c', asset_id='pump-001', rows=5, format=CSV, "
        "status=COMPLETED, start_time=2026-11-27T10:15:03Z, end_time=2026-11-27T10:20:03Z, "
        "tags=('flow',), resolution=60s, sha256='9f9f"
    )
    # Built by hand (as before the typed results): the enums' zero values, an empty `raw`.
    bare = ExportManifest(export_id="e1", rows=0, sha256="")
    assert bare.status is ExportStatus.STATUS_UNSPECIFIED
    assert bare.raw == qpb.Export()
