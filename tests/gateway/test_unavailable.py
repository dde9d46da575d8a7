"""A service the gateway cannot reach: the same JSON error as every other refusal.

A real Envoy rendered by gateway/envoy_config.py, in front of services that are not there:
one address where nothing listens (a service that is down or restarting) and one that
accepts connections and closes them at once (a service that crashes mid-connection).
REST callers get 503 with the `google.rpc.Status` JSON (reason `SERVICE_UNAVAILABLE`), gRPC
callers UNAVAILABLE with the same reason in `grpc-status-details-bin`; never Envoy's plain
`upstream connect error ...`. Every port is 0; the Envoy and the listener stop by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from mlplane.v1 import model_registry_pb2 as mr
from mlplane.v1 import model_registry_pb2_grpc as mr_grpc
from mlplane.v1 import query_service_pb2 as qs
from mlplane.v1 import query_service_pb2_grpc as qs_grpc

from gateway.envoy_config import render_envoy_config, write_envoy_config
from gateway.envoy_process import EnvoyProcess
from services.common.devkeys import ensure_dev_keys
from services.common.errors import error_info_from_trailers
from services.common.settings import Settings
from tests.conftest import private_tmp
from tests.tokens import Tokens

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR = ROOT / "generated" / "mlplane.pb"
DEADLINE = 20.0


class ClosingListener:
    """Accepts TCP connections and closes each at once: an upstream that resets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _unused_port() -> int:
    """A port nothing listens on: bound, then released (nothing in this test binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gateway:
    def __init__(self, envoy: EnvoyProcess, tokens: Tokens) -> None:
        self.envoy = envoy
        self.port = envoy.listener_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = tokens


@pytest.fixture(scope="module")
def closing() -> Iterator[ClosingListener]:
    listener = ClosingListener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture(scope="module")
def gateway(closing: ClosingListener) -> Iterator[Gateway]:
    root = private_tmp("mlplane-unavailable-")
    settings = Settings(state_dir=root / "state", web_dir=root / "no-web-app")
    ensure_dev_keys(settings)
    # The query service is down (nothing listens); the registry resets every connection.
    config = render_envoy_config(
        settings,
        query_address=("127.0.0.1", _unused_port()),
        models_address=("127.0.0.1", closing.port),
        descriptor_path=DESCRIPTOR,
        listen_address=("127.0.0.1", 0),
        admin_port=0,
    )
    config_path = root / "envoy.json"
    write_envoy_config(config_path, config)
    envoy = EnvoyProcess(config_path, log_path=root / "envoy.log")
    envoy.start(ready_timeout=30)
    pid = envoy.pid
    try:
        yield Gateway(envoy, Tokens(settings))
    finally:
        envoy.stop()  # by its PID: SIGTERM, then SIGKILL after 10 s
        shutil.rmtree(root, ignore_errors=True)
    assert pid is not None
    assert not _alive(pid), f"Envoy {pid} left behind"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_rest_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json", response.text
    body = json.loads(response.text)
    assert body["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    (info,) = body["details"]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("SERVICE_UNAVAILABLE", "gateway.mlplane")
    assert "upstream connect error" not in response.text
    assert body["message"].startswith("the service behind the gateway is not available")
    assert not [h for h in response.headers if h.lower().startswith("grpc-")], response.headers


def _assert_grpc_unavailable(error: grpc.RpcError) -> None:
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    assert error.details().startswith("the service behind the gateway is not available")
    info = error_info_from_trailers(error.trailing_metadata())
    assert info is not None, error.trailing_metadata()
    assert (info.reason, info.domain) == ("SERVICE_UNAVAILABLE", "gateway.mlplane")


def test_down_service_is_503_json_over_rest(gateway: Gateway) -> None:
    token = gateway.tokens.valid("data_scientist")
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=DEADLINE) as http:
        response = http.get("/api/v1/query/assets", headers={"authorization": f"Bearer {token}"})
    _assert_rest_unavailable(response)


def test_down_service_is_unavailable_with_reason_over_grpc(gateway: Gateway) -> None:
    token = gateway.tokens.valid("data_scientist")
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            qs_grpc.QueryServiceStub(channel).ListAssets(
                qs.ListAssetsRequest(),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=DEADLINE,
            )
    _assert_grpc_unavailable(caught.value)


def _wait_for_a_reset(closing: ClosingListener) -> None:
    # Envoy's health checker or the first request reaches the listener: it does reset.
    deadline = time.monotonic() + DEADLINE
    while closing.accepted == 0:
        assert time.monotonic() < deadline, "Envoy never connected to the resetting upstream"
        time.sleep(0.05)


def test_resetting_service_is_503_json_over_rest(
    gateway: Gateway, closing: ClosingListener
) -> None:
    token = gateway.tokens.valid("data_scientist")
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=DEADLINE) as http:
        response = http.get("/api/v1/models", headers={"authorization": f"Bearer {token}"})
        _assert_rest_unavailable(response)
        # A REST POST with a JSON body as well (the transcoder has turned it into gRPC).
        response = http.post(
            "/api/v1/models/00000000-0000-4000-8000-000000000000/approvals",
            json={"comment": "please"},
            headers={"authorization": f"Bearer {token}"},
        )
        _assert_rest_unavailable(response)
    _wait_for_a_reset(closing)


def test_resetting_service_is_unavailable_with_reason_over_grpc(
    gateway: Gateway, closing: ClosingListener
) -> None:
    token = gateway.tokens.valid("data_scientist")
    with grpc.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            mr_grpc.ModelRegistryStub(channel).ListModels(
                mr.ListModelsRequest(),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=DEADLINE,
            )
    _assert_grpc_unavailable(caught.value)
    _wait_for_a_reset(closing)


def test_gateway_itself_stays_up(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=DEADLINE) as http:
        assert http.get("/healthz").status_code == 200
    assert gateway.envoy.running()
