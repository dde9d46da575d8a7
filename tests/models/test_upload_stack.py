"""Model upload and reads through the real stack (Envoy → ModelRegistry →
PostgreSQL + the folder store). After every refusal the test checks that no
row and no file were left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import httpx
import pytest
from mlplane.v1 import model_registry_pb2 as pb
from mlplane.v1 import model_registry_pb2_grpc as pb_grpc

from tests.admin_sql import admin_rows
from tests.models.onnx_models import broken_model, linear_model, old_opset_model
from tests.polling import poll_until
from tests.stack_runner import RunningStack

LIMIT = 8 * 1024 * 1024  # the session stack's MLPLANE_MAX_MODEL_BYTES


@pytest.fixture(scope="module")
def stub(stack: RunningStack) -> Iterator[pb_grpc.ModelRegistryStub]:
    with grpc.insecure_channel(stack.gateway_target) as channel:
        yield pb_grpc.ModelRegistryStub(channel)


def _name() -> str:
    return f"model-{uuid.uuid4().hex[:10]}"


def _requests(
    metadata: pb.UploadModelMetadata, data: bytes, chunk: int = 64 * 1024
) -> Iterator[pb.UploadModelRequest]:
    yield pb.UploadModelRequest(metadata=metadata)
    for start in range(0, len(data), chunk):
        yield pb.UploadModelRequest(chunk=data[start : start + chunk])


def _form(name: str, data: bytes, **fields: str) -> tuple[dict[str, str], dict[str, Any]]:
    return {"name": name, **fields}, {"file": ("model.onnx", data, "application/octet-stream")}


def _versions_named(stack: RunningStack, name: str) -> list[asyncpg.Record]:
    return admin_rows(
        stack,
        "SELECT v.* FROM model_versions v JOIN models m USING (model_id) WHERE m.name = $1",
        name,
    )


def _models_named(stack: RunningStack, name: str) -> int:
    return len(admin_rows(stack, "SELECT 1 FROM models WHERE name = $1", name))


def _store_files(stack: RunningStack) -> set[str]:
    root = stack.state_dir / "objects"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _assert_nothing_stored(stack: RunningStack, name: str, files_before: set[str]) -> None:
    assert _models_named(stack, name) == 0
    assert _versions_named(stack, name) == []
    assert _store_files(stack) == files_before, "an object or temporary file was left behind"


# --- the happy paths ---------------------------------------------------------------
def test_grpc_upload_creates_pending_version_and_reads_back(
    stack: RunningStack, stub: pb_grpc.ModelRegistryStub
) -> None:
    name, data = _name(), linear_model(16)
    metadata = pb.UploadModelMetadata(
        name=name,
        description="first try",
        labels={"team": "rotating-equipment"},
        metrics={"auc": 0.91},
        sha256=hashlib.sha256(data).hexdigest(),
    )
    version = stub.UploadModel(
        _requests(metadata, data, chunk=100), metadata=stack.tokens.metadata()
    )
    assert version.status == pb.ModelVersion.PENDING_APPROVAL
    assert (version.name, version.version) == (name, 1)
    assert version.sha256 == hashlib.sha256(data).hexdigest()
    assert version.size_bytes == len(data)
    assert version.created_by == "alice"
    assert [i.name for i in version.signature.inputs] == ["X"]
    assert version.signature.inputs[0].shape[0].param == "batch"
    assert version.signature.inputs[0].shape[1].size == 16
    assert version.signature.outputs[0].element_type == "FLOAT"
    assert version.signature.producer_name == "mlplane-tests"
    assert version.signature.opset_imports[0].version == 17
    assert version.status_history[0].to_status == pb.ModelVersion.PENDING_APPROVAL
    assert version.metrics["auc"] == pytest.approx(0.91)

    again = stub.UploadModel(
        _requests(
            pb.UploadModelMetadata(name=name, description="second"), linear_model(16, seed=1)
        ),
        metadata=stack.tokens.metadata(),
    )
    assert again.version == 2
    assert again.model_id == version.model_id

    model = stub.GetModel(
        pb.GetModelRequest(model_id=version.model_id), metadata=stack.tokens.metadata()
    )
    assert (model.name, model.latest_version, model.description) == (name, 2, "second")
    listed = stub.ListModelVersions(
        pb.ListModelVersionsRequest(model_id=version.model_id), metadata=stack.tokens.metadata()
    )
    assert [v.version for v in listed.model_versions] == [2, 1]
    key = f"demo/{version.model_id}/1.onnx"
    assert (stack.state_dir / "objects" / key).read_bytes() == data


def test_rest_multipart_upload_is_201_with_the_version(
    stack: RunningStack, http: httpx.Client
) -> None:
    name, data = _name(), linear_model(32)
    fields, files = _form(
        name,
        data,
        description="from the browser",
        labels=json.dumps({"site": "plant-7"}),
        metrics=json.dumps({"f1": 0.8}),
    )
    response = http.post("/api/v1/models", data=fields, files=files, headers=stack.tokens.headers())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name
    assert body["version"] == "1"  # int64 is a string in proto3 JSON
    assert body["status"] == "PENDING_APPROVAL"
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["sizeBytes"] == str(len(data))
    assert body["createdBy"] == "alice"
    assert body["signature"]["inputs"][0]["name"] == "X"
    assert body["labels"] == {"site": "plant-7"}
    assert "createTime" in body
    assert "x-http-status" not in response.headers

    download = http.get(
        f"/api/v1/models/{body['modelId']}/versions/1/content", headers=stack.tokens.headers()
    )
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(download.content).hexdigest() == body["sha256"]


def test_list_models_pages_and_filters(stack: RunningStack, http: httpx.Client) -> None:
    prefix = f"paged-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        fields, files = _form(name, linear_model(4))
        assert (
            http.post(
                "/api/v1/models", data=fields, files=files, headers=stack.tokens.headers()
            ).status_code
            == 201
        )
    seen: list[str] = []
    token = ""
    for _ in range(20):
        page = http.get(
            "/api/v1/models",
            params={"pageSize": 2, "pageToken": token, "filter": "status = PENDING_APPROVAL"},
            headers=stack.tokens.headers("model_approver"),
        ).json()
        seen += [m["name"] for m in page.get("models", [])]
        token = page.get("nextPageToken", "")
        if not token:
            break
    assert [n for n in seen if n.startswith(prefix)] == names
    one = http.get(
        "/api/v1/models", params={"filter": f'name = "{names[3]}"'}, headers=stack.tokens.headers()
    ).json()
    assert [m["name"] for m in one["models"]] == [names[3]]
    bad = http.get(
        "/api/v1/models", params={"filter": "name ~ 'x'"}, headers=stack.tokens.headers()
    )
    assert bad.status_code == 400


def test_concurrent_uploads_of_one_name_get_distinct_versions(
    stack: RunningStack,
) -> None:
    name = _name()
    results: list[int] = []
    errors: list[BaseException] = []

    def upload(seed: int) -> None:
        try:
            with grpc.insecure_channel(stack.gateway_target) as channel:
                version = pb_grpc.ModelRegistryStub(channel).UploadModel(
                    _requests(
                        pb.UploadModelMetadata(name=name), linear_model(64, seed=seed), chunk=512
                    ),
                    metadata=stack.tokens.metadata(),
                )
            results.append(version.version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert len(_versions_named(stack, name)) == 6


# --- refusals: nothing left behind ----------------------------------------------------
@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("random", "NOT_ONNX"),
        ("truncated", "NOT_ONNX"),
        ("broken", "ONNX_CHECK_FAILED"),
        ("old_opset", "ONNX_OPSET"),
        ("empty", "EMPTY_FILE"),
        ("bad_name", "INVALID_FIELD"),
        ("traversal_name", "INVALID_FIELD"),
        ("long_description", "INVALID_FIELD"),
        ("control_in_description", "INVALID_FIELD"),
        ("huge_metric", "MALFORMED_FIELD"),
        ("bad_metrics", "MALFORMED_FIELD"),
        ("sha_mismatch", "SHA256_MISMATCH"),
        ("unknown_export", "UNKNOWN_EXPORT"),
    ],
)
def test_rest_rejections_are_400_and_store_nothing(
    stack: RunningStack, http: httpx.Client, case: str, reason: str
) -> None:
    name = _name()
    good = linear_model(8)
    data = {
        "random": bytes(range(256)) * 40,
        "truncated": good[: len(good) // 2],
        "broken": broken_model(),
        "old_opset": old_opset_model(),
        "empty": b"",
    }.get(case, good)
    extra: dict[str, str] = {}
    if case == "bad_name":
        name = "Bad Name!"
    elif case == "traversal_name":
        name = "../../etc/passwd"
    elif case == "long_description":
        extra["description"] = "x" * 5000
    elif case == "control_in_description":
        extra["description"] = "bell\x07"
    elif case == "huge_metric":
        extra["metrics"] = '{"auc": ' + "9" * 400 + "}"
    elif case == "bad_metrics":
        extra["metrics"] = "{not json"
    elif case == "sha_mismatch":
        extra["sha256"] = "0" * 64
    elif case == "unknown_export":
        extra["trainingExportIds"] = str(uuid.uuid4())
    before = _store_files(stack)
    fields, files = _form(name, data, **extra)
    response = http.post("/api/v1/models", data=fields, files=files, headers=stack.tokens.headers())
    assert response.status_code == 400, response.text
    assert response.json()["details"][0]["reason"] == reason
    _assert_nothing_stored(stack, name, before)


def test_too_large_is_413_and_stores_nothing(stack: RunningStack, http: httpx.Client) -> None:
    name = _name()
    before = _store_files(stack)
    fields, files = _form(name, linear_model((LIMIT // 4) + 1024))
    response = http.post("/api/v1/models", data=fields, files=files, headers=stack.tokens.headers())
    assert response.status_code == 413, response.text
    assert response.json()["details"][0]["reason"] == "MODEL_TOO_LARGE"
    _assert_nothing_stored(stack, name, before)


def test_too_large_over_grpc_is_resource_exhausted(
    stack: RunningStack, stub: pb_grpc.ModelRegistryStub
) -> None:
    name = _name()
    before = _store_files(stack)
    with pytest.raises(grpc.RpcError) as caught:
        stub.UploadModel(
            _requests(pb.UploadModelMetadata(name=name), linear_model(LIMIT // 4 + 1024), 1 << 20),
            metadata=stack.tokens.metadata(),
        )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _assert_nothing_stored(stack, name, before)


def test_file_before_fields_is_refused(stack: RunningStack, http: httpx.Client) -> None:
    boundary = "xyzBOUNDARYxyz"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + linear_model(4)
        + (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nlate\r\n'
            f"--{boundary}--\r\n"
        ).encode()
    )
    response = http.post(
        "/api/v1/models",
        content=body,
        headers={
            **stack.tokens.headers(),
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    assert response.status_code == 400
    error = response.json()
    assert error["details"][0]["reason"] == "FILE_BEFORE_FIELDS"
    assert error["message"].startswith(
        "the form's file field came before its name field: send the text fields"
    )


def test_rest_field_violations_name_the_form_fields(
    stack: RunningStack, http: httpx.Client
) -> None:
    fields, files = _form("Bad Name", linear_model(4), trainingExportIds="not-an-id")
    response = http.post("/api/v1/models", data=fields, files=files, headers=stack.tokens.headers())
    assert response.status_code == 400
    error = response.json()
    info, bad_request = error["details"]
    assert (info["reason"], info["metadata"]["field"]) == ("INVALID_FIELD", "name")
    assert [v["field"] for v in bad_request["fieldViolations"]] == ["name", "trainingExportIds[0]"]
    assert error["message"].startswith("name must be lower-case letters, digits")


def test_not_multipart_is_400(stack: RunningStack, http: httpx.Client) -> None:
    response = http.post("/api/v1/models", json={"name": "x"}, headers=stack.tokens.headers())
    assert response.status_code == 400
    assert response.json()["details"][0]["reason"] == "NOT_MULTIPART"


def test_client_gone_mid_upload_leaves_nothing(stack: RunningStack) -> None:
    # Through Envoy: the client stalls once the service has started writing the
    # file, then goes away; Envoy resets the stream and the service cleans up.
    name = _name()
    before = _store_files(stack)
    incoming = stack.state_dir / "objects" / ".incoming"
    hang = threading.Event()
    data = linear_model(2_000_000)  # ~8 MB: the service writes it in 4 MiB blocks

    def requests() -> Iterator[pb.UploadModelRequest]:
        yield pb.UploadModelRequest(metadata=pb.UploadModelMetadata(name=name))
        for start in range(0, 5 * 1024 * 1024, 1024 * 1024):
            yield pb.UploadModelRequest(chunk=data[start : start + 1024 * 1024])
        hang.wait(60)  # released in finally, after the call is cancelled

    def writing() -> bool:
        return any(size >= 4 * 1024 * 1024 for size in _sizes(incoming))

    try:
        with grpc.insecure_channel(stack.gateway_target) as channel:
            future = pb_grpc.ModelRegistryStub(channel).UploadModel.future(
                requests(), metadata=stack.tokens.metadata()
            )
            poll_until(writing, "the service writes the upload's first block")
            future.cancel()
        poll_until(lambda: _store_files(stack) == before, "the temporary file is removed")
    finally:
        hang.set()
    _assert_nothing_stored(stack, name, before)


def _sizes(folder: Path) -> list[int]:
    sizes = []
    for path in folder.glob("*") if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):  # removed since it was listed
            sizes.append(path.stat().st_size)
    return sizes


# --- tenants --------------------------------------------------------------------------
def test_other_tenant_gets_404_everywhere(stack: RunningStack, http: httpx.Client) -> None:
    fields, files = _form(_name(), linear_model(4))
    created = http.post(
        "/api/v1/models", data=fields, files=files, headers=stack.tokens.headers()
    ).json()
    model_id = created["modelId"]
    other = stack.tokens.headers(tenant="other-plant")
    for path in (
        f"/api/v1/models/{model_id}",
        f"/api/v1/models/{model_id}/versions",
        f"/api/v1/models/{model_id}/versions/1",
        f"/api/v1/models/{model_id}/versions/1/content",
    ):
        assert http.get(path, headers=other).status_code == 404, path
        assert http.get(path, headers=stack.tokens.headers()).status_code == 200, path
    names = [m["name"] for m in http.get("/api/v1/models", headers=other).json().get("models", [])]
    assert created["name"] not in names


def test_unknown_ids(stack: RunningStack, http: httpx.Client) -> None:
    assert (
        http.get(f"/api/v1/models/{uuid.uuid4()}", headers=stack.tokens.headers()).status_code
        == 404
    )
    assert http.get("/api/v1/models/not-a-uuid", headers=stack.tokens.headers()).status_code == 400
    assert (
        http.get("/api/v1/models/x' OR '1'='1", headers=stack.tokens.headers()).status_code == 400
    )


def test_uploads_and_rejections_are_audited(stack: RunningStack, http: httpx.Client) -> None:
    name = _name()
    request_ok, request_bad = f"ok-{uuid.uuid4().hex}", f"bad-{uuid.uuid4().hex}"
    fields, files = _form(name, linear_model(4))
    ok = http.post(
        "/api/v1/models",
        data=fields,
        files=files,
        headers={**stack.tokens.headers(), "x-request-id": request_ok},
    )
    assert ok.status_code == 201
    fields, files = _form(name, b"not onnx at all")
    bad = http.post(
        "/api/v1/models",
        data=fields,
        files=files,
        headers={**stack.tokens.headers(), "x-request-id": request_bad},
    )
    assert bad.status_code == 400
    rows = admin_rows(
        stack,
        "SELECT request_id, action, outcome, subject FROM audit_log"
        " WHERE request_id = ANY($1::text[]) ORDER BY audit_pk",
        [request_ok, request_bad],
    )
    assert [(r["request_id"], r["action"], r["outcome"], r["subject"]) for r in rows] == [
        (request_ok, "model.upload", "ok", "alice"),
        (request_bad, "model.upload", "NOT_ONNX", "alice"),
    ]
