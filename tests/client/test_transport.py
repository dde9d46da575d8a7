"""Targets, retries, deadlines and error translation: real faults, no mocks of grpc."""

from __future__ import annotations

import doctest
import itertools
import json
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from mlplane.v1 import model_registry_pb2 as mpb
from mlplane.v1 import query_service_pb2 as qpb
from mlplane.v1 import query_service_pb2_grpc as qpb_grpc

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
from mlplane_client._transport import Transport, open_channel, parse_target
from mlplane_client.client import RETRIED_READS
from tests.stack_runner import RunningStack

QUERY = qpb.DESCRIPTOR.services_by_name["QueryService"]
REGISTRY = mpb.DESCRIPTOR.services_by_name["ModelRegistry"]
# Every method of both services, by its gRPC path.
METHODS = {f"/{s.full_name}/{m.name}": m for s in (QUERY, REGISTRY) for m in s.methods}
# Retries in these tests: quick, so no sleeps need faking.
QUICK = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.01)


class CountingInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
):
    """Counts the calls that reach the channel, per method (gRPC retries below the
    interceptors: a call counts once however many attempts it takes)."""

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


Behaviour = Callable[[str, int, grpc.ServicerContext], Iterable[Message]]


class FlakyServer(grpc.GenericRpcHandler):
    """A real gRPC server on a free loopback port that answers every method of both
    services with `behave(method name, attempt number from 1, context)` (messages to
    send, or an abort) and counts the attempts that reach it."""

    def __init__(self, behave: Behaviour) -> None:
        self.attempts: Counter[str] = Counter()
        self.request_ids: defaultdict[str, list[str]] = defaultdict(list)
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)
        self._behave = behave
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((self,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FlakyServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(None)

    def _attempt(self, name: str, context: grpc.ServicerContext) -> Iterator[Message]:
        with self._lock:
            self.attempts[name] += 1
            attempt = self.attempts[name]
            self.arrivals[name].append(time.monotonic())
            self.request_ids[name].extend(
                v for k, v in context.invocation_metadata() if k == "x-request-id"
            )
        return iter(self._behave(name, attempt, context))

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        method = METHODS.get(handler_call_details.method)
        if method is None:
            return None
        name = method.name

        def serialize(message: Message) -> bytes:
            return message.SerializeToString()

        if method.server_streaming:

            def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[Message]:
                yield from self._attempt(name, context)

            return grpc.unary_stream_rpc_method_handler(stream, response_serializer=serialize)
        if method.client_streaming:

            def upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> Message:
                for _ in requests:
                    pass
                return next(self._attempt(name, context))

            return grpc.stream_unary_rpc_method_handler(upload, response_serializer=serialize)

        def unary(request: bytes, context: grpc.ServicerContext) -> Message:
            return next(self._attempt(name, context))

        return grpc.unary_unary_rpc_method_handler(unary, response_serializer=serialize)


def unavailable(context: grpc.ServicerContext) -> NoReturn:
    context.abort(grpc.StatusCode.UNAVAILABLE, "replica restarting")
    raise AssertionError("abort returned")


def always_unavailable(name: str, attempt: int, context: grpc.ServicerContext) -> NoReturn:
    unavailable(context)


def empty(name: str) -> Message:
    """An empty response of method `name`."""
    (method,) = (m for m in METHODS.values() if m.name == name)
    message: Message = GetMessageClass(method.output_type)()
    return message


def test_the_retry_policy_given_to_grpc() -> None:
    """RetryPolicy's fields become the retryPolicy of each read in the service config."""
    config = json.loads(RetryPolicy().service_config(RETRIED_READS))
    (method_config,) = config["methodConfig"]
    assert method_config["retryPolicy"] == {
        "maxAttempts": 4,
        "initialBackoff": "0.200s",
        "maxBackoff": "2.000s",
        "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    assert [f"{n['service']}/{n['method']}" for n in method_config["name"]] == list(RETRIED_READS)
    # gRPC wants backoffs above 0 and in whole milliseconds; it starts from initialBackoff.
    assert RetryPolicy(initial_backoff=0, max_backoff=0.0004).retry_policy()["initialBackoff"] == (
        "0.010s"
    )
    assert (
        RetryPolicy(initial_backoff=3, max_backoff=1).retry_policy()["initialBackoff"] == "1.000s"
    )
    assert RetryPolicy(max_attempts=1).service_config(RETRIED_READS) == "{}"  # retries off
    for bad, match in [
        ({"max_attempts": 0}, "at least 1"),
        ({"max_attempts": 6}, "at most 5"),
        ({"initial_backoff": -1}, "0 or more"),
        ({"max_backoff": float("inf")}, "0 or more"),
        ({"multiplier": 0.5}, "at least 1"),
    ]:
        with pytest.raises(ValueError, match=match):
            RetryPolicy(**bad)


def test_the_retried_methods_are_the_reads() -> None:
    """Exactly the reads the client makes, each bound to REST GETs only (the gateway's
    rule for what it retries after a reset); no upload, submission, decision or archive."""
    reads = set()
    for path, method in METHODS.items():
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        verbs = {b.WhichOneof("pattern") for b in (rule, *rule.additional_bindings)}
        if verbs == {"get"} and not method.client_streaming:
            reads.add(path.lstrip("/"))
    assert set(RETRIED_READS) <= reads
    assert len(set(RETRIED_READS)) == len(RETRIED_READS) == 13
    writes = {
        "UploadModel",
        "SubmitForApproval",
        "ApproveModelVersion",
        "RejectModelVersion",
        "ArchiveModelVersion",
    }
    assert not {m.rsplit("/", 1)[1] for m in RETRIED_READS} & writes


def test_every_method_gets_the_retries_the_service_config_gives_it() -> None:
    """Against a server that answers every call UNAVAILABLE: each method listed as a
    read is tried max_attempts times, every other method (writes, uploads, links) once."""
    with FlakyServer(always_unavailable) as server:
        channel = open_channel(Target(server.url, False), retry=QUICK, reads=RETRIED_READS)
        with channel:
            for path, method in METHODS.items():
                with pytest.raises(grpc.RpcError) as caught:
                    if method.client_streaming:
                        channel.stream_unary(path)(iter([b"", b""]), timeout=10)
                    elif method.server_streaming:
                        list(channel.unary_stream(path)(b"", timeout=10))
                    else:
                        channel.unary_unary(path)(b"", timeout=10)
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.attempts == {
        m.name: 3 if path.lstrip("/") in RETRIED_READS else 1 for path, m in METHODS.items()
    }


def test_only_reads_are_retried(tmp_path: Path) -> None:
    """The client's reads, unary and streamed, are retried on UNAVAILABLE; its writes
    never. Every attempt of a call carries the call's request id."""
    counter = CountingInterceptor()
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not even onnx")
    with FlakyServer(always_unavailable) as server:
        with Client(server.url, token="t", retry=QUICK, interceptors=[counter]) as client:
            for read in (
                client.list_assets,
                lambda: client.get_model("m"),
                lambda: client.list_approvals(),
                lambda: client.export_history(
                    "pump-001", "2026-01-01", "2026-01-02", progress=False
                ),
            ):
                with pytest.raises(Unavailable) as caught:
                    read()
                assert caught.value.code == grpc.StatusCode.UNAVAILABLE
                assert caught.value.request_id
            for write in (
                lambda: client.upload_model(model, "m", "", progress=False),
                lambda: client.submit_for_approval("m"),
                lambda: client.approve("a"),
                lambda: client.reject("a", "no"),
                lambda: client.archive("m", 1),
            ):
                with pytest.raises(Unavailable):
                    write()
    assert server.attempts == {
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
    # The interceptors see each call once.
    assert set(counter.calls.values()) == {1}
    for ids in server.request_ids.values():
        assert len(set(ids)) == 1


def test_retries_stop_once_the_server_answers() -> None:
    def behave(name: str, attempt: int, context: grpc.ServicerContext) -> Iterator[Message]:
        if attempt < 3:
            unavailable(context)
        if name == "GetModel":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such model")
        yield qpb.ListAssetsResponse(assets=[qpb.Asset(asset_id="pump-7")])

    with FlakyServer(behave) as server:
        with Client(
            server.url, token="t", retry=RetryPolicy(max_attempts=5, initial_backoff=0.01)
        ) as c:
            assert [a.asset_id for a in c.list_assets()] == ["pump-7"]
            with pytest.raises(MlplaneError) as caught:
                c.get_model("m")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert server.attempts == {"ListAssets": 3, "GetModel": 3}
    assert len(set(server.request_ids["ListAssets"])) == 1


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    ],
    ids=lambda code: code.name,
)
def test_no_other_code_is_retried(code: grpc.StatusCode) -> None:
    def behave(name: str, attempt: int, context: grpc.ServicerContext) -> NoReturn:
        context.abort(code, "no")
        raise AssertionError("abort returned")

    with FlakyServer(behave) as server, Client(server.url, retry=QUICK) as client:
        with pytest.raises(MlplaneError) as caught:
            client.list_assets()
    assert caught.value.code == code
    assert server.attempts == {"ListAssets": 1}


def test_a_deadline_covers_all_attempts_and_is_not_retried() -> None:
    slow = threading.Event()

    def behave(name: str, attempt: int, context: grpc.ServicerContext) -> Iterator[Message]:
        if attempt == 1:
            unavailable(context)
        slow.wait(2)  # the client's deadline passes meanwhile
        yield empty(name)

    with FlakyServer(behave) as server, Client(server.url, timeout=0.3, retry=QUICK) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.list_assets()
        assert time.monotonic() - started < 1.5
        slow.set()
        time.sleep(0.2)
    assert server.attempts == {"ListAssets": 2}


def test_the_backoff_grows_and_stays_within_grpcs_jitter() -> None:
    """gRPC waits min(max_backoff, initial_backoff * multiplier ** (n - 1)) +-20 %."""
    policy = RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=0.3, multiplier=2)
    with FlakyServer(always_unavailable) as server, Client(server.url, retry=policy) as client:
        with pytest.raises(Unavailable):
            client.list_assets()
    arrivals = server.arrivals["ListAssets"]
    waits = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(waits) == 3
    for wait, ceiling in zip(waits, (0.1, 0.2, 0.3), strict=True):
        assert 0.8 * ceiling - 0.005 <= wait < ceiling * 1.2 + 1.0  # + scheduling on a busy box


def test_retries_off() -> None:
    with FlakyServer(always_unavailable) as server:
        with Client(server.url, retry=RetryPolicy(max_attempts=1)) as client:
            with pytest.raises(Unavailable):
                client.list_assets()
    assert server.attempts == {"ListAssets": 1}


def _export_stream(server: FlakyServer) -> tuple[Transport, Any]:
    channel = open_channel(Target(server.url, False), retry=QUICK, reads=RETRIED_READS)
    transport = Transport(channel, token=None, timeout=10, stream_timeout=10)
    return transport, qpb_grpc.QueryServiceStub(channel).ExportHistory


def test_a_stream_is_retried_until_its_first_message() -> None:
    def behave(name: str, attempt: int, context: grpc.ServicerContext) -> Iterator[Message]:
        if attempt < 3:
            unavailable(context)
        yield qpb.ExportHistoryResponse(arrow=qpb.ArrowBatch(data=b"a"))
        yield qpb.ExportHistoryResponse(arrow=qpb.ArrowBatch(data=b"b"))

    with FlakyServer(behave) as server:
        transport, export = _export_stream(server)
        with transport.channel, transport.server_stream(export, qpb.ExportHistoryRequest()) as s:
            assert [m.arrow.data for m in s] == [b"a", b"b"]
    assert server.attempts == {"ExportHistory": 3}


def test_a_stream_is_not_retried_after_its_first_message() -> None:
    def behave(name: str, attempt: int, context: grpc.ServicerContext) -> Iterator[Message]:
        yield qpb.ExportHistoryResponse(arrow=qpb.ArrowBatch(data=b"a"))
        unavailable(context)

    with FlakyServer(behave) as server:
        transport, export = _export_stream(server)
        with transport.channel, transport.server_stream(export, qpb.ExportHistoryRequest()) as s:
            assert next(s).arrow.data == b"a"
            with pytest.raises(Unavailable):
                next(s)
    assert server.attempts == {"ExportHistory": 1}


def test_a_stream_is_not_retried_once_its_headers_came() -> None:
    """gRPC commits a call on its response headers (gRFC A6): a server that sent them
    before failing is not asked again, even with no message sent. mlplane's services send
    them with the first message, so for them this is the rule above."""

    def behave(name: str, attempt: int, context: grpc.ServicerContext) -> Iterator[Message]:
        context.send_initial_metadata((("x-mlplane-export-id", "e-1"),))
        unavailable(context)
        yield empty(name)

    with FlakyServer(behave) as server:
        transport, export = _export_stream(server)
        with transport.channel, pytest.raises(Unavailable):
            transport.server_stream(export, qpb.ExportHistoryRequest())
    assert server.attempts == {"ExportHistory": 1}


def test_nothing_listening_is_retried_then_named(dead_port: int) -> None:
    with Client(f"127.0.0.1:{dead_port}", token="t", retry=QUICK) as client:
        with pytest.raises(Unavailable) as caught:
            client.list_assets()
    assert caught.value.request_id
    assert f"nothing answers at http://127.0.0.1:{dead_port}" in caught.value.hint


def test_a_deadline_is_typed_and_not_retried(stack: RunningStack) -> None:
    counter = CountingInterceptor()
    token = stack.tokens.valid("data_scientist")
    with Client(stack.gateway_target, token=token, timeout=1e-6, interceptors=[counter]) as c:
        with pytest.raises(DeadlineExceeded) as caught:
            c.list_assets()
    # The client's own deadline ("DEADLINE_EXCEEDED: Deadline Exceeded"), or, when the call
    # reached the gateway first, its answer to the propagated grpc-timeout
    # ("DEADLINE_EXCEEDED UPSTREAM_TIMEOUT: …"): the same type either way, never retried.
    assert str(caught.value).startswith("DEADLINE_EXCEEDED")
    assert caught.value.reason in ("", "UPSTREAM_TIMEOUT")
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
