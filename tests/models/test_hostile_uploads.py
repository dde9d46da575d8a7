"""Hostile input to the model registry, through the real stack (Envoy → ModelRegistry →
PostgreSQL + the folder store), on REST and on gRPC (issue #14): every refusal is a 4xx with
its ErrorInfo reason, and leaves no row, no object and no temporary file behind; rejected
uploads burn no version number; names reach headers safely; an approver who uploaded a
version cannot archive it while it is in review."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from tests.admin_sql import admin_rows
from tests.models.onnx_models import linear_model
from tests.stack_runner import RunningStack

UPLOAD = "/mlplane.v1.ModelRegistry/UploadModel"


@pytest.fixture(scope="module")
def channel(stack: RunningStack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.gateway_target) as opened:
        yield opened


def _name() -> str:
    return f"hostile-{uuid.uuid4().hex[:10]}"


def _store_files(stack: RunningStack) -> set[str]:
    root = stack.state_dir / "objects"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _assert_nothing_stored(stack: RunningStack, name: str, files_before: set[str]) -> None:
    assert admin_rows(stack, "SELECT 1 FROM models WHERE name = $1", name) == []
    assert admin_rows(stack, "SELECT 1 FROM model_versions v JOIN models m USING (model_id)"
                " WHERE m.name = $1", name) == []  # fmt: skip
    assert _store_files(stack) == files_before, "an object or temporary file was left behind"


def _rest_reason(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    info = next(d for d in body["details"] if d["@type"].endswith("ErrorInfo"))
    return {"reason": info["reason"], "metadata": info.get("metadata", {}), "body": body}


def _field_violations(body: dict[str, Any]) -> list[str]:
    return [
        v["field"]
        for d in body["details"]
        if d["@type"].endswith("BadRequest")
        for v in d["fieldViolations"]
    ]


def _grpc_reason(error: grpc.RpcError) -> tuple[grpc.StatusCode, str, list[str]]:
    assert isinstance(error, grpc.Call)
    status = rpc_status.from_call(error)
    reason, fields = "", []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = [v.field for v in bad.field_violations]
    return error.code(), reason, fields


def _part(name: str, value: bytes, extra_headers: bytes = b"") -> bytes:
    return (
        b'Content-Disposition: form-data; name="' + name.encode() + b'"\r\n' + extra_headers
        + b"\r\n" + value
    )  # fmt: skip


def _multipart(parts: list[bytes], boundary: bytes = b"b0und4ry") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
    return body + b"--" + boundary + b"--\r\n"


def _file_part(data: bytes) -> bytes:
    return (
        b'Content-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + data
    )


def _post_raw(
    stack: RunningStack, http: httpx.Client, body: bytes, boundary: str = "b0und4ry"
) -> httpx.Response:
    return http.post(
        "/api/v1/models",
        content=body,
        headers={
            **stack.tokens.headers(),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )


# --- REST: malformed forms ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("metrics", "reason"),
    [
        ('{"auc": ' + "9" * 400 + "}", "MALFORMED_FIELD"),
        ('{"auc": -' + "1" * 5000 + "}", "MALFORMED_FIELD"),
        ('{"auc": 1e999}', "INVALID_FIELD"),
        ('{"auc": -1e999}', "INVALID_FIELD"),
        ('{"auc": NaN}', "INVALID_FIELD"),
        ('{"auc": Infinity}', "INVALID_FIELD"),
        ('{"auc": 1.' + "7" * 600 + "}", None),  # a long but finite float is fine
    ],
)
def test_rest_hostile_metrics(
    stack: RunningStack, http: httpx.Client, metrics: str, reason: str | None
) -> None:
    name, before = _name(), _store_files(stack)
    response = http.post(
        "/api/v1/models",
        data={"name": name, "metrics": metrics},
        files={"file": ("m.onnx", linear_model(4))},
        headers=stack.tokens.headers(),
    )
    if reason is None:
        assert response.status_code == 201, response.text
        return
    refusal = _rest_reason(response)
    assert refusal["reason"] == reason
    assert refusal["metadata"]["field"].startswith("metrics")
    assert any(f.startswith("metrics") for f in _field_violations(refusal["body"]))
    _assert_nothing_stored(stack, name, before)


@pytest.mark.parametrize(
    "field", ["description", "labels", "metrics", "trainingExportIds", "sha256"]
)
def test_rest_invalid_utf8_in_any_text_field(
    stack: RunningStack, http: httpx.Client, field: str
) -> None:
    name, before = _name(), _store_files(stack)
    body = _multipart(
        [
            _part("name", name.encode()),
            _part(field, b"caf\xe9 \xff\xfe"),
            _file_part(linear_model(4)),
        ]
    )
    refusal = _rest_reason(_post_raw(stack, http, body))
    assert (refusal["reason"], refusal["metadata"]["field"]) == ("INVALID_UTF8", field)
    assert _field_violations(refusal["body"]) == [field]
    _assert_nothing_stored(stack, name, before)


def test_rest_invalid_utf8_in_a_part_header(stack: RunningStack, http: httpx.Client) -> None:
    name, before = _name(), _store_files(stack)
    body = _multipart(
        [
            _part("name", name.encode()),
            b'Content-Disposition: form-data; name="descr\xff\xfeiption"\r\n\r\nhello',
            _file_part(linear_model(4)),
        ]
    )
    refusal = _rest_reason(_post_raw(stack, http, body))
    assert refusal["reason"] == "MALFORMED_FORM"
    _assert_nothing_stored(stack, name, before)


def test_rest_invalid_utf8_in_the_file_name_header_is_refused(
    stack: RunningStack, http: httpx.Client
) -> None:
    name, before = _name(), _store_files(stack)
    body = _multipart(
        [
            _part("name", name.encode()),
            b'Content-Disposition: form-data; name="file"; filename="m\xff.onnx"\r\n\r\n'
            + linear_model(4),
        ]
    )
    refusal = _rest_reason(_post_raw(stack, http, body))
    assert refusal["reason"] == "MALFORMED_FORM"
    _assert_nothing_stored(stack, name, before)


def test_rest_boundary_differs_from_content_type(stack: RunningStack, http: httpx.Client) -> None:
    name, before = _name(), _store_files(stack)
    body = _multipart(
        [_part("name", name.encode()), _file_part(linear_model(4))], boundary=b"the-real-one"
    )
    refusal = _rest_reason(_post_raw(stack, http, body, boundary="a-different-one"))
    assert refusal["reason"] == "MALFORMED_FORM"
    _assert_nothing_stored(stack, name, before)


def test_rest_part_with_many_header_lines(stack: RunningStack, http: httpx.Client) -> None:
    name, before = _name(), _store_files(stack)
    many = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(200))
    body = _multipart([_part("name", name.encode(), many), _file_part(linear_model(4))])
    refusal = _rest_reason(_post_raw(stack, http, body))
    assert refusal["reason"] == "MALFORMED_FORM"
    _assert_nothing_stored(stack, name, before)


def test_rest_very_long_part_header(stack: RunningStack, http: httpx.Client) -> None:
    name, before = _name(), _store_files(stack)
    long_header = b"X-Filler: " + b"a" * (256 * 1024) + b"\r\n"
    body = _multipart([_part("name", name.encode(), long_header), _file_part(linear_model(4))])
    refusal = _rest_reason(_post_raw(stack, http, body))
    assert refusal["reason"] == "MALFORMED_FORM"
    _assert_nothing_stored(stack, name, before)


def test_rest_many_unknown_fields_are_refused_at_the_first(
    stack: RunningStack, http: httpx.Client
) -> None:
    # Refused as the first arrives, not collected until the file starts (memory stays bounded).
    name, before = _name(), _store_files(stack)
    parts = [_part("name", name.encode())]
    parts += [_part(f"extra{i}", b"x" * 1024) for i in range(2000)]
    body = _multipart([*parts, _file_part(linear_model(4))])
    refusal = _rest_reason(_post_raw(stack, http, body))
    assert (refusal["reason"], refusal["metadata"]["field"]) == ("UNKNOWN_FORM_FIELD", "extra0")
    assert _field_violations(refusal["body"]) == ["extra0"]
    _assert_nothing_stored(stack, name, before)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "line\nbreak", "INVALID_FIELD"),
        ("name", "nul\x00byte", "INVALID_FIELD"),
        ("description", "escape \x1b[31m red", "INVALID_FIELD"),
        ("description", "nul \x00 byte", "INVALID_FIELD"),
        ("labels", '{"team": "a\\nb"}', "INVALID_FIELD"),
        ("labels", '{"te\\u0000am": "x"}', "INVALID_FIELD"),
        ("metrics", '{"a\\u0007uc": 0.5}', "INVALID_FIELD"),
    ],
)
def test_rest_control_characters(
    stack: RunningStack, http: httpx.Client, field: str, value: str, reason: str
) -> None:
    name, before = _name(), _store_files(stack)
    fields = {"name": name, field: value}
    response = http.post(
        "/api/v1/models",
        data=fields,
        files={"file": ("m.onnx", linear_model(4))},
        headers=stack.tokens.headers(),
    )
    refusal = _rest_reason(response)
    assert refusal["reason"] == reason
    assert refusal["metadata"]["field"].startswith(field)
    _assert_nothing_stored(stack, name, before)
    if field == "name" and "\x00" not in value:  # PostgreSQL text cannot hold NUL at all
        assert admin_rows(stack, "SELECT 1 FROM models WHERE name = $1", value) == []


# --- gRPC: the same refusals -------------------------------------------------------------
def _grpc_upload(channel: grpc.Channel, stack: RunningStack, first: bytes, data: bytes) -> Any:
    """UploadModel with a hand-made first message (bytes a normal client would refuse)."""
    call = channel.stream_unary(
        UPLOAD,
        request_serializer=lambda raw: raw,
        response_deserializer=pb.ModelVersion.FromString,
    )

    def requests() -> Iterator[bytes]:
        yield first
        yield pb.UploadModelRequest(chunk=data).SerializeToString()

    return call(requests(), metadata=stack.tokens.metadata())


def _metadata_message(metadata: pb.UploadModelMetadata, replace: bytes, by: bytes) -> bytes:
    raw = metadata.SerializeToString()
    assert replace in raw
    assert len(replace) == len(by)
    inner = raw.replace(replace, by)
    request = pb.UploadModelRequest(metadata=pb.UploadModelMetadata())
    key = request.SerializeToString()[:1]  # field 1, length-delimited
    return key + _varint(len(inner)) + inner


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


@pytest.mark.parametrize("where", ["name", "description", "label_value"])
def test_grpc_invalid_utf8_is_invalid_argument(
    stack: RunningStack, channel: grpc.Channel, where: str
) -> None:
    name, before = _name(), _store_files(stack)
    metadata = pb.UploadModelMetadata(name=name)
    marker = "\u00ff\u00fe"  # c3 bf c3 be: swapped for ff fe ff fe, not UTF-8
    if where == "name":
        metadata.name = name + marker
    elif where == "description":
        metadata.description = marker
    else:
        metadata.labels["team"] = marker
    first = _metadata_message(metadata, marker.encode(), b"\xff\xfe\xff\xfe")
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_upload(channel, stack, first, linear_model(4))
    code, reason, _ = _grpc_reason(caught.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    # Refused for every RPC by the common interceptors (services/common/interceptors.py).
    assert reason == "MALFORMED_REQUEST"
    _assert_nothing_stored(stack, name, before)


@pytest.mark.parametrize(
    ("metrics", "name_suffix", "reason"),
    [
        ({"auc": float("nan")}, "", "INVALID_FIELD"),
        ({"auc": float("inf")}, "", "INVALID_FIELD"),
        ({"auc": float("-inf")}, "", "INVALID_FIELD"),
        ({}, "\nnext-line", "INVALID_FIELD"),
        ({}, "\r", "INVALID_FIELD"),
    ],
)
def test_grpc_hostile_fields(
    stack: RunningStack,
    channel: grpc.Channel,
    metrics: dict[str, float],
    name_suffix: str,
    reason: str,
) -> None:
    name, before = _name(), _store_files(stack)
    stub = pb_grpc.ModelRegistryStub(channel)
    metadata = pb.UploadModelMetadata(name=name + name_suffix, metrics=metrics)

    def requests() -> Iterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=metadata)
        yield pb.UploadModelRequest(chunk=linear_model(4))

    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModel(requests(), metadata=stack.tokens.metadata())
    code, got, fields = _grpc_reason(caught.value)
    assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason)
    assert fields
    assert fields[0].startswith("metadata.metrics" if metrics else "metadata.name")
    _assert_nothing_stored(stack, name, before)
    _assert_nothing_stored(stack, name + name_suffix, before)


# --- version numbers: a refusal burns none ---------------------------------------------------
def test_rejected_uploads_burn_no_version_number(
    stack: RunningStack, http: httpx.Client, channel: grpc.Channel
) -> None:
    name = _name()

    def post(data: bytes) -> httpx.Response:
        return http.post(
            "/api/v1/models",
            data={"name": name},
            files={"file": ("m.onnx", data)},
            headers=stack.tokens.headers(),
        )

    assert post(b"not an onnx model").status_code == 400
    first = post(linear_model(4))
    assert first.status_code == 201, first.text
    assert int(first.json()["version"]) == 1
    for bad in (b"nope", linear_model(4)[:50]):
        assert post(bad).status_code == 400
    with pytest.raises(grpc.RpcError):
        pb_grpc.ModelRegistryStub(channel).UploadModel(
            iter(
                [
                    pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name=name)),
                    pb.UploadModelRequest(chunk=b"garbage"),
                ]
            ),
            metadata=stack.tokens.metadata(),
        )
    second = post(linear_model(4, seed=1))
    assert second.status_code == 201, second.text
    assert int(second.json()["version"]) == 2
    model = http.get(
        f"/api/v1/models/{first.json()['modelId']}", headers=stack.tokens.headers()
    ).json()
    assert int(model["latestVersion"]) == 2
    # The object keys still follow {tenant}/{model}/{version}.onnx when uploads do not race.
    keys = admin_rows(
        stack,
        "SELECT version, storage_key FROM model_versions WHERE model_id = $1 ORDER BY version",
        uuid.UUID(first.json()["modelId"]),
    )
    assert [(r["version"], r["storage_key"].rsplit("/", 1)[1]) for r in keys] == [
        (1, "1.onnx"),
        (2, "2.onnx"),
    ]


# --- names in headers ---------------------------------------------------------------------
def test_download_sets_rfc6266_filename(stack: RunningStack, http: httpx.Client) -> None:
    name = _name()
    created = http.post(
        "/api/v1/models",
        data={"name": name},
        files={"file": ("m.onnx", linear_model(4))},
        headers=stack.tokens.headers(),
    ).json()
    path = f"/api/v1/models/{created['modelId']}/versions/1/content"
    response = http.get(path, headers=stack.tokens.headers())
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        f"attachment; filename=\"{name}-v1.onnx\"; filename*=UTF-8''{name}-v1.onnx"
    )


def test_download_of_a_stored_hostile_name_is_safe(stack: RunningStack, http: httpx.Client) -> None:
    # A row stored before the contract's name rule (or by hand): its name still reaches the
    # download's Content-Disposition, which must stay one well-formed header.
    name = _name()
    created = http.post(
        "/api/v1/models",
        data={"name": name},
        files={"file": ("m.onnx", linear_model(4))},
        headers=stack.tokens.headers(),
    ).json()
    hostile = f'{name}\r\nX-Injected: 1"; ü'
    admin_rows(stack, "UPDATE models SET name = $1 WHERE name = $2", hostile, name)
    response = http.get(
        f"/api/v1/models/{created['modelId']}/versions/1/content", headers=stack.tokens.headers()
    )
    assert response.status_code == 200, response.text
    assert "x-injected" not in response.headers
    disposition = response.headers["content-disposition"]
    assert "\r" not in disposition
    assert "\n" not in disposition
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''" in disposition
    assert "%0D%0AX-Injected%3A%201%22%3B%20%C3%BC-v1.onnx" in disposition
    admin_rows(stack, "UPDATE models SET name = $1 WHERE name = $2", name, hostile)


# --- separation of duties on archive ----------------------------------------------------
def test_uploader_cannot_archive_a_version_in_review(
    stack: RunningStack, http: httpx.Client
) -> None:
    both = stack.tokens.headers("data_scientist", "model_approver", subject="carol")
    submitter = stack.tokens.headers("data_scientist", "model_approver", subject="dave")
    other = stack.tokens.headers("model_approver", subject="erin")
    created = http.post(
        "/api/v1/models",
        data={"name": _name()},
        files={"file": ("m.onnx", linear_model(4))},
        headers=both,
    ).json()
    model_id = created["modelId"]
    submitted = http.post(
        f"/api/v1/models/{model_id}/approvals", json={"version": 1}, headers=submitter
    )
    assert submitted.status_code == 202, submitted.text
    request_id = f"archive-{uuid.uuid4().hex}"
    for who in (both, submitter):
        refused = http.post(
            f"/api/v1/models/{model_id}/versions/1:archive",
            json={"comment": "mine"},
            headers={**who, "x-request-id": request_id},
        )
        refusal = _rest_reason(refused, 403)
        assert refusal["reason"] == "SEPARATION_OF_DUTIES"
    version = http.get(f"/api/v1/models/{model_id}/versions/1", headers=other).json()
    assert version["status"] == "IN_REVIEW"
    open_tasks = admin_rows(
        stack,
        "SELECT state FROM approval_requests WHERE model_id = $1",
        uuid.UUID(model_id),
    )
    assert [r["state"] for r in open_tasks] == ["OPEN"]
    audited = admin_rows(
        stack,
        "SELECT subject, action, outcome FROM audit_log WHERE request_id = $1 ORDER BY audit_pk",
        request_id,
    )
    assert [tuple(r) for r in audited] == [
        ("carol", "model.archive", "SEPARATION_OF_DUTIES"),
        ("dave", "model.archive", "SEPARATION_OF_DUTIES"),
    ]
    # Someone else may still archive it (the review is cancelled), and the uploader may
    # archive a version that is not in review.
    archived = http.post(
        f"/api/v1/models/{model_id}/versions/1:archive", json={"comment": "gone"}, headers=other
    )
    assert archived.status_code == 200, archived.text
    again = http.post(
        "/api/v1/models",
        data={"name": created["name"]},
        files={"file": ("m.onnx", linear_model(4, seed=2))},
        headers=both,
    ).json()
    own = http.post(
        f"/api/v1/models/{model_id}/versions/{again['version']}:archive",
        json={"comment": "not in review"},
        headers=both,
    )
    assert own.status_code == 200, own.text
