"""The gateway's own metrics for a scraper (`MLPLANE_GATEWAY_STATS_PORT`, the chart's
`gateway.statsPort`): a listener that answers `GET /stats/prometheus` from Envoy's admin and
nothing else. The admin port also stops Envoy (`/quitquitquit`) and dumps its configuration,
so every other path, method and path trick must end at a 404 or a 400, never at the admin."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.envoy_config import (
    STATS_LISTENER_NAME,
    STATS_PATH,
    render_envoy_config,
    write_envoy_config,
)
from gateway.envoy_process import EnvoyProcess
from services.common.devkeys import ensure_dev_keys
from services.common.settings import Settings
from tests.conftest import starts_servers

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR = ROOT / "generated" / "mlplane.pb"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _render(settings: Settings, stats_port: int | None, admin_port: int = 0) -> dict[str, object]:
    return render_envoy_config(
        settings,
        query_address=("127.0.0.1", 1),
        models_address=("127.0.0.1", 2),
        descriptor_path=DESCRIPTOR,
        listen_address=("127.0.0.1", 0),
        admin_port=admin_port,
        stats_port=stats_port,
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("stats") / "state"
    settings = Settings(state_dir=state, web_dir=state / "no-web-app")
    ensure_dev_keys(settings)
    return settings


@pytest.fixture(scope="module")
@starts_servers
def stats_port(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    work = tmp_path_factory.mktemp("envoy-stats")
    config = work / "envoy.json"
    write_envoy_config(config, _render(settings, stats_port=0, admin_port=_free_port()))
    envoy = EnvoyProcess(config, log_path=work / "envoy.log")
    envoy.start()
    try:
        yield envoy.listener_port(STATS_LISTENER_NAME)
    finally:
        envoy.stop()


def _ask(port: int, method: str, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_no_stats_listener_unless_asked(settings: Settings) -> None:
    listeners = _render(settings, stats_port=None)["static_resources"]  # type: ignore[index]
    assert [listener["name"] for listener in listeners["listeners"]] == ["mlplane_gateway"]


def test_the_listener_serves_envoys_prometheus_metrics(stats_port: int) -> None:
    status, body = _ask(stats_port, "GET", STATS_PATH)
    assert status == 200
    assert b"# TYPE envoy_" in body
    assert b"envoy_cluster_upstream_rq_total" in body or b"envoy_server_uptime" in body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/quitquitquit"),
        ("GET", "/quitquitquit"),
        ("GET", "/config_dump"),
        ("GET", "/clusters"),
        ("GET", "/stats"),
        ("POST", STATS_PATH),
        ("GET", "/stats/prometheus/../../quitquitquit"),
        ("GET", "/stats/prometheus/..%2F..%2Fquitquitquit"),
        ("GET", "/stats%2Fprometheus"),
        ("GET", "//config_dump"),
    ],
)
def test_nothing_else_of_the_admin_is_let_out(stats_port: int, method: str, path: str) -> None:
    status, body = _ask(stats_port, method, path)
    assert status in (400, 404), (status, body[:200])
    assert b"envoy_" not in body
    # Still running: no path stopped it.
    assert _ask(stats_port, "GET", STATS_PATH)[0] == 200
