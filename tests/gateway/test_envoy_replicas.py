"""The gateway in front of several replicas of a service: `mlplane up --replicas N` lists
their ports, the chart names a headless Service; both get the same cluster (balancing,
health checks, retry budget) and every call the retry policy its kind allows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.envoy_config import (
    MODEL_REGISTRY,
    QUERY_SERVICE,
    RETRY_ON_READS,
    RETRY_ON_WRITES,
    is_read,
    render_envoy_config,
)
from gateway.http_rules import load_rpc_rules
from mlplane_client.client import RETRIED_READS
from services.common.devkeys import ensure_dev_keys
from services.common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR = ROOT / "generated" / "mlplane.pb"
Json = dict[str, Any]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("replicas") / "state"
    settings = Settings(state_dir=state, web_dir=state / "no-web-app")
    ensure_dev_keys(settings)
    return settings


def _render(settings: Settings, query: Any, models: Any) -> Json:
    return render_envoy_config(
        settings,
        query_address=query,
        models_address=models,
        descriptor_path=DESCRIPTOR,
        listen_address=("127.0.0.1", 0),
        admin_port=0,
    )


def _cluster(config: Json, name: str) -> Json:
    found: Json = next(c for c in config["static_resources"]["clusters"] if c["name"] == name)
    return found


def _endpoints(cluster: Json) -> list[tuple[str, int]]:
    (locality,) = cluster["load_assignment"]["endpoints"]
    return [
        (
            e["endpoint"]["address"]["socket_address"]["address"],
            e["endpoint"]["address"]["socket_address"]["port_value"],
        )
        for e in locality["lb_endpoints"]
    ]


def _routes(config: Json) -> list[Json]:
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes: list[Json] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return routes


def test_replicas_are_endpoints_of_one_cluster_wired_as_the_chart_wires_pods(
    settings: Settings,
) -> None:
    local = _render(
        settings,
        [("127.0.0.1", 50051), ("127.0.0.1", 41001)],
        [("0.0.0.0", 50052), ("0.0.0.0", 41002), ("0.0.0.0", 41003)],  # noqa: S104 - bound by services
    )
    # What the chart's gateway pod renders: one headless Service name per backend.
    chart = _render(
        settings,
        ("mlplane-query.ns.svc.cluster.local", 50051),
        ("mlplane-models.ns.svc.cluster.local", 50052),
    )
    single = _render(settings, ("127.0.0.1", 50051), ("127.0.0.1", 50052))
    for name in ("query", "models"):
        mine, theirs, one = (_cluster(c, name) for c in (local, chart, single))
        assert (mine["type"], theirs["type"], one["type"]) == ("STATIC", "STRICT_DNS", "STATIC")
        # Everything but how the hosts are found is the same: balancing, health checks (gRPC
        # health on the service's name), connection options, retry budget.
        for cluster in (theirs, one):
            assert {k: v for k, v in mine.items() if k not in ("type", "load_assignment")} == {
                k: v for k, v in cluster.items() if k not in ("type", "load_assignment")
            }
        assert mine["lb_policy"] == "ROUND_ROBIN"
        (check,) = mine["health_checks"]
        service = QUERY_SERVICE if name == "query" else MODEL_REGISTRY
        assert check["grpc_health_check"] == {"service_name": service}
        (threshold,) = mine["circuit_breakers"]["thresholds"]
        assert threshold["retry_budget"]["min_retry_concurrency"] >= 16  # the tests' load
    assert _endpoints(_cluster(local, "query")) == [("127.0.0.1", 50051), ("127.0.0.1", 41001)]
    # Services bound to every interface are reached over loopback.
    assert _endpoints(_cluster(local, "models")) == [
        ("127.0.0.1", 50052),
        ("127.0.0.1", 41002),
        ("127.0.0.1", 41003),
    ]
    with pytest.raises(ValueError, match="at least one"):
        _render(settings, [], ("127.0.0.1", 50052))


def test_each_call_gets_the_retry_policy_its_kind_allows(settings: Settings) -> None:
    routes = _routes(_render(settings, ("127.0.0.1", 50051), ("127.0.0.1", 50052)))
    by_path = {r["match"]["path"]: r for r in routes if "path" in r["match"] and "route" in r}
    prefixes = {r["match"]["prefix"]: r for r in routes if r.get("name") in ("query", "models")}
    rules = load_rpc_rules(DESCRIPTOR, (QUERY_SERVICE, MODEL_REGISTRY))
    reads = {rule.grpc_path for rule in rules if is_read(rule)}
    uploads = {rule.grpc_path for rule in rules if rule.client_streaming}
    # Every read the SDK retries (its service config's RETRIED_READS) the gateway retries
    # after a reset as well; the gateway's other reads are ones the SDK has no method for.
    assert {f"/{method}" for method in RETRIED_READS} <= reads
    assert "/mlplane.v1.ModelRegistry/GetModel" in reads
    assert "/mlplane.v1.QueryService/ExportHistory" in reads
    assert uploads == {
        "/mlplane.v1.ModelRegistry/UploadModel",
        "/mlplane.v1.ModelRegistry/UploadModelMultipart",
    }
    writes = {rule.grpc_path for rule in rules} - reads - uploads
    assert "/mlplane.v1.ModelRegistry/SubmitForApproval" in writes
    assert "/mlplane.v1.ModelRegistry/ApproveModelVersion" in writes
    for path in reads:
        policy = by_path[path]["route"]["retry_policy"]
        assert policy["retry_on"] == RETRY_ON_READS
        assert "reset" in policy["retry_on"].split(",")
        # To another replica when there is one.
        (predicate,) = policy["retry_host_predicate"]
        assert predicate["name"] == "envoy.retry_host_predicates.previous_hosts"
    for path in uploads:
        assert "retry_policy" not in by_path[path]["route"]
    for path in writes:
        assert path not in by_path  # the service's prefix route takes them
        service = path.split("/")[1]
        policy = prefixes[f"/{service}/"]["route"]["retry_policy"]
        assert policy["retry_on"] == RETRY_ON_WRITES
        # Only failures that prove the call never reached a service.
        assert set(policy["retry_on"].split(",")) == {
            "connect-failure",
            "refused-stream",
            "reset-before-request",
        }
    # Method routes come before their service's prefix (the first match wins).
    names = [r.get("name") for r in routes]
    for path, route in by_path.items():
        cluster = route["route"]["cluster"]
        assert names.index(route["name"]) < names.index(cluster), path
