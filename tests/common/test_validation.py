"""The contract's field rules (buf.validate in protos/) and how their failures read.

Every request field carries a rule (the census below fails when one is added without), and a
failure names the field as a REST caller spells it, in an ErrorInfo and a BadRequest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from buf.validate import validate_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from mlplane.v1 import field_rules_pb2
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import query_service_pb2 as qpb

from services.common.errors import ServiceError, to_status_proto
from services.common.validation import RequestValidator

ID = str(uuid.uuid4())
VALIDATOR = RequestValidator()


def refusal(message: Message) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        VALIDATOR.check(message)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


def violations(error: ServiceError) -> list[tuple[str, str]]:
    (bad_request,) = error.details
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    return [(v.field, v.reason) for v in bad_request.field_violations]


def metadata(**fields: Any) -> mpb.UploadModelRequest:
    return mpb.UploadModelRequest(metadata=mpb.UploadModelMetadata(**{"name": "ok", **fields}))


def window(**fields: Any) -> qpb.ExportHistoryRequest:
    start, end = Timestamp(seconds=1_700_000_000), Timestamp(seconds=1_700_003_600)
    return qpb.ExportHistoryRequest(
        **{"asset_id": "pump-001", "start_time": start, "end_time": end, **fields}
    )


# --- valid messages pass --------------------------------------------------------------------
@pytest.mark.parametrize(
    "message",
    [
        metadata(
            name="pump-failure-48h",
            description="RF on 30 days\n\tof pumps",
            labels={"team": "reliability", "k8s.io/x": "y"},
            metrics={"roc_auc": 0.91, "f1_at_0.5": 0.8},
            training_export_ids=[ID],
            sha256="AB" * 32,
        ),
        mpb.UploadModelRequest(chunk=b"\x08\x07"),
        mpb.GetModelVersionRequest(model_id=ID, version=2**31 - 1),
        mpb.SubmitForApprovalRequest(model_id=ID, version=0, comment="x" * 4096),
        mpb.ListApprovalsRequest(state=mpb.Approval.OPEN, page_size=5000),
        mpb.ListModelsRequest(filter='name = "a" AND status = APPROVED'),
        mpb.RejectModelVersionRequest(approval_id=ID, comment="drift on pump-008"),
        window(tags=["flow", "a:b/c"], resolution=Duration(seconds=60), format=qpb.Export.ARROW),
        qpb.ListFailureEventsRequest(asset_id="pump-001"),
        qpb.GetExportRequest(export_id=ID.upper()),
    ],
    ids=lambda m: type(m).__name__,
)
def test_valid_requests_pass(message: Message) -> None:
    VALIDATOR.check(message)


# --- each rule, named as a REST caller names the field ----------------------------------------
@pytest.mark.parametrize(
    ("message", "field", "rule"),
    [
        (metadata(name=""), "metadata.name", "required"),
        (metadata(name="Pump"), "metadata.name", "model_name"),
        (metadata(name="a..b"), "metadata.name", "model_name"),
        (metadata(name="a\nb"), "metadata.name", "model_name"),
        (metadata(name="a" * 129), "metadata.name", "string.max_len"),
        (metadata(description="x" * 4097), "metadata.description", "string.max_len"),
        (metadata(description="bell\x07"), "metadata.description", "string.multiline_text"),
        (metadata(labels={"Team": "x"}), 'metadata.labels["Team"]', "label_key"),
        (metadata(labels={"team": "a\nb"}), 'metadata.labels["team"]', "string.single_line_text"),
        (metadata(labels={"team": "x" * 257}), 'metadata.labels["team"]', "string.max_len"),
        (metadata(labels={f"k{i}": "v" for i in range(65)}), "metadata.labels", "map.max_pairs"),
        (metadata(metrics={"auc": float("nan")}), 'metadata.metrics["auc"]', "double.finite"),
        (metadata(metrics={"auc": float("inf")}), 'metadata.metrics["auc"]', "double.finite"),
        (metadata(metrics={"a b": 1.0}), 'metadata.metrics["a b"]', "metric_name"),
        (
            metadata(metrics={f"m{i}": 1.0 for i in range(257)}),
            "metadata.metrics",
            "map.max_pairs",
        ),
        (
            metadata(training_export_ids=[ID, "nope"]),
            "metadata.trainingExportIds[1]",
            "string.uuid",
        ),
        (
            metadata(training_export_ids=[str(uuid.uuid4()) for _ in range(101)]),
            "metadata.trainingExportIds",
            "repeated.max_items",
        ),
        (metadata(sha256="abc"), "metadata.sha256", "sha256_hex"),
        (mpb.UploadModelRequest(), "part", "required"),
        (mpb.UploadModelRequest(chunk=b"x" * (4 * 2**20 + 1)), "chunk", "bytes.max_len"),
        (mpb.GetModelRequest(model_id="../etc/passwd"), "modelId", "string.uuid"),
        (mpb.GetModelVersionRequest(model_id=ID, version=0), "version", "int64.gte_lte"),
        (
            mpb.SubmitForApprovalRequest(model_id=ID, version=2**31),
            "version",
            "int64.gte_lte",
        ),
        (
            mpb.SubmitForApprovalRequest(model_id=ID, comment="x" * 4097),
            "comment",
            "string.max_len",
        ),
        (mpb.ListModelsRequest(page_size=-1), "pageSize", "int32.gte"),
        (mpb.ListModelsRequest(filter="x" * 1025), "filter", "string.max_len"),
        (mpb.ListModelsRequest(filter="a\x00"), "filter", "string.single_line_text"),
        (mpb.ListApprovalsRequest(state=9), "state", "enum.defined_only"),  # type: ignore[arg-type]
        (mpb.ListApprovalsRequest(page_token="t" * 1025), "pageToken", "string.max_len"),
        (mpb.RejectModelVersionRequest(approval_id=ID), "comment", "required"),
        (
            mpb.RejectModelVersionRequest(approval_id=ID, comment=" \n"),
            "comment",
            "string.not_blank",
        ),
        (mpb.ApproveModelVersionRequest(approval_id="x"), "approvalId", "string.uuid"),
        (mpb.ArchiveModelVersionRequest(model_id=ID, version=-1), "version", "int64.gte_lte"),
        (window(asset_id=""), "assetId", "required"),
        (window(asset_id="pump 001"), "assetId", "string.asset_id"),
        (window(asset_id="p" * 129), "assetId", "string.max_len"),
        (qpb.ExportHistoryRequest(asset_id="pump-001"), "startTime", "required"),
        (window(tags=["ok", "bad tag;"]), "tags[1]", "string.tag_name"),
        (window(tags=[f"t{i}" for i in range(257)]), "tags", "repeated.max_items"),
        (window(resolution=Duration(nanos=500_000_000)), "resolution", "duration.gte"),
        (window(resolution=Duration(seconds=-5)), "resolution", "duration.gte"),
        (window(format=qpb.Export.CSV), "format", "export_format"),
        (qpb.GetExportRequest(export_id="1"), "exportId", "string.uuid"),
        (qpb.ListAssetsRequest(page_size=-5), "pageSize", "int32.gte"),
        (qpb.ListFailureEventsRequest(asset_id="a/b"), "assetId", "string.asset_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_rule_failures_name_the_field(message: Message, field: str, rule: str) -> None:
    error = refusal(message)
    assert (field, rule) in violations(error)
    assert error.metadata["field"] == violations(error)[0][0]
    assert error.reason == (
        "MISSING_FIELD" if violations(error)[0][1] == "required" else "INVALID_FIELD"
    )


def test_message_reads_as_a_sentence_and_lists_every_violation() -> None:
    error = refusal(metadata(name="", description="\x01", labels={"A": "v"}, sha256="z"))
    assert error.message.startswith("metadata.name is required; ")
    assert error.message.endswith("and 1 more")
    assert [f for f, _ in violations(error)] == [
        "metadata.name",
        "metadata.description",
        'metadata.labels["A"]',
        "metadata.sha256",
    ]
    assert 'metadata.labels["A"] key must be 1-63 lower-case letters' in error.message


def test_echoed_keys_are_cut_and_escaped() -> None:
    error = refusal(metadata(labels={"\x00" * 500: "v"}))
    (field, _), *_ = violations(error)
    assert field == 'metadata.labels["' + "\\u0000" * 64 + '"]'


def test_status_carries_error_info_then_bad_request() -> None:
    status = to_status_proto(refusal(mpb.GetModelRequest(model_id="x")))
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    assert status.details[0].Unpack(info)
    assert status.details[1].Unpack(bad)
    assert (info.reason, dict(info.metadata)) == (
        "INVALID_FIELD",
        {"field": "modelId", "rule": "string.uuid"},
    )
    assert bad.field_violations[0].description == "modelId must be a valid UUID"
    assert status.message == "modelId must be a valid UUID"


def test_form_fields_are_named_as_the_form_names_them() -> None:
    error = refusal_of_form({"name": "Bad", "trainingExportIds": "x"})
    assert [f for f, _ in violations(error)] == ["name", "trainingExportIds[0]"]


def refusal_of_form(fields: dict[str, str]) -> ServiceError:
    from services.models.metadata import parse_form_metadata

    with pytest.raises(ServiceError) as caught:
        parse_form_metadata(fields, VALIDATOR)
    return caught.value


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": "m", "metrics": '{"auc": ' + "9" * 400 + "}"}, "MALFORMED_FIELD"),
        ({"name": "m", "metrics": '{"auc": ' + "9" * 5000 + "}"}, "MALFORMED_FIELD"),
        ({"name": "m", "metrics": '{"auc": true}'}, "MALFORMED_FIELD"),
        ({"name": "m", "metrics": "[" * 100_000}, "MALFORMED_FIELD"),
        ({"name": "m", "labels": '{"a": 1}'}, "MALFORMED_FIELD"),
        ({"name": "m", "labels": "[]"}, "MALFORMED_FIELD"),
        ({"name": "m", "trainingExportIds": "[1]"}, "MALFORMED_FIELD"),
        ({"name": "m", "colour": "red"}, "UNKNOWN_FORM_FIELD"),
        ({"name": "m", "metrics": '{"auc": NaN}'}, "INVALID_FIELD"),
    ],
)
def test_malformed_form_fields_are_400s(fields: dict[str, str], reason: str) -> None:
    assert refusal_of_form(fields).reason == reason


def test_form_metadata_is_normalised() -> None:
    from services.models.metadata import parse_form_metadata

    upper = ID.upper()
    parsed = parse_form_metadata(
        {"name": "m", "trainingExportIds": f"{upper}, {ID}", "sha256": "AB" * 32}, VALIDATOR
    )
    assert parsed.training_export_ids == [ID]
    assert parsed.sha256 == "ab" * 32


# --- the census: every request field has a rule ------------------------------------------------
_BOUNDED = {
    FieldDescriptor.TYPE_STRING: ("string", ("max_len", "uuid", "max_bytes")),
    FieldDescriptor.TYPE_BYTES: ("bytes", ("max_len",)),
    FieldDescriptor.TYPE_INT32: ("int32", ("gte", "gt")),
    FieldDescriptor.TYPE_INT64: ("int64", ("gte", "gt")),
    FieldDescriptor.TYPE_ENUM: ("enum", ("defined_only",)),
}


def _request_messages() -> Iterator[Descriptor]:
    for module in (mpb, qpb):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.input_type.full_name.startswith("mlplane."):
                    yield method.input_type


def _rules(field: FieldDescriptor) -> validate_pb2.FieldRules:
    options = descriptor_pb2.FieldOptions()
    options.ParseFromString(field.GetOptions().SerializeToString())
    return options.Extensions[validate_pb2.field]


def _unbounded(message: Descriptor, seen: set[str]) -> Iterator[str]:
    if message.full_name in seen:
        return
    seen.add(message.full_name)
    for field in message.fields:
        rules = _rules(field)
        where = f"{message.full_name}.{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if not rules.map.HasField("max_pairs"):
                yield f"{where}: map without max_pairs"
            continue
        if field.is_repeated:
            if not rules.repeated.HasField("max_items"):
                yield f"{where}: repeated without max_items"
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name.startswith("mlplane."):
                yield from _unbounded(field.message_type, seen)
            continue
        kind, names = _BOUNDED[field.type]
        typed = getattr(rules, kind)
        if not any(typed.HasField(name) for name in names):
            yield f"{where}: {kind} without any of {names}"


def test_every_request_field_is_bounded() -> None:
    seen: set[str] = set()
    problems = [p for message in _request_messages() for p in _unbounded(message, seen)]
    assert problems == []
    assert "mlplane.v1.UploadModelMetadata" in seen  # nested messages are covered too


def test_shared_text_rules_are_registered() -> None:
    # The predefined rules live in field_rules.proto; the web app needs the same file.
    assert set(field_rules_pb2.DESCRIPTOR.extensions_by_name) >= {
        "multiline_text",
        "single_line_text",
        "not_blank",
    }
