"""The rendered Envoy configuration: its pieces, `envoy --mode validate`, and a real Envoy.

The running-Envoy tests put a tiny in-process gRPC server behind the gateway (standing in
for both services), so authentication, RBAC, transcoding and the Lua status rewrite are
checked end to end at the gateway without the real services. Every port is 0.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.api import annotations_pb2, httpbody_pb2
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import model_registry_pb2_grpc as mr_grpc
from mlplane.v1 import query_service_pb2_grpc as qs_grpc

from gateway.envoy_config import (
    MODEL_REGISTRY,
    QUERY_SERVICE,
    render_envoy_config,
    write_envoy_config,
)
from gateway.envoy_process import EnvoyProcess, default_envoy_binary
from gateway.http_rules import load_rpc_rules, template_to_regex, unsupported_response_bodies
from gateway.rbac import OPEN_POLICY, UNROUTED_POLICY
from gateway.web_routes import web_config
from services.common.access import LINK_METHODS, METHOD_ROLES
from services.common.settings import Settings
from tests.conftest import starts_servers

ROOT = Path(__file__).resolve().parents[2]
GENERATED_DESCRIPTOR = ROOT / "generated" / "mlplane.pb"
SERVICES = (QUERY_SERVICE, MODEL_REGISTRY)

ISSUER = "https://issuer.test/"
AUDIENCE = "mlplane-test"
KID = "test-key"
ALLOWED_ORIGIN = "http://localhost:5173"
DS = "data_scientist"
APPROVER = "model_approver"

Json = dict[str, Any]


# --------------------------------------------------------------------------- helpers


def _descriptor_with_response_body(target: Path, method_name: str, field: str) -> Path:
    """A copy of the generated descriptor set with `response_body` set on one method."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(GENERATED_DESCRIPTOR.read_bytes())
    for file in fds.file:
        for service in file.service:
            for method in service.method:
                if method.name == method_name:
                    method.options.Extensions[annotations_pb2.http].response_body = field
    target.write_bytes(fds.SerializeToString())
    return target


def _write_jwks(path: Path, key: rsa.RSAPrivateKey) -> Json:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=KID, alg="RS256", use="sig")
    jwks = {"keys": [jwk]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jwks))
    return jwks


def _settings(state_dir: Path, **overrides: Any) -> Settings:
    values: Json = {
        "state_dir": state_dir,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "jwt_jwks_url": None,
        "cors_allowed_origins": [ALLOWED_ORIGIN],
        # Not the checkout's own web/dist: what a test serves must not depend on a build.
        "web_dir": state_dir / "no-web-app",
    }
    values.update(overrides)
    return Settings(**values)


def _render(settings: Settings, descriptor: Path, **overrides: Any) -> Json:
    kwargs: Json = {
        "query_address": ("127.0.0.1", 50051),
        "models_address": ("127.0.0.1", 50052),
        "descriptor_path": descriptor,
        "listen_address": ("127.0.0.1", 0),
        "admin_port": 0,
    }
    kwargs.update(overrides)
    return render_envoy_config(settings, **kwargs)


def _hcm(config: Json) -> Json:
    listener = config["static_resources"]["listeners"][0]
    hcm: Json = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm


def _filter(config: Json, name: str) -> Json:
    for http_filter in _hcm(config)["http_filters"]:
        if http_filter["name"] == name:
            typed: Json = http_filter["typed_config"]
            return typed
    raise AssertionError(f"no filter {name}")


def _validate(config_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(default_envoy_binary()), "--mode", "validate", "-c", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def descriptor() -> Path:
    return GENERATED_DESCRIPTOR


@pytest.fixture
def settings(tmp_path: Path, signing_key: rsa.RSAPrivateKey) -> Settings:
    settings = _settings(tmp_path)
    _write_jwks(settings.jwks_file, signing_key)
    return settings


@pytest.fixture
def config(settings: Settings, descriptor: Path) -> Json:
    return _render(settings, descriptor)


# --------------------------------------------------------------------------- unit


@pytest.mark.parametrize(
    ("template", "path", "matches"),
    [
        (
            "/api/v1/models/{model_id}/versions/{version}:archive",
            "/api/v1/models/abc/versions/3:archive",
            True,
        ),
        (
            "/api/v1/models/{model_id}/versions/{version}:archive",
            "/api/v1/models/a/b/versions/3:archive",
            False,
        ),
        (
            "/api/v1/models/{model_id}/versions/{version}:archive",
            "/api/v1/models/abc/versions/3",
            False,
        ),
        (
            "/api/v1/models/{model_id}/versions/{version}:archive",
            "/api/v1/models//versions/3:archive",
            False,
        ),
        # The transcoder drops trailing slashes before matching, so RBAC must as well.
        (
            "/api/v1/models/{model_id}/versions/{version}:archive",
            "/api/v1/models/abc/versions/3/:archive",
            True,
        ),
        ("/api/v1/models", "/api/v1/models", True),
        ("/api/v1/models", "/api/v1/models/", True),
        ("/api/v1/models", "/api/v1/models:upload", False),
        ("/api/v1/models", "/api/v1/models/abc", False),
        ("/api/v1/models:upload", "/api/v1/models:upload", True),
        ("/api/v1/models:upload", "/api/v1/models", False),
        ("/api/v1/models/{model_id}", "/api/v1/models/", False),
        ("/api/v1/query/history", "/api/v1/query/history:csv", False),
        ("/api/v1/query/history:csv", "/api/v1/query/history:csv", True),
        ("/api/v1/query/history:csv", "/api/v1/query/historyxcsv", False),
        ("/v1/{name=projects/*/things/*}", "/v1/projects/p/things/t", True),
        ("/v1/{name=projects/*/things/*}", "/v1/projects/p/t", False),
        ("/v1/files/{path=**}", "/v1/files/a/b/c", True),
        ("/v1/*/items", "/v1/x/items", True),
    ],
)
def test_template_to_regex(template: str, path: str, matches: bool) -> None:
    assert bool(re.fullmatch(template_to_regex(template), path)) is matches


@pytest.mark.parametrize("template", ["api/v1", "/a/{b", "/a/b}", "/a:b:c", "/a/b:", "/a/{b}x"])
def test_template_to_regex_rejects_malformed_templates(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        template_to_regex(template)


def test_rest_bindings_are_read_from_the_descriptor_set(descriptor: Path) -> None:
    rules = {rule.grpc_path: rule for rule in load_rpc_rules(descriptor, SERVICES)}
    assert set(rules) == set(METHOD_ROLES) | set(LINK_METHODS)
    archive = rules["/mlplane.v1.ModelRegistry/ArchiveModelVersion"].bindings
    assert [(b.method, b.template) for b in archive] == [
        ("POST", "/api/v1/models/{model_id}/versions/{version}:archive")
    ]
    for rule in rules.values():
        for binding in rule.bindings:
            example = re.sub(r"\{[^}]*\}", "x1", binding.template)
            assert re.fullmatch(template_to_regex(binding.template), example), binding


def test_generated_descriptor_is_transcodable() -> None:
    """The contracts must only use `response_body` where Envoy supports it (HttpBody)."""
    assert unsupported_response_bodies(GENERATED_DESCRIPTOR, SERVICES) == []


@pytest.mark.stack
def test_render_refuses_what_envoy_refuses(
    tmp_path: Path, settings: Settings, config: Json
) -> None:
    bad = _descriptor_with_response_body(tmp_path / "bad.pb", "GetModel", "name")
    with pytest.raises(ValueError, match="GetModel"):
        _render(settings, bad)
    # The check mirrors Envoy: the same descriptor set fails its own validation.
    _filter(config, "envoy.filters.http.grpc_json_transcoder")["proto_descriptor"] = str(bad)
    path = tmp_path / "envoy.json"
    write_envoy_config(path, config)
    result = _validate(path)
    assert result.returncode != 0
    assert "response_body" in result.stderr


def test_rbac_policy_per_method_with_exactly_its_roles(config: Json) -> None:
    policies = _filter(config, "envoy.filters.http.rbac")["rules"]["policies"]
    for method, roles in METHOD_ROLES.items():
        principals = policies[method]["principals"]
        granted = {
            p["sourced_metadata"]["metadata_matcher"]["value"]["list_match"]["one_of"][
                "string_match"
            ]["exact"]
            for p in principals
        }
        assert granted == set(roles), method
        alternatives = policies[method]["permissions"][0]["or_rules"]["rules"]
        assert alternatives[0] == {"url_path": {"path": {"exact": method}}}
    assert set(policies) == {*METHOD_ROLES, OPEN_POLICY, UNROUTED_POLICY}


def _rest_methods(policy: Json) -> set[str]:
    alternatives = policy["permissions"][0]["or_rules"]["rules"][1:]
    return {alt["and_rules"]["rules"][0]["header"]["string_match"]["exact"] for alt in alternatives}


def test_rbac_tells_methods_on_one_path_apart(config: Json) -> None:
    policies = _filter(config, "envoy.filters.http.rbac")["rules"]["policies"]
    assert _rest_methods(policies["/mlplane.v1.ModelRegistry/UploadModelMultipart"]) == {"POST"}
    assert _rest_methods(policies["/mlplane.v1.ModelRegistry/ListModels"]) == {"GET"}


def test_unrouted_policy_excludes_every_known_rpc(config: Json) -> None:
    policies = _filter(config, "envoy.filters.http.rbac")["rules"]["policies"]
    negated = policies[UNROUTED_POLICY]["permissions"][0]["not_rule"]["or_rules"]["rules"]
    for method in METHOD_ROLES:
        assert policies[method]["permissions"][0] in negated
    prefixes = {r["url_path"]["path"].get("prefix") for r in negated if "url_path" in r}
    assert {f"/{service}/" for service in SERVICES} <= prefixes


def test_filter_order_and_core_options(config: Json, descriptor: Path) -> None:
    hcm = _hcm(config)
    assert [f["name"] for f in hcm["http_filters"]] == [
        "envoy.filters.http.cors",
        "mlplane.token_size",
        "envoy.filters.http.jwt_authn",
        "envoy.filters.http.local_ratelimit",
        "envoy.filters.http.rbac",
        "mlplane.body_limit.upload",
        "mlplane.body_limit.upload_json",
        "mlplane.body_limit.json",
        "envoy.filters.http.lua",
        "envoy.filters.http.grpc_json_transcoder",
        "envoy.filters.http.router",
    ]
    assert hcm["codec_type"] == "AUTO"
    assert hcm["use_remote_address"] is True
    assert hcm["generate_request_id"] is True
    transcoder = _filter(config, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["proto_descriptor"] == str(descriptor)
    assert transcoder["services"] == list(SERVICES)
    assert transcoder["request_validation_options"]["reject_unknown_query_parameters"] is True
    assert "max_request_body_size" not in transcoder
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    forwarded = [r for r in routes if "route" in r and r["route"]["cluster"] in ("query", "models")]
    # Each service's prefix, after a route per read and per upload (each with its own retry
    # policy: tests/gateway/test_envoy_replicas.py).
    prefixes = [r["match"]["prefix"] for r in forwarded if "prefix" in r["match"]]
    assert prefixes == [f"/{service}/" for service in SERVICES]
    for route in forwarded:
        service = {"query": QUERY_SERVICE, "models": MODEL_REGISTRY}[route["route"]["cluster"]]
        assert route["match"].get("path", route["match"].get("prefix")).startswith(f"/{service}/")
    assert all(r["route"]["timeout"] == "0s" for r in forwarded)
    # Everything else ends in Envoy's own 404, via a cluster that must stay undefined.
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    not_found = [r for r in routes if "route" in r and r not in forwarded]
    assert not_found
    for route in not_found:
        assert route["route"]["cluster"] not in clusters
        assert route["route"]["cluster_not_found_response_code"] == "NOT_FOUND"


def test_rate_limit_per_client_from_settings(settings: Settings, descriptor: Path) -> None:
    config = _render(
        settings.model_copy(
            update={"gateway_rate_limit_per_second": 50, "gateway_rate_limit_burst": 300}
        ),
        descriptor,
    )
    limit = _filter(config, "envoy.filters.http.local_ratelimit")
    # One bucket per verified (tenant, subject): dynamic descriptors, wildcard values.
    (descriptor_config,) = limit["descriptors"]
    assert descriptor_config["entries"] == [
        {"key": "issuer"},
        {"key": "tenant"},
        {"key": "subject"},
    ]
    assert descriptor_config["token_bucket"] == {
        "max_tokens": 300,
        "tokens_per_fill": 50,
        "fill_interval": "1s",
    }
    assert limit["max_dynamic_descriptors"] >= 1000
    assert limit["always_consume_default_token_bucket"] is False
    assert "token_bucket" not in limit  # no default bucket: no identity, no limit
    (rate_limit,) = limit["rate_limits"]
    sources = [action["metadata"] for action in rate_limit["actions"]]
    assert [s["metadata_key"]["path"][-1]["key"] for s in sources] == ["iss", "tenant", "sub"]
    assert all(s["metadata_key"]["key"] == "envoy.filters.http.jwt_authn" for s in sources)
    assert all(s["source"] == "DYNAMIC" for s in sources)
    # The issuer entry has no default: a request without a verified token has no descriptor.
    assert "default_value" not in sources[0]
    assert limit["rate_limited_as_resource_exhausted"] is True
    assert limit["enable_x_ratelimit_headers"] == "DRAFT_VERSION_03"
    mappers = _hcm(config)["local_reply_config"]["mappers"]
    rest_429 = next(
        m
        for m in mappers
        if "body_format_override" in m
        and m["filter"].get("status_code_filter", {}).get("comparison", {}).get("value", {})
        == {"default_value": 429, "runtime_key": "mlplane.status_429"}
    )
    body = rest_429["body_format_override"]["json_format"]
    assert (body["code"], body["details"][0]["reason"]) == (8, "RATE_LIMITED")
    assert body["details"][0]["domain"] == "gateway.mlplane"
    expose = _hcm(config)["route_config"]["virtual_hosts"][0]["typed_per_filter_config"]
    assert "x-ratelimit-remaining" in expose["envoy.filters.http.cors"]["expose_headers"]


def test_rate_limit_off_renders_no_filter(settings: Settings, descriptor: Path) -> None:
    config = _render(settings.model_copy(update={"gateway_rate_limit_per_second": 0}), descriptor)
    names = [f["name"] for f in _hcm(config)["http_filters"]]
    assert "envoy.filters.http.local_ratelimit" not in names
    # The gateway's own refusals keep their mapping (tokens, roles, bodies over the limit,
    # services down or slow, REST bodies); nothing answers 429.
    mappers = _hcm(config)["local_reply_config"]["mappers"]
    assert {m.get("status_code") for m in mappers} == {401, 403, 413, 503, 504, None}
    assert "RATE_LIMITED" not in json.dumps(mappers)


def test_burst_is_at_least_the_rate(settings: Settings, descriptor: Path) -> None:
    update = {"gateway_rate_limit_per_second": 500, "gateway_rate_limit_burst": 10}
    config = _render(settings.model_copy(update=update), descriptor)
    bucket = _filter(config, "envoy.filters.http.local_ratelimit")["descriptors"][0]
    assert bucket["token_bucket"]["max_tokens"] == 500


def test_jwt_provider_local_jwks(config: Json, settings: Settings) -> None:
    provider = _filter(config, "envoy.filters.http.jwt_authn")["providers"]["mlplane"]
    assert provider["local_jwks"] == {"filename": str(settings.jwks_file)}
    assert provider["issuer"] == ISSUER
    assert provider["audiences"] == [AUDIENCE]
    assert provider["forward"] is True
    assert provider["payload_in_metadata"] == "jwt_payload"
    assert provider["clock_skew_seconds"] == settings.jwt_leeway_seconds
    names = [c["name"] for c in config["static_resources"]["clusters"]]
    assert names == ["query", "models"]


def test_jwt_provider_remote_jwks_over_tls(tmp_path: Path, descriptor: Path) -> None:
    settings = _settings(
        tmp_path, jwt_jwks_url="https://login.example.com:8443/keys", jwks_cache_seconds=120
    )
    config = _render(settings, descriptor)
    remote = _filter(config, "envoy.filters.http.jwt_authn")["providers"]["mlplane"]["remote_jwks"]
    assert remote["http_uri"]["uri"] == "https://login.example.com:8443/keys"
    assert remote["cache_duration"] == "120s"
    assert remote["async_fetch"] == {"fast_listener": True}
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "jwks")
    assert cluster["type"] == "LOGICAL_DNS"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "login.example.com", "port_value": 8443}
    tls = cluster["transport_socket"]["typed_config"]
    assert tls["sni"] == "login.example.com"
    validation = tls["common_tls_context"]["validation_context"]
    assert Path(validation["trusted_ca"]["filename"]).is_file()
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "login.example.com"}}
    ]


def test_addresses(settings: Settings, descriptor: Path) -> None:
    wildcard = ("0.0.0.0", 7)  # noqa: S104 - what a service may bind to, not what we bind
    config = _render(settings, descriptor, models_address=wildcard, listen_address=("::", 0))
    models = next(c for c in config["static_resources"]["clusters"] if c["name"] == "models")
    endpoint = models["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    # A service bound to every interface is reached over loopback.
    assert endpoint["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 7}
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "::", "port_value": 0, "ipv4_compat": True}
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    with pytest.raises(ValueError, match="IP"):
        _render(settings, descriptor, listen_address=("gateway.example", 0))


def test_write_envoy_config_round_trips(tmp_path: Path, config: Json) -> None:
    path = tmp_path / "nested" / "envoy.json"
    write_envoy_config(path, config)
    assert json.loads(path.read_text()) == config
    assert [p.name for p in path.parent.iterdir()] == ["envoy.json"]


# --------------------------------------------------------------------------- envoy --mode validate


@pytest.mark.stack
def test_envoy_validates_config_with_local_jwks(tmp_path: Path, config: Json) -> None:
    path = tmp_path / "envoy.json"
    write_envoy_config(path, config)
    result = _validate(path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "OK" in result.stdout + result.stderr
    assert "Deprecated field" not in result.stderr


@pytest.mark.stack
@pytest.mark.parametrize(
    "url", ["https://login.example.com/.well-known/jwks.json", "http://127.0.0.1:9/jwks"]
)
def test_envoy_validates_config_with_remote_jwks(
    tmp_path: Path, descriptor: Path, url: str
) -> None:
    config = _render(_settings(tmp_path, jwt_jwks_url=url), descriptor)
    path = tmp_path / "envoy.json"
    write_envoy_config(path, config)
    result = _validate(path)
    assert result.returncode == 0, result.stderr[-4000:]


# --------------------------------------------------------------------------- a running Envoy


class FakeRegistry(mr_grpc.ModelRegistryServicer):
    """Answers a few RPCs the way the real registry signals statuses to the gateway."""

    @staticmethod
    def _echo(context: grpc.ServicerContext) -> list[tuple[str, str]]:
        metadata = dict(context.invocation_metadata())
        return [
            ("x-seen-request-id", str(metadata.get("x-request-id", ""))),
            ("x-seen-authorization", "yes" if metadata.get("authorization") else "no"),
        ]

    def ListModels(
        self, request: mr.ListModelsRequest, context: grpc.ServicerContext
    ) -> mr.ListModelsResponse:
        context.send_initial_metadata(self._echo(context))
        return mr.ListModelsResponse(next_page_token="page-2")

    def GetModel(self, request: mr.GetModelRequest, context: grpc.ServicerContext) -> mr.Model:
        # No message, no initial metadata: a trailers-only gRPC error.
        context.set_trailing_metadata([("x-http-status", "413"), ("x-probe", "trailers-only")])
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "model file too large")

    def SubmitForApproval(
        self, request: mr.SubmitForApprovalRequest, context: grpc.ServicerContext
    ) -> mr.Approval:
        context.send_initial_metadata([("x-http-status", "202")])
        return mr.Approval(approval_id="ap-1")

    def UploadModelMultipart(
        self, request_iterator: Iterator[httpbody_pb2.HttpBody], context: grpc.ServicerContext
    ) -> mr.ModelVersion:
        pieces = list(request_iterator)
        context.send_initial_metadata([("x-http-status", "201")])
        return mr.ModelVersion(
            version=len(pieces),
            size_bytes=sum(len(piece.data) for piece in pieces),
            description=pieces[0].content_type if pieces else "",
        )

    def DownloadModelVersion(
        self, request: mr.DownloadModelVersionRequest, context: grpc.ServicerContext
    ) -> Iterator[httpbody_pb2.HttpBody]:
        yield httpbody_pb2.HttpBody(content_type="application/octet-stream", data=b"a" * 1000)
        for _ in range(2):
            yield httpbody_pb2.HttpBody(data=b"b" * 1000)

    def ArchiveModelVersion(
        self, request: mr.ArchiveModelVersionRequest, context: grpc.ServicerContext
    ) -> mr.ModelVersion:
        # Announced a 201, then failed: the failure must win.
        context.send_initial_metadata([("x-http-status", "201")])
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad version")


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    mr_grpc.add_ModelRegistryServicer_to_server(FakeRegistry(), server)
    qs_grpc.add_QueryServiceServicer_to_server(qs_grpc.QueryServiceServicer(), server)
    health_servicer = health.HealthServicer()
    for service in SERVICES:
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None).wait(5)


class Gateway:
    def __init__(self, envoy: EnvoyProcess, access_log: Path, key: rsa.RSAPrivateKey) -> None:
        self.envoy = envoy
        self.access_log = access_log
        self.key = key
        self.port = envoy.listener_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.url, trust_env=False, timeout=10)

    def token(
        self, roles: list[str], *, audience: str = AUDIENCE, key: rsa.RSAPrivateKey | None = None
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": audience,
            "sub": f"user-{uuid.uuid4().hex[:8]}",
            "tenant": "acme",
            "roles": roles,
            "iat": now,
            "exp": now + 300,
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": KID})

    def auth(self, roles: list[str], **kwargs: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(roles, **kwargs)}"}


def _start_gateway(
    directory: Path, settings: Settings, descriptor: Path, backend_port: int
) -> tuple[EnvoyProcess, Path]:
    access_log = directory / "access.log"
    config = render_envoy_config(
        settings,
        query_address=("127.0.0.1", backend_port),
        models_address=("127.0.0.1", backend_port),
        descriptor_path=descriptor,
        listen_address=("127.0.0.1", 0),
        admin_port=0,
        access_log_path=access_log,
    )
    config_path = directory / "envoy.json"
    write_envoy_config(config_path, config)
    envoy = EnvoyProcess(config_path, log_path=directory / "envoy.log")
    envoy.start(ready_timeout=30)
    return envoy, access_log


@pytest.fixture(scope="module")
@starts_servers
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    signing_key: rsa.RSAPrivateKey,
    descriptor: Path,
    backend: int,
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("gateway")
    settings = _settings(directory / "state")
    _write_jwks(settings.jwks_file, signing_key)
    envoy, access_log = _start_gateway(directory, settings, descriptor, backend)
    try:
        gw = Gateway(envoy, access_log, signing_key)
        yield gw
        gw.http.close()
    finally:
        envoy.stop()
        # Shown by pytest only when a test of this module failed.
        print("---- envoy log tail ----\n" + envoy.log_tail())


def test_envoy_process_reports_pid_and_admin(gateway: Gateway) -> None:
    assert gateway.envoy.pid is not None
    assert gateway.envoy.admin_url.startswith("http://127.0.0.1:")
    assert gateway.port > 0


def test_healthz_needs_no_token(gateway: Gateway) -> None:
    response = gateway.http.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok\n"
    assert response.headers["content-type"].startswith("text/plain")


def test_missing_or_bad_token_is_401(gateway: Gateway) -> None:
    assert gateway.http.get("/api/v1/models").status_code == 401
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = gateway.auth([DS], key=stranger)
    assert gateway.http.get("/api/v1/models", headers=headers).status_code == 401
    assert gateway.http.get("/api/v1/nowhere").status_code == 401


def test_unusable_tokens_are_401_and_a_wrong_role_403(gateway: Gateway) -> None:
    # jwt_authn says 403 for another audience and RBAC for a token without roles; the
    # gateway answers 401 like the services. A role that is not allowed stays 403.
    headers = gateway.auth([DS], audience="someone-else")
    assert gateway.http.get("/api/v1/models", headers=headers).status_code == 401
    no_roles = jwt.encode(
        {
            k: v
            for k, v in jwt.decode(gateway.token([DS]), options={"verify_signature": False}).items()
            if k != "roles"
        },
        gateway.key,
        algorithm="RS256",
        headers={"kid": KID},
    )
    response = gateway.http.get("/api/v1/models", headers={"authorization": f"Bearer {no_roles}"})
    assert response.status_code == 401
    assert gateway.http.get("/api/v1/approvals", headers=gateway.auth([DS])).status_code == 403
    assert gateway.http.get("/api/v1/models", headers=gateway.auth(["nobody"])).status_code == 403


def test_rbac_denies_a_role_not_allowed(gateway: Gateway) -> None:
    approver = gateway.auth([APPROVER])
    response = gateway.http.post("/api/v1/models", headers=approver, content=b"--x--")
    assert response.status_code == 403
    assert gateway.http.post("/api/v1/models:upload", headers=approver, json=[]).status_code == 403
    # A trailing slash is the same RPC to the transcoder, so it is to RBAC as well.
    submit = "/api/v1/models/m1/approvals/"
    assert gateway.http.post(submit, headers=approver, json={}).status_code == 403
    # The gRPC path, called with JSON (the transcoder accepts that too), is checked as well.
    scientist = gateway.auth([DS])
    path = "/mlplane.v1.ModelRegistry/ListApprovals"
    assert gateway.http.post(path, headers=scientist, json={}).status_code == 403
    assert gateway.http.get("/api/v1/approvals", headers=gateway.auth([])).status_code == 403


def test_allowed_request_reaches_the_service_with_request_id_and_token(gateway: Gateway) -> None:
    headers = {**gateway.auth([APPROVER]), "x-request-id": "req-listmodels-1"}
    response = gateway.http.get("/api/v1/models", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["nextPageToken"] == "page-2"
    assert response.headers["x-seen-request-id"] == "req-listmodels-1"
    assert response.headers["x-seen-authorization"] == "yes"
    assert response.headers["x-request-id"] == "req-listmodels-1"


def test_unknown_paths_are_404_not_403(gateway: Gateway) -> None:
    approver = gateway.auth([APPROVER])
    assert gateway.http.get("/api/v1/nowhere", headers=approver).status_code == 404
    assert gateway.http.delete("/api/v1/models", headers=approver).status_code == 404
    assert gateway.http.get("/elsewhere", headers=approver).status_code == 404


def test_unknown_query_parameter_is_400(gateway: Gateway) -> None:
    response = gateway.http.get("/api/v1/models?bogus=1", headers=gateway.auth([DS]))
    assert response.status_code == 400


def test_lua_sets_202_on_success(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/api/v1/models/m1/approvals", headers=gateway.auth([DS]), json={"version": 1}
    )
    assert response.status_code == 202, response.text
    assert response.json()["approvalId"] == "ap-1"
    assert "x-http-status" not in response.headers


def test_lua_sees_metadata_of_a_trailers_only_error(gateway: Gateway) -> None:
    response = gateway.http.get("/api/v1/models/m1", headers=gateway.auth([DS]))
    assert response.status_code == 413, (response.headers, response.text)
    assert response.headers["x-probe"] == "trailers-only"
    assert "x-http-status" not in response.headers
    body = response.json()
    assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert body["message"] == "model file too large"


def test_lua_keeps_the_error_status_after_an_announced_201(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/api/v1/models/m1/versions/2:archive", headers=gateway.auth([APPROVER]), json={}
    )
    assert response.status_code == 400, response.text
    assert "x-http-status" not in response.headers


def test_upload_body_is_streamed_not_capped(gateway: Gateway) -> None:
    body = b"--b\r\n" + b"x" * (5 * 1024 * 1024) + b"\r\n--b--\r\n"
    content_type = "multipart/form-data; boundary=b"
    headers = {**gateway.auth([DS]), "content-type": content_type}
    response = gateway.http.post("/api/v1/models", headers=headers, content=body)
    assert response.status_code == 201, response.text
    version = response.json()
    assert int(version["sizeBytes"]) == len(body)
    assert version["description"] == content_type
    # Arrived as a stream of pieces, not as one buffered message.
    assert int(version["version"]) > 1


def test_download_is_streamed_raw(gateway: Gateway) -> None:
    path = "/api/v1/models/m1/versions/1/content"
    response = gateway.http.get(path, headers=gateway.auth([APPROVER]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == b"a" * 1000 + b"b" * 2000


def _grpc_channel(gateway: Gateway) -> grpc.Channel:
    return grpc.insecure_channel(
        f"127.0.0.1:{gateway.port}", options=[("grpc.enable_http_proxy", 0)]
    )


def test_grpc_through_the_gateway(gateway: Gateway) -> None:
    with _grpc_channel(gateway) as channel:
        stub = mr_grpc.ModelRegistryStub(channel)
        request = mr.SubmitForApprovalRequest(model_id="m1")
        ds_metadata = [("authorization", f"Bearer {gateway.token([DS])}")]
        response, call = stub.SubmitForApproval.with_call(request, metadata=ds_metadata, timeout=10)
        assert response.approval_id == "ap-1"
        # A gRPC response keeps its status; the hint header is stripped all the same.
        assert "x-http-status" not in dict(call.initial_metadata())

        with pytest.raises(grpc.RpcError) as missing:
            stub.SubmitForApproval(request, timeout=10)
        assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED

        approver = [("authorization", f"Bearer {gateway.token([APPROVER])}")]
        with pytest.raises(grpc.RpcError) as denied:
            stub.SubmitForApproval(request, metadata=approver, timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

        # Not in METHOD_ROLES: fail closed, even for a valid token.
        unknown = channel.unary_unary("/mlplane.v1.ModelRegistry/DeleteEverything")
        with pytest.raises(grpc.RpcError) as refused:
            unknown(b"", metadata=ds_metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_cors_preflight_and_exposed_headers(gateway: Gateway) -> None:
    preflight = {
        "origin": ALLOWED_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    response = gateway.http.options("/api/v1/models", headers=preflight)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"]

    # Not answered by the cors filter, and not forwarded to a service without a token.
    foreign = {**preflight, "origin": "https://evil.example"}
    response = gateway.http.options("/api/v1/models", headers=foreign)
    assert response.status_code == 404
    assert "access-control-allow-origin" not in response.headers
    response = gateway.http.options("/mlplane.v1.ModelRegistry/ListModels")
    assert response.status_code == 404

    headers = {**gateway.auth([DS]), "origin": ALLOWED_ORIGIN}
    response = gateway.http.get("/api/v1/models", headers=headers)
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-mlplane-export-id" in response.headers["access-control-expose-headers"]


def test_access_log_is_json_with_the_client_path(gateway: Gateway) -> None:
    # 36 characters, like a UUID: Envoy must not rewrite any of them.
    request_id = f"req-{uuid.uuid4().hex}"
    headers = {**gateway.auth([DS]), "x-request-id": request_id}
    assert gateway.http.get("/api/v1/models?pageSize=5", headers=headers).status_code == 200
    entry: Json | None = None
    deadline = time.monotonic() + 10
    while entry is None and time.monotonic() < deadline:
        if gateway.access_log.exists():
            for line in gateway.access_log.read_text().splitlines():
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    entry = record
        time.sleep(0.1)
    assert entry is not None, gateway.access_log.read_text()[-2000:]
    assert entry["method"] == "GET"
    assert entry["path"] == "/api/v1/models?pageSize=5"
    assert entry["status"] == 200
    assert entry["grpc_status"] == 0
    assert isinstance(entry["duration_ms"], int)


# ------------------------------------------------------------- remote JWKS, really fetched


@pytest.fixture
def jwks_server(signing_key: rsa.RSAPrivateKey, tmp_path: Path) -> Iterator[str]:
    jwks = json.dumps(_write_jwks(tmp_path / "served-jwks.json", signing_key)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(jwks)))
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.stack
def test_remote_jwks_is_fetched_and_used(
    tmp_path: Path,
    descriptor: Path,
    backend: int,
    jwks_server: str,
    signing_key: rsa.RSAPrivateKey,
) -> None:
    settings = _settings(tmp_path / "state", jwt_jwks_url=jwks_server)
    envoy, access_log = _start_gateway(tmp_path, settings, descriptor, backend)
    try:
        gw = Gateway(envoy, access_log, signing_key)
        with gw.http:
            headers = gw.auth([DS])
            # fast_listener: the first requests may beat the first JWKS fetch.
            assert _eventually(
                lambda: gw.http.get("/api/v1/models", headers=headers).status_code == 200
            ), envoy.log_tail()
            assert gw.http.get("/api/v1/models").status_code == 401
    finally:
        envoy.stop()
    assert envoy.pid is None
    envoy.stop()  # idempotent


@pytest.mark.stack
def test_envoy_process_reports_a_bad_config(tmp_path: Path) -> None:
    config_path = tmp_path / "envoy.json"
    config_path.write_text(json.dumps({"static_resources": {"clusters": [{"name": 1}]}}))
    envoy = EnvoyProcess(config_path, log_path=tmp_path / "envoy.log")
    with pytest.raises(RuntimeError, match="exited"):
        envoy.start(ready_timeout=30)
    assert envoy.pid is None


# ------------------------------------------------------------- the web app on the same origin


@pytest.fixture
@starts_servers
def web_gateway(
    tmp_path: Path, signing_key: rsa.RSAPrivateKey, descriptor: Path, backend: int
) -> Iterator[Gateway]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>mlplane</title>" + "x" * 2000)
    (dist / "assets" / "index-3f2a.js").write_text("console.log('app');" * 500)
    (dist / "favicon.svg").write_text("<svg/>")
    settings = _settings(tmp_path / "state", web_dir=dist, max_model_bytes=12345)
    _write_jwks(settings.jwks_file, signing_key)
    envoy, access_log = _start_gateway(tmp_path, settings, descriptor, backend)
    try:
        gw = Gateway(envoy, access_log, signing_key)
        yield gw
        gw.http.close()
    finally:
        envoy.stop()


def test_the_web_app_is_served_without_a_token(web_gateway: Gateway) -> None:
    http = web_gateway.http
    config = http.get("/config.json")
    assert config.status_code == 200
    assert config.json() == {"devSignIn": True, "oidc": None, "maxModelBytes": 12345}
    plain = http.get("/assets/index-3f2a.js", headers={"accept-encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/javascript") or plain.headers[
        "content-type"
    ].startswith("application/javascript")
    assert "immutable" in plain.headers["cache-control"]
    assert plain.text == "console.log('app');" * 500
    zipped = http.get("/assets/index-3f2a.js", headers={"accept-encoding": "gzip, br"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.text == plain.text  # httpx decodes it
    assert int(zipped.headers["content-length"]) < len(plain.content) / 10
    # Any other page of the app is index.html, revalidated on every load.
    for page in ("/", "/models/123", "/approvals"):
        response = http.get(page)
        assert response.status_code == 200, page
        assert response.text.startswith("<!doctype html>")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_api_stays_the_api_beside_the_web_app(web_gateway: Gateway) -> None:
    http = web_gateway.http
    assert http.get("/api/v1/models").status_code == 401  # still needs a token
    unknown = http.get("/api/v1/nothing", headers=web_gateway.auth([DS]))
    assert unknown.status_code == 404
    assert unknown.json()["details"][0]["reason"] == "UNKNOWN_PATH"
    assert http.post("/", content=b"x").status_code == 404  # pages are GET only


def test_with_a_real_issuer_the_app_is_told_how_to_sign_in(
    tmp_path: Path, descriptor: Path
) -> None:
    settings = _settings(
        tmp_path,
        jwt_jwks_url="https://idp.example/jwks",
        oidc_client_id="mlplane-web",
        oidc_authority="https://idp.example/",
    )
    config = web_config(settings)
    assert config["devSignIn"] is False
    assert config["oidc"] == {
        "authority": "https://idp.example/",
        "clientId": "mlplane-web",
        "scope": "openid",
    }


def test_service_connections_keep_small_windows(settings: Settings, descriptor: Path) -> None:
    """A stream whose client stopped reading holds at most 1 MiB of the one HTTP/2 connection
    to a service (64 MiB), not Envoy's default 256 MiB that lets a few fill it."""
    config = _render(settings, descriptor)
    for name in ("query", "models"):
        cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == name)
        options = cluster["typed_extension_protocol_options"][
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        ]["explicit_http_config"]["http2_protocol_options"]
        assert options["initial_stream_window_size"] == 1024 * 1024
        assert options["initial_connection_window_size"] == 64 * 1024 * 1024
