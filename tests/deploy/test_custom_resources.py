"""The chart's custom resources (ServiceMonitor, PrometheusRule; kubernetes-validate knows only
Kubernetes' own kinds) against the schemas of their CustomResourceDefinitions, and the Grafana
dashboard ConfigMap: each behind its switch, each wrapping the file the metrics work keeps in
deploy/helm/mlplane/files/ unchanged.

The CRDs are vendored under tests/deploy/crds/ (prometheus-operator v0.93.0, source and commit
in each file's header). A CRD's schema is structural OpenAPI: unknown fields are pruned by the
API server, not refused, so the validator here refuses them (as `kubectl --validate=strict`
would) to catch a misspelt field that would silently do nothing.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    Manifest,
    by_kind,
    component,
    render,
    render_set,
)

pytestmark = pytest.mark.stack

CRDS = Path(__file__).resolve().parent / "crds"
ALL_ON = (
    "metrics.serviceMonitor.enabled=true",
    "metrics.prometheusRule.enabled=true",
    "metrics.grafanaDashboard.enabled=true",
)

Json = dict[str, Any]


def _strict(node: Any) -> Any:
    """OpenAPI v3 (a CRD's structural schema) as a JSON Schema that refuses unknown fields."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items() if not key.startswith("x-kubernetes")}
    if node.get("nullable"):
        out.pop("nullable")
        if "type" in out:
            out["type"] = [out["type"], "null"]
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern:
        # Go's RE2 takes a flag group anywhere; Python only at the start of the pattern.
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if node.get("x-kubernetes-int-or-string"):
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    plural = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}[kind]
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{plural}.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"]
    assert version["storage"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # Kubernetes' own ObjectMeta rules for what the chart sets there.
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "spec"})
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(kind: str, manifest: Manifest) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(kind).iter_errors(manifest)
    ]


def _one(manifests: list[Manifest], kind: str) -> Manifest:
    (found,) = by_kind(manifests, kind)
    return found


@pytest.fixture(scope="module")
def all_on() -> list[Manifest]:
    return render((), ALL_ON)


def test_switches_are_off_by_default() -> None:
    manifests = render_set("default")
    assert not by_kind(manifests, "ServiceMonitor")
    assert not by_kind(manifests, "PrometheusRule")
    assert not [
        m for m in by_kind(manifests, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
@pytest.mark.parametrize("value_set", ["all-switches-on", "external-services+oidc"])
def test_custom_resources_match_their_crd(
    kind: str, value_set: str, all_on: list[Manifest]
) -> None:
    manifests = all_on if value_set == "all-switches-on" else render_set(value_set)
    manifest = _one(manifests, kind)
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert not _errors(kind, manifest)


def test_the_crd_validator_refuses_mistakes(all_on: list[Manifest]) -> None:
    monitor = copy.deepcopy(_one(all_on, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert any("'intervall' was unexpected" in e for e in _errors("ServiceMonitor", monitor))
    rule = copy.deepcopy(_one(all_on, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["for"] = 300
    assert _errors("PrometheusRule", rule)
    del rule["spec"]["groups"][0]["name"]
    assert any("'name' is a required property" in e for e in _errors("PrometheusRule", rule))


def test_the_prometheus_rule_is_the_rule_file(all_on: list[Manifest]) -> None:
    rule = _one(all_on, "PrometheusRule")
    rule_file = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == {"groups": rule_file["groups"]}
    labels = render((), (*ALL_ON, "metrics.prometheusRule.labels.release=kps"))
    assert _one(labels, "PrometheusRule")["metadata"]["labels"]["release"] == "kps"


def _monitored(manifests: list[Manifest]) -> list[Manifest]:
    """The Services the ServiceMonitor selects."""
    selector = _one(manifests, "ServiceMonitor")["spec"]["selector"]
    selected = []
    for service in by_kind(manifests, "Service"):
        labels = service["metadata"]["labels"]
        if selector["matchLabels"].items() <= labels.items() and all(
            labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"]
        ):
            selected.append(service)
    return selected


def test_the_service_monitor_scrapes_the_services_the_worker_and_the_gateway(
    all_on: list[Manifest],
) -> None:
    monitor = _one(all_on, "ServiceMonitor")
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selected = _monitored(all_on)
    assert sorted(component(s) for s in selected) == [
        "gateway-metrics",
        "models",
        "query",
        "validation",
    ]
    services_endpoint, gateway_endpoint = spec["endpoints"]
    assert (services_endpoint["path"], gateway_endpoint["path"]) == (
        "/metrics",
        "/stats/prometheus",
    )
    # Each endpoint keeps only its own Services: the services' /metrics, Envoy's statistics.
    (drop,) = services_endpoint["relabelings"]
    (keep,) = gateway_endpoint["relabelings"]
    assert (drop["action"], drop["regex"]) == ("drop", "gateway-metrics")
    assert (keep["action"], keep["regex"]) == ("keep", "gateway-metrics")
    for service in selected:
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    # The gateway's metrics Service is headless and reaches the gateway pods' stats port.
    (gateway,) = [s for s in selected if component(s) == "gateway-metrics"]
    assert gateway["spec"]["clusterIP"] == "None"
    assert gateway["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    # The validation worker's Service is headless and has nothing but its metrics port: the
    # gateway never calls it.
    (worker,) = [s for s in selected if component(s) == "validation"]
    assert worker["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in worker["spec"]["ports"]] == ["metrics"]
    # The alerts find the targets by job, which prometheus-operator names after the Service
    # (MlplaneTargetDown matches jobs containing "mlplane").
    assert sorted(s["metadata"]["name"] for s in selected) == [
        f"{RELEASE}-gw-metrics",
        f"{RELEASE}-models",
        f"{RELEASE}-query",
        f"{RELEASE}-validation",
    ]
    for service in selected:
        assert "mlplane" in service["metadata"]["name"]


def test_the_service_monitor_leaves_out_a_disabled_worker() -> None:
    manifests = render((), (*ALL_ON, "validation.enabled=false"))
    (expression,) = _one(manifests, "ServiceMonitor")["spec"]["selector"]["matchExpressions"]
    assert "validation" not in expression["values"]
    assert sorted(component(s) for s in _monitored(manifests)) == [
        "gateway-metrics",
        "models",
        "query",
    ]
    assert not _errors("ServiceMonitor", _one(manifests, "ServiceMonitor"))


def test_the_dashboard_is_the_dashboard_file(all_on: list[Manifest]) -> None:
    (dashboard,) = [
        m for m in by_kind(all_on, "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard")
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = dashboard["data"].values()
    file = (CHART / "files" / "grafana-dashboard.json").read_text()
    assert json.loads(text) == json.loads(file)
    assert text.strip() == file.strip()
    elsewhere = render((), (*ALL_ON, "metrics.grafanaDashboard.namespace=monitoring"))
    (moved,) = [
        m for m in by_kind(elsewhere, "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    assert moved["metadata"]["namespace"] == "monitoring"
