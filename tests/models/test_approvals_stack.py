"""The approval workflow through Envoy's REST surface, with its state, its
separation of duties, its events and its audit trail checked in the database."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.admin_sql import admin_rows
from tests.models.onnx_models import linear_model
from tests.polling import validated
from tests.stack_runner import RunningStack


def _alice(stack: RunningStack) -> dict[str, str]:
    return stack.tokens.headers("data_scientist", "model_approver", subject="alice")


def _bob(stack: RunningStack) -> dict[str, str]:
    return stack.tokens.headers("model_approver", subject="bob")


def _upload(stack: RunningStack, http: httpx.Client) -> dict[str, Any]:
    response = http.post(
        "/api/v1/models",
        data={"name": f"appr-{uuid.uuid4().hex[:8]}"},
        files={"file": ("m.onnx", linear_model(4))},
        headers=_alice(stack),
    )
    assert response.status_code == 201, response.text
    version = dict(response.json())
    # Approval needs a passed validation: wait for the stack's worker (and keep the order
    # of events and audit entries the same in every run).
    assert validated(http, _alice(stack), version["modelId"])["state"] == "PASSED"
    return version


def test_submit_review_approve(stack: RunningStack, http: httpx.Client) -> None:
    version = _upload(stack, http)
    model_id = version["modelId"]
    submitted = http.post(
        f"/api/v1/models/{model_id}/approvals",
        json={"comment": "AUC 0.91 on held-out pump"},
        headers=_alice(stack),
    )
    assert submitted.status_code == 202, submitted.text
    assert not [h for h in submitted.headers if h.lower().startswith("grpc-")]
    approval = submitted.json()
    assert approval["state"] == "OPEN"
    assert approval["version"] == "1"
    assert approval["submittedBy"] == "alice"
    assert approval["sha256"] == version["sha256"]
    assert approval["modelVersion"]["status"] == "IN_REVIEW"

    again = http.post(f"/api/v1/models/{model_id}/approvals", json={}, headers=_alice(stack))
    assert again.status_code == 409
    assert "IN_REVIEW" in again.json()["message"]

    queue = http.get("/api/v1/approvals", params={"state": "OPEN"}, headers=_bob(stack)).json()
    lower_case = http.get("/api/v1/approvals", params={"state": "open"}, headers=_bob(stack))
    assert [a["approvalId"] for a in lower_case.json()["approvals"]] == [
        a["approvalId"] for a in queue["approvals"]
    ]
    assert {a["state"] for a in queue["approvals"]} == {"OPEN"}
    decided = http.get("/api/v1/approvals", params={"state": "APPROVED"}, headers=_bob(stack))
    assert approval["approvalId"] not in {a["approvalId"] for a in decided.json()["approvals"]}
    bad_state = http.get("/api/v1/approvals", params={"state": "SHIPPED"}, headers=_bob(stack))
    assert bad_state.status_code == 400
    assert bad_state.json()["details"][0]["reason"] == "INVALID_REQUEST"
    mine = [a for a in queue["approvals"] if a["approvalId"] == approval["approvalId"]]
    assert mine
    assert mine[0]["modelName"] == version["name"]
    assert mine[0]["modelVersion"]["signature"]["inputs"][0]["name"] == "X"

    own = http.post(
        f"/api/v1/approvals/{approval['approvalId']}:approve", json={}, headers=_alice(stack)
    )
    assert own.status_code == 403
    assert own.json()["details"][0]["reason"] == "SEPARATION_OF_DUTIES"

    no_reason = http.post(
        f"/api/v1/approvals/{approval['approvalId']}:reject", json={}, headers=_bob(stack)
    )
    assert no_reason.status_code == 400

    decided = http.post(
        f"/api/v1/approvals/{approval['approvalId']}:approve",
        json={"comment": "looks good"},
        headers=_bob(stack),
    )
    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["state"], body["decidedBy"]) == ("APPROVED", "bob")
    assert body["sha256"] == version["sha256"]
    twice = http.post(
        f"/api/v1/approvals/{approval['approvalId']}:reject",
        json={"comment": "changed my mind"},
        headers=_bob(stack),
    )
    assert twice.status_code == 409

    final = http.get(f"/api/v1/models/{model_id}/versions/1", headers=_bob(stack)).json()
    assert final["status"] == "APPROVED"
    assert [h.get("toStatus") for h in final["statusHistory"]] == [
        "PENDING_APPROVAL",
        "IN_REVIEW",
        "APPROVED",
    ]
    events = admin_rows(
        stack,
        "SELECT event_type, payload->>'decision' AS decision FROM outbox_events"
        " WHERE model_id = $1::uuid ORDER BY event_pk",
        model_id,
    )
    assert [(e["event_type"], e["decision"]) for e in events] == [
        ("validation.completed", None),
        ("approval.requested", None),
        ("approval.decided", "APPROVED"),
    ]
    audit = admin_rows(
        stack,
        "SELECT subject, action, outcome FROM audit_log WHERE resource = $1 ORDER BY audit_pk",
        f"approval/{approval['approvalId']}",
    )
    assert [(a["subject"], a["outcome"]) for a in audit] == [
        ("alice", "ok"),
        ("alice", "SEPARATION_OF_DUTIES"),
        ("bob", "approved"),
        ("bob", "ALREADY_DECIDED"),
    ]


def test_concurrent_submits_one_wins(stack: RunningStack, http: httpx.Client) -> None:
    model_id = _upload(stack, http)["modelId"]
    codes: list[int] = []

    def submit() -> None:
        with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
            codes.append(
                client.post(
                    f"/api/v1/models/{model_id}/approvals", json={}, headers=_alice(stack)
                ).status_code
            )

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [202, 409, 409, 409]


def test_archive_and_not_found(stack: RunningStack, http: httpx.Client) -> None:
    model_id = _upload(stack, http)["modelId"]
    archived = http.post(
        f"/api/v1/models/{model_id}/versions/1:archive",
        json={"comment": "superseded"},
        headers=_bob(stack),
    )
    assert archived.status_code == 200, archived.text
    assert archived.json()["status"] == "ARCHIVED"
    refused = http.post(f"/api/v1/models/{model_id}/approvals", json={}, headers=_alice(stack))
    assert refused.status_code == 409
    assert "ARCHIVED" in refused.json()["message"]
    other = stack.tokens.headers("data_scientist", subject="eve", tenant="elsewhere")
    assert (
        http.post(f"/api/v1/models/{model_id}/approvals", json={}, headers=other).status_code == 404
    )
    unknown = f"/api/v1/models/{uuid.uuid4()}/approvals"
    assert http.post(unknown, json={}, headers=_alice(stack)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"comment": "x" * 4097}, "comment"),
        ({"comment": "bell\u0007"}, "comment"),
        ({"version": str(2**31)}, "version"),
        ({"version": "99999999999999999999"}, None),  # not an int64: the transcoder's 400
    ],
)
def test_submissions_that_break_a_field_rule_store_nothing(
    stack: RunningStack, http: httpx.Client, body: dict[str, str], field: str | None
) -> None:
    """A comment too long to list back, control characters, a version beyond int32: each a
    400 naming the field, and no request, history or outbox row appears."""
    version = _upload(stack, http)
    model_id = version["modelId"]
    response = http.post(f"/api/v1/models/{model_id}/approvals", json=body, headers=_alice(stack))
    assert response.status_code == 400, response.text
    if field is not None:
        assert response.json()["details"][0]["metadata"]["field"] == field
    rows = admin_rows(
        stack, "SELECT 1 FROM approval_requests WHERE model_id = $1", uuid.UUID(model_id)
    )
    assert rows == []
    events = admin_rows(
        stack,
        "SELECT 1 FROM outbox_events WHERE model_id = $1 AND event_type <> 'validation.completed'",
        uuid.UUID(model_id),
    )
    assert events == []


def test_a_versions_audit_trail_is_listed_newest_first(
    stack: RunningStack, http: httpx.Client
) -> None:
    version = _upload(stack, http)
    model_id = version["modelId"]
    submitted = http.post(
        f"/api/v1/models/{model_id}/approvals", json={"comment": "ok?"}, headers=_alice(stack)
    ).json()
    own = http.post(
        f"/api/v1/approvals/{submitted['approvalId']}:approve", json={}, headers=_alice(stack)
    )
    assert own.status_code == 403  # refused, and audited
    approved = http.post(
        f"/api/v1/approvals/{submitted['approvalId']}:approve", json={}, headers=_bob(stack)
    )
    assert approved.status_code == 200
    trail = http.get(
        f"/api/v1/models/{model_id}/versions/1/auditEntries", headers=_bob(stack)
    ).json()
    seen = [(e["action"], e["actor"], e["outcome"]) for e in trail["auditEntries"]]
    assert seen == [
        ("approval.approve", "bob", "approved"),
        ("approval.approve", "alice", "SEPARATION_OF_DUTIES"),
        ("approval.submit", "alice", "ok"),
        ("validation.complete", "mlplane-validation-worker", "PASSED"),
        ("model.upload", "alice", "ok"),
    ]
    first = trail["auditEntries"][-1]
    assert json.loads(first["detail"])["sha256"] == version["sha256"]
    paged = http.get(
        f"/api/v1/models/{model_id}/versions/1/auditEntries",
        params={"pageSize": 3},
        headers=_bob(stack),
    ).json()
    assert len(paged["auditEntries"]) == 3
    rest = http.get(
        f"/api/v1/models/{model_id}/versions/1/auditEntries",
        params={"pageSize": 3, "pageToken": paged["nextPageToken"]},
        headers=_bob(stack),
    ).json()
    assert [e["action"] for e in rest["auditEntries"]] == ["validation.complete", "model.upload"]
    other = stack.tokens.headers("model_approver", subject="eve", tenant="other-plant")
    hidden = http.get(f"/api/v1/models/{model_id}/versions/1/auditEntries", headers=other)
    assert hidden.status_code == 404


def test_models_can_be_searched_by_part_of_their_name(
    stack: RunningStack, http: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"search-{tag}-pump-risk", f"search-{tag}-turbine", f"other-{tag}-pump"]
    for name in names:
        response = http.post(
            "/api/v1/models",
            data={"name": name},
            files={"file": ("m.onnx", linear_model(4))},
            headers=_alice(stack),
        )
        assert response.status_code == 201, response.text
    found = http.get(
        "/api/v1/models", params={"filter": f'name:"{tag}-PUMP"'}, headers=_alice(stack)
    ).json()
    assert sorted(m["name"] for m in found["models"]) == [names[2], names[0]]
    both = http.get(
        "/api/v1/models",
        params={"filter": f'name:"search-{tag}" AND status = PENDING_APPROVAL'},
        headers=_alice(stack),
    ).json()
    assert sorted(m["name"] for m in both["models"]) == sorted(names[:2])
    wild = http.get("/api/v1/models", params={"filter": 'name:"%_"'}, headers=_alice(stack))
    assert wild.status_code == 200
    assert wild.json()["models"] == []  # no LIKE wildcards: '%' and '_' are just characters


def test_a_model_download_link_streams_the_file_without_a_token(
    stack: RunningStack, http: httpx.Client
) -> None:
    version = _upload(stack, http)
    model_id = version["modelId"]
    made = http.post(
        f"/api/v1/models/{model_id}/versions/1:downloadLink", json={}, headers=_bob(stack)
    )
    assert made.status_code == 200, made.text
    url = made.json()["url"]
    assert url.startswith(f"/api/v1/models/{model_id}/versions/1/download?link=")
    for _ in range(2):  # a read: the link works while it lasts
        download = http.get(url)  # no Authorization header
        assert download.status_code == 200, download.text
        assert hashlib.sha256(download.content).hexdigest() == version["sha256"]
        assert download.headers["content-disposition"].startswith("attachment;")
    other_version = url.replace("/versions/1/", "/versions/2/")
    assert http.get(other_version).status_code == 401
    body, mac = url.split("?link=")[1].split(".")
    forged = url.split("?link=")[0] + f"?link={body}.{mac[::-1]}"
    assert http.get(forged).json()["details"][0]["reason"] == "LINK_INVALID"
    stranger = stack.tokens.headers("model_approver", subject="eve", tenant="other-plant")
    hidden = http.post(
        f"/api/v1/models/{model_id}/versions/1:downloadLink", json={}, headers=stranger
    )
    assert hidden.status_code == 404
