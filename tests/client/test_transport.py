"""Targets, retries, deadlines and error translation: real faults, no mocks of grpc."""

from __future__ import annotations

import doctest
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

import mlplane_client
from mlplane_client import (
    Client,
    DeadlineExceeded,
    MlplaneError,
    RetryPolicy,
    Target,
    Unavailable,
    _hints,
    _record,
    _transport,
    cli,
    enums,
    errors,
    exports,
    resources,
)
from mlplane_client import client as client_module
from mlplane_client._transport import parse_target
from tests.stack_runner import RunningStack


class CountingInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
):
    """Counts the attempts that reach the channel, per method."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        self.calls[details.method.rsplit("/", 1)[-1]] += 1
        return continuation(details, request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        self.calls[details.method.rsplit("/", 1)[-1]] += 1
        return continuation(details, request)

    def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        details: grpc.ClientCallDetails,
        request_iterator: Iterator[Any],
    ) -> Any:
        self.calls[details.method.rsplit("/", 1)[-1]] += 1
        return continuation(details, request_iterator)


@pytest.fixture
def dead_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "module",
    [
        mlplane_client,
        _transport,
        _hints,
        _record,
        enums,
        resources,
        exports,
        errors,
        cli,
        client_module,
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    """Runs every doctest that does not need a stack (the rest are marked +SKIP)."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_doctests_exist_where_they_run() -> None:
    modules = (_transport, _hints, enums, resources, exports, cli)
    counts = {m.__name__: doctest.testmod(m).attempted for m in modules}
    assert all(n > 0 for n in counts.values()), counts


@pytest.mark.parametrize(
    ("url", "tls", "expected"),
    [
        ("localhost:8080", False, Target("localhost:8080", False)),
        ("localhost:8443", True, Target("localhost:8443", True)),
        ("http://gw.example:8080/", False, Target("gw.example:8080", False)),
        ("https://gw.example", False, Target("gw.example:443", True)),
        ("http://[::1]:8080", False, Target("[::1]:8080", False)),
    ],
)
def test_targets(url: str, tls: bool, expected: Target) -> None:
    assert parse_target(url, True if tls else None) == expected


@pytest.mark.parametrize("url", ["localhost", "ftp://x:1", "http://", ":80", "host:port"])
def test_bad_targets(url: str) -> None:
    with pytest.raises(ValueError, match=r"host:port|URL"):
        parse_target(url)


def test_a_scheme_that_contradicts_tls_is_refused() -> None:
    with pytest.raises(ValueError, match="TLS"):
        Client("http://localhost:8080", tls=True)


def test_backoff_is_bounded_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.2, max_backoff=0.5, multiplier=2)
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.5), (4, 0.5)]:
        delays = {policy.delay(attempt) for _ in range(50)}
        assert all(0 <= d <= ceiling for d in delays)
        assert len(delays) > 1
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


def test_only_idempotent_calls_are_retried(dead_port: int, tmp_path: Path) -> None:
    counter = CountingInterceptor()
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not even onnx")
    with Client(
        f"127.0.0.1:{dead_port}",
        token="t",
        retry=RetryPolicy(max_attempts=3, initial_backoff=0),
        interceptors=[counter],
    ) as client:
        for read in (
            client.list_assets,
            lambda: client.get_model("m"),
            lambda: client.list_approvals(),
            lambda: client.export_history("pump-001", "2026-01-01", "2026-01-02", progress=False),
        ):
            with pytest.raises(Unavailable) as caught:
                read()
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE
            assert caught.value.request_id
            assert f"nothing answers at http://127.0.0.1:{dead_port}" in caught.value.hint
        for write in (
            lambda: client.upload_model(model, "m", "", progress=False),
            lambda: client.submit_for_approval("m"),
            lambda: client.approve("a"),
            lambda: client.reject("a", "no"),
            lambda: client.archive("m", 1),
        ):
            with pytest.raises(Unavailable):
                write()
    assert counter.calls == {
        "ListAssets": 3,
        "GetModel": 3,
        "ListApprovals": 3,
        "ExportHistory": 3,
        "UploadModel": 1,
        "SubmitForApproval": 1,
        "ApproveModelVersion": 1,
        "RejectModelVersion": 1,
        "ArchiveModelVersion": 1,
    }


def test_retries_stop_once_the_server_answers(stack: RunningStack) -> None:
    counter = CountingInterceptor()
    token = stack.tokens.valid("data_scientist")
    with Client(stack.gateway_target, token=token, interceptors=[counter]) as client:
        assert client.list_assets()
        with pytest.raises(MlplaneError):
            client.get_model("not-a-uuid")
    assert counter.calls == {"ListAssets": 1, "GetModel": 1}


def test_a_deadline_is_typed_and_not_retried(stack: RunningStack) -> None:
    counter = CountingInterceptor()
    token = stack.tokens.valid("data_scientist")
    with Client(stack.gateway_target, token=token, timeout=1e-6, interceptors=[counter]) as c:
        with pytest.raises(DeadlineExceeded) as caught:
            c.list_assets()
    assert str(caught.value).startswith("DEADLINE_EXCEEDED: ")
    with Client(
        stack.gateway_target, token=token, stream_timeout=1e-6, interceptors=[counter]
    ) as c:
        with pytest.raises(DeadlineExceeded):
            c.export_history("pump-001", "2026-01-01", "2026-01-02", progress=False)
        assert c.list_assets()  # the unary deadline is separate (30 s)
    assert counter.calls == {"ListAssets": 2, "ExportHistory": 1}


def test_from_env(monkeypatch: pytest.MonkeyPatch, stack: RunningStack) -> None:
    monkeypatch.setenv("MLPLANE_URL", f"http://{stack.gateway_target}")
    monkeypatch.setenv("MLPLANE_TOKEN", stack.tokens.valid("data_scientist"))
    with Client.from_env() as client:
        assert client.target == Target(stack.gateway_target, False)
        assert client.list_assets()[0].asset_id == "pump-001"
    monkeypatch.delenv("MLPLANE_URL")
    with Client.from_env(url="https://mlplane.example") as client:
        assert client.target == Target("mlplane.example:443", True)


def test_tls_to_a_plaintext_port_is_unavailable(stack: RunningStack, tmp_path: Path) -> None:
    """TLS is really negotiated: a plaintext gateway cannot complete the handshake."""
    with Client(
        stack.gateway_target, tls=True, retry=RetryPolicy(max_attempts=1), timeout=10
    ) as client:
        with pytest.raises(Unavailable) as caught:
            client.list_assets()
    assert caught.value.hint == (
        f"TLS handshake with https://{stack.gateway_target} failed: a plaintext gateway takes "
        "http://host:port; for a private CA set root_certificates= or MLPLANE_CA_FILE"
    )


def _self_signed(tmp_path: Path) -> tuple[bytes, bytes, Path]:
    """A key and a certificate for `localhost`; the certificate file is the CA to trust."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(cert_pem)
    return key_pem, cert_pem, ca_file


def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    """A TLS server (in-process, serving ListAssets) reached with `root_certificates`:
    the handshake, the CA file and the token all really travel."""
    from concurrent import futures

    from mlplane.v1 import query_service_pb2 as qpb
    from mlplane.v1 import query_service_pb2_grpc as qpb_grpc

    seen: list[str] = []

    class Assets(qpb_grpc.QueryServiceServicer):
        def ListAssets(self, request: Any, context: grpc.ServicerContext) -> Any:
            seen.extend(v for k, v in context.invocation_metadata() if k == "authorization")
            return qpb.ListAssetsResponse(assets=[qpb.Asset(asset_id="tls-pump")])

    key_pem, cert_pem, ca_file = _self_signed(tmp_path)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    qpb_grpc.add_QueryServiceServicer_to_server(Assets(), server)
    port = server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    server.start()
    try:
        with Client(f"https://localhost:{port}", token="tok", root_certificates=ca_file) as c:
            assert [a.asset_id for a in c.list_assets()] == ["tls-pump"]
        assert seen == ["Bearer tok"]
        # Without the private CA the system roots do not trust it.
        untrusting = Client(
            f"localhost:{port}", tls=True, retry=RetryPolicy(max_attempts=1), timeout=10
        )
        with untrusting, pytest.raises(Unavailable):
            untrusting.list_assets()
    finally:
        server.stop(None)
