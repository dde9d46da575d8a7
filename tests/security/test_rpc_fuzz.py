"""Property (issue #14): whatever bytes a gRPC client sends to any RPC, through the gateway,
the answer is OK or a status that names the problem, never INTERNAL, UNKNOWN or DATA_LOSS;
a refusal stores nothing (no registry row, no object); the stack stays healthy.

Requests come from the proto descriptors (tests/security/rpc_fuzz.py). The bounded run here
takes MLPLANE_FUZZ_EXAMPLES (default 12) requests per RPC; `make fuzz` runs many more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.settings import ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER
from tests.models.onnx_models import linear_model
from tests.security.harness import StateWatch, all_rpcs, grpc_path, method_descriptor
from tests.security.rpc_fuzz import request_bytes
from tests.stack_runner import RunningStack

EXAMPLES = int(os.environ.get("MLPLANE_FUZZ_EXAMPLES", "12"))
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
STREAM_REPLIES_READ = 3


@dataclass
class Fuzz:
    stack: RunningStack
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]
    known: dict[str, list[str]]
    watch: StateWatch


@pytest.fixture(scope="module")
def fuzz(stack: RunningStack) -> Iterator[Fuzz]:
    token = stack.tokens.valid(ROLE_DATA_SCIENTIST, ROLE_MODEL_APPROVER, subject="fuzzer")
    headers = {"Authorization": f"Bearer {token}"}
    # Real ids for the generator to pick now and then, so that requests reach past "not found".
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        created = http.post(
            "/api/v1/models",
            data={"name": "fuzz-target"},
            files={"file": ("m.onnx", linear_model(4, seed=9), "application/octet-stream")},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        version = created.json()
    known = {
        "model_id": [version["modelId"]],
        "name": ["fuzz-target"],
        "asset_id": ["pump-001", "turbine-001"],
        "version": [version["version"]],
        "start_time": ["2026-12-01T00:00:00Z"],
        "end_time": ["2026-12-01T01:00:00Z"],
    }
    channel = grpc.insecure_channel(stack.gateway_target, options=[("grpc.enable_http_proxy", 0)])
    watch = StateWatch(stack)
    try:
        yield Fuzz(stack, channel, (("authorization", f"Bearer {token}"),), known, watch)
    finally:
        watch.close()
        channel.close()


def _call(fuzz: Fuzz, rpc: str, requests: list[bytes]) -> tuple[grpc.StatusCode, str]:
    method = method_descriptor(rpc)
    identity = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    try:
        if method.client_streaming:
            call = fuzz.channel.stream_unary(grpc_path(rpc), **identity)
            call(iter(requests), metadata=fuzz.metadata, timeout=30)
        elif method.server_streaming:
            stream = fuzz.channel.unary_stream(grpc_path(rpc), **identity)
            replies = stream(requests[0], metadata=fuzz.metadata, timeout=30)
            for read, _ in enumerate(replies, start=1):
                if read >= STREAM_REPLIES_READ:
                    replies.cancel()  # a client that goes away mid-stream, too
                    return grpc.StatusCode.OK, ""
        else:
            unary = fuzz.channel.unary_unary(grpc_path(rpc), **identity)
            unary(requests[0], metadata=fuzz.metadata, timeout=30)
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.CANCELLED:
            return grpc.StatusCode.OK, ""
        return code, str(error.details())
    return grpc.StatusCode.OK, ""


# Refusals may be audited; nothing else may change.
_AUDIT_ONLY = {"audit_log", "exports"}


@pytest.mark.parametrize("rpc", all_rpcs())
def test_any_request_gets_a_named_answer_and_a_refusal_stores_nothing(fuzz: Fuzz, rpc: str) -> None:
    method = method_descriptor(rpc)
    one = request_bytes(method.input_type, fuzz.known)
    requests = (
        st.lists(one, min_size=1, max_size=3) if method.client_streaming else one.map(lambda b: [b])
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests)
    def check(sent: list[bytes]) -> None:
        answers: list[tuple[grpc.StatusCode, str]] = []
        changes = fuzz.watch.unchanged(lambda: answers.append(_call(fuzz, rpc, sent)))
        code, details = answers[0]
        assert code not in BROKEN, f"{rpc} answered {code.name}: {details[:500]!r} to {sent!r:.600}"
        if code != grpc.StatusCode.OK:
            assert details, f"{rpc} refused with {code.name} and no message"
            kept = [c for c in changes if c.split(":", 1)[0] not in _AUDIT_ONLY]
            kept = [c for c in kept if not c.startswith("new audit rows")]
            assert kept == [], f"{rpc} refused ({code.name}: {details[:200]}) but changed {kept}"

    check()
    health = httpx.get(f"{fuzz.stack.gateway_url}/healthz", timeout=10)
    assert health.status_code == 200


# --- the browser's multipart upload, as raw bytes ---------------------------------------------

_FIELD_NAMES = st.sampled_from(
    [
        "name",
        "description",
        "labels",
        "metrics",
        "lineage",
        "file",
        "evaluationSet",
        "evaluationLabelColumn",
        "",
        "x" * 300,
        "na\u00efme",
    ]
)
_VALUES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"",
            b"\xff\xfe",
            b"{}",
            b'{"auc": 1e999}',
            b'{"auc": ' + b"9" * 400 + b"}",
            b"\x00",
            b"PAR1" + b"\x00" * 8 + b"PAR1",  # Parquet's magic around nothing
        ]
    ),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@st.composite
def _multipart(draw: st.DrawFn) -> tuple[bytes, str]:
    """A multipart body that is well formed or broken in one of the ways clients break them."""
    boundary = draw(st.sampled_from(["b0undary", "x" * 70, "a b", "----WebKit\u00e9"]))
    declared = draw(st.sampled_from([boundary, boundary, "other", ""]))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(_FIELD_NAMES)
        extra = b"".join(
            b"X-Extra-%d: %s\r\n" % (i, draw(st.binary(max_size=20)).replace(b"\r", b""))
            for i in range(draw(st.sampled_from([0, 0, 1, 200])))
        )
        filename = b'; filename="m.onnx"' if name in ("file", "evaluationSet") else b""
        head = b'Content-Disposition: form-data; name="%s"%s\r\n' % (name.encode(), filename)
        parts.append(head + extra + b"\r\n" + draw(_VALUES))
    delimiter = b"--" + boundary.encode("utf-8", "replace")
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts)
    body += draw(st.sampled_from([delimiter + b"--\r\n", b"", delimiter, b"--garbage"]))
    return body, f"multipart/form-data; boundary={declared}"


@settings(
    max_examples=EXAMPLES * 4,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(upload=_multipart())
def test_any_multipart_upload_gets_a_4xx_or_201_and_a_refusal_stores_nothing(
    fuzz: Fuzz, upload: tuple[bytes, str]
) -> None:
    body, content_type = upload
    # Bytes: a boundary may hold what is not ASCII, as a careless client sends it.
    headers = [
        (b"authorization", dict(fuzz.metadata)["authorization"].encode()),
        (b"content-type", content_type.encode("utf-8")),
    ]
    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(
            httpx.post(
                f"{fuzz.stack.gateway_url}/api/v1/models", content=body, headers=headers, timeout=30
            )
        )

    changes = fuzz.watch.unchanged(post)
    answer = answers[0]
    assert answer.status_code < 500, f"{answer.status_code} {answer.text[:500]} for {upload!r:.800}"
    if answer.status_code >= 400:
        reason = (answer.json().get("details") or [{}])[0].get("reason")
        assert reason, answer.text
        kept = [c for c in changes if c.split(":", 1)[0] not in _AUDIT_ONLY]
        kept = [c for c in kept if not c.startswith("new audit rows")]
        assert kept == [], f"refused ({answer.status_code} {reason}) but changed {kept}"
