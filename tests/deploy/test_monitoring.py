"""The monitoring the chart ships: Prometheus rules checked and unit-tested by promtool, a
Grafana dashboard on a datasource variable, and every metric (and label) the dashboard and
the alerts use exported by a running stack's /metrics.

promtool comes from Debian's `prometheus` package; `scripts/ensure_deploy_tools.sh` puts it in
.tools/bin. Without it these tests fail (they never skip): CI must run them.

PromQL is read with a small tokenizer (`promql_names`), not a full parser: strings, label
matchers and ranges are recognised first; an identifier followed by `(` is a function (or
`by`/`without`/`on`/`ignoring`/`group_left`/`group_right`, whose parentheses list labels);
keywords are skipped; every other identifier is a metric name. That covers the PromQL the
dashboard and rules are written in (tested below on the constructs they use).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.models.onnx_models import linear_model
from tests.polling import poll_until
from tests.stack_runner import RunningStack

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "deploy" / "helm" / "mlplane" / "files"
RULES = FILES / "prometheus-rules.yaml"
ALERT_TESTS = FILES / "alerts-tests.yaml"
DASHBOARD = FILES / "grafana-dashboard.json"

# Labels Prometheus or a ServiceMonitor adds to every series of a target (not in /metrics).
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
)
# Series Prometheus makes itself for every target.
SYNTHESIZED: dict[str, frozenset[str]] = {"up": frozenset()}


def promtool() -> str:
    local = ROOT / ".tools" / "bin" / "promtool"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing, so the alerting rules cannot be checked: run "
            "`bash scripts/ensure_deploy_tools.sh` (installs it into .tools/bin) or "
            "`apt-get install --no-install-recommends prometheus` (Debian ships promtool in it)"
        )
    return found


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=FILES, capture_output=True, text=True, timeout=60, check=False
    )


# --- PromQL: which metrics and labels an expression uses ------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<matchers>\{(?:[^}"'`]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)*\})
    |(?P<range>\[[^\]]*\])
    |(?P<var>\$\{[^}]*\}|\$\w+)
    |(?P<number>\d[\w.+-]*)
    |(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<space>\s+)
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)  # followed by `(`, or by `by (…)` / `without (…)` first
_KEYWORDS = _AGGREGATIONS | {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}


@dataclass
class Uses:
    selectors: list[tuple[str, frozenset[str]]] = field(default_factory=list)  # name, matched
    grouping: set[str] = field(default_factory=set)  # labels of by (…), on (…), …


def promql_names(expr: str) -> Uses:
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"]
    uses = Uses()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in _GROUPING and after == ("other", "("):
            i += 2
            while i < len(tokens) and tokens[i] != ("other", ")"):
                if tokens[i][0] == "ident":
                    uses.grouping.add(tokens[i][1])
                i += 1
        elif kind == "ident" and after != ("other", "(") and text not in _KEYWORDS:
            labels: frozenset[str] = frozenset()
            if after[0] == "matchers":
                labels = frozenset(_MATCHER.findall(_strip_strings(after[1])))
            uses.selectors.append((text, labels))
        i += 1
    return uses


def _strip_strings(text: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', text)


def test_promql_names_reads_the_constructs_in_use() -> None:
    uses = promql_names(
        "histogram_quantile(0.95, sum by (grpc_method, le) (rate(grpc_server_handling_seconds_"
        'bucket{namespace=~"$namespace", grpc_code!="OK", grpc_service=~"a{b}|c"}[$__rate_'
        'interval]))) > 0.2 and on (job) up{job=~".*x.*"} == 0 or vector(1) / '
        "sum(mlplane_x_total offset 5m) without (pod) * 1e6 + max without (instance) (mlplane_y)"
    )
    assert uses.selectors == [
        (
            "grpc_server_handling_seconds_bucket",
            frozenset({"namespace", "grpc_code", "grpc_service"}),
        ),
        ("up", frozenset({"job"})),
        ("mlplane_x_total", frozenset()),
        ("mlplane_y", frozenset()),
    ]
    assert uses.grouping == {"grpc_method", "le", "job", "pod", "instance"}


# --- what the monitoring files use ------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}, "the chart wraps this file's groups in a PrometheusRule"
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<expr>.*),\s*(?P<label>\w+)\s*\)\s*$", re.S)


def _variable_queries() -> list[tuple[str, str]]:
    """(expression, label) of each `label_values(expression, label)` variable."""
    found = []
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(query)
        assert match, f"variable {variable['name']}: expected label_values(…), got {query}"
        found.append((match["expr"], match["label"]))
    return found


def _all_exprs() -> list[str]:
    return (
        [str(rule["expr"]) for rule in _rules()]
        + _dashboard_exprs()
        + [expr for expr, _ in _variable_queries()]
    )


# --- promtool ---------------------------------------------------------------------------------


@pytest.mark.stack
def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.stack
def test_alert_unit_tests_pass() -> None:
    result = _promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts == {
        "MlplaneGrpcServerErrorRatioHigh",
        "MlplaneModelMetadataLatencyHigh",
        "MlplaneOutboxEventStale",
        "MlplaneValidationQueueStale",
        "MlplaneTargetDown",
    }
    tests = yaml.safe_load(ALERT_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == alerts, f"never seen firing: {alerts - firing}"
    assert quiet == alerts, f"never seen quiet: {alerts - quiet}"
    for rule in _rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


# --- the dashboard ----------------------------------------------------------------------------


def test_dashboard_is_on_a_datasource_variable_and_shows_what_operators_need() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard["panels"])}) == len(
        list(_panels(dashboard["panels"]))
    ), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    exprs = "\n".join(_dashboard_exprs())
    # Rate, errors and P95 per method; upload MB/s; export rows/s; the outbox backlog.
    for needed in (
        "sum by (grpc_service, grpc_method) (rate(grpc_server_handled_total",
        'grpc_code!="OK"',
        "histogram_quantile(0.95, sum by (grpc_service, grpc_method, le)",
        "rate(mlplane_model_upload_bytes_total",
        "rate(mlplane_export_rows_total",
        "mlplane_outbox_pending_events",
        "rate(mlplane_validations_total",
        "mlplane_validation_seconds_bucket",
    ):
        assert needed in exprs, needed
    units = {p["title"]: p["fieldConfig"]["defaults"]["unit"] for p in panels}
    assert units["Upload throughput"] == "Bps"  # shown as MB/s


# --- a running stack exports everything they use ----------------------------------------------


def _traffic(stack: RunningStack) -> None:
    """A little of everything: an upload, its validation by the stack's worker, its submission
    and approval, reads, an export."""

    alice = stack.tokens.headers("data_scientist", subject="alice")
    bob = stack.tokens.headers("model_approver", subject="bob")
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as http:
        uploaded = http.post(
            "/api/v1/models",
            data={"name": f"metrics-{uuid.uuid4().hex[:8]}"},
            files={"file": ("m.onnx", linear_model(4))},
            headers=alice,
        )
        assert uploaded.status_code == 201, uploaded.text
        model_id = uploaded.json()["modelId"]
        refused = http.post(
            "/api/v1/models",
            data={"name": f"metrics-{uuid.uuid4().hex[:8]}"},
            files={"file": ("m.onnx", b"PK\x03\x04 a zip, not a model")},
            headers=alice,
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["details"][0]["reason"] == "NOT_ONNX", refused.text
        assert http.get(f"/api/v1/models/{model_id}", headers=alice).status_code == 200
        # Approval needs a passed validation: wait for the worker's report.
        report: dict[str, Any] = {}

        def validated() -> bool:
            nonlocal report
            answer = http.get(f"/api/v1/models/{model_id}/versions/1/validation", headers=alice)
            assert answer.status_code == 200, answer.text
            report = answer.json()
            return report.get("state") in ("PASSED", "FAILED")

        poll_until(validated, f"validation of {model_id}", timeout=60)
        assert report["state"] == "PASSED", report
        submitted = http.post(f"/api/v1/models/{model_id}/approvals", json={}, headers=alice)
        assert submitted.status_code == 202, submitted.text
        approval_id = submitted.json()["approvalId"]
        approved = http.post(f"/api/v1/approvals/{approval_id}:approve", json={}, headers=bob)
        assert approved.status_code == 200, approved.text
        end = datetime.now(UTC).replace(microsecond=0)
        window = {
            "assetId": "pump-001",
            "startTime": (end - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"),
            "endTime": end.isoformat().replace("+00:00", "Z"),
        }
        exported = http.get("/api/v1/query/history:csv", params=window, headers=alice)
        assert exported.status_code == 200, exported.text


Scraped = dict[str, dict[frozenset[tuple[str, str]], float]]  # name -> labels -> value


def _scrape(stack: RunningStack, service: str) -> Scraped:
    port = stack.info[f"{service}_metrics_port"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    series: Scraped = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(sample.labels.items())
            series.setdefault(sample.name, {})[labels] = float(sample.value)
    return series


def test_every_metric_the_dashboard_and_alerts_use_is_exported(stack: RunningStack) -> None:
    _traffic(stack)
    query, models = _scrape(stack, "query"), _scrape(stack, "models")
    worker = _scrape(stack, "validation")
    exported: dict[str, set[str]] = {}
    for scraped in (query, models, worker):
        for name, samples in scraped.items():
            exported.setdefault(name, set()).update(k for labels in samples for k, _ in labels)
    labels_of = {name: frozenset(labels) for name, labels in exported.items()} | SYNTHESIZED

    missing: list[str] = []
    used: set[str] = set()
    for expr in _all_exprs():
        uses = promql_names(expr)
        in_expr: set[str] = set()
        for name, matched in uses.selectors:
            used.add(name)
            if name not in labels_of:
                missing.append(f"metric {name} (in {expr!r})")
                continue
            in_expr |= labels_of[name]
            for label in matched - labels_of[name] - TARGET_LABELS:
                missing.append(f"label {label} of {name} (in {expr!r})")
        for label in uses.grouping - in_expr - TARGET_LABELS:
            missing.append(f"label {label} grouped by (in {expr!r})")
    for expr, label in _variable_queries():
        names = [name for name, _ in promql_names(expr).selectors]
        if (
            not any(label in labels_of.get(name, ()) for name in names)
            and label not in TARGET_LABELS
        ):
            missing.append(f"label {label} of variable query {expr!r}")
    assert not missing, "used but not exported:\n" + "\n".join(missing)
    assert used >= {
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "mlplane_model_upload_bytes_total",
        "mlplane_export_rows_total",
        "mlplane_outbox_pending_events",
        "mlplane_outbox_oldest_pending_event_age_seconds",
        "mlplane_validations_total",
        "mlplane_validation_seconds_bucket",
        "up",
    }

    # The traffic moved the domain counters and the gRPC series, with go-grpc-prometheus's labels.
    def value(
        scraped: dict[str, dict[frozenset[tuple[str, str]], float]], name: str, **labels: str
    ) -> float:
        return scraped[name].get(frozenset(labels.items()), 0.0)

    assert value(models, "mlplane_model_uploads_total", outcome="ok") >= 1
    assert value(models, "mlplane_model_upload_bytes_total", outcome="ok") >= len(linear_model(4))
    assert value(models, "mlplane_model_uploads_total", outcome="NOT_ONNX") >= 1
    assert value(models, "mlplane_approval_actions_total", action="approve", outcome="ok") >= 1
    assert value(worker, "mlplane_validations_total", state="PASSED", reason="") >= 1
    assert value(worker, "mlplane_validation_seconds_count") >= 1
    assert value(query, "mlplane_exports_total", encoding="csv", outcome="completed") >= 1
    assert value(query, "mlplane_db_pool_max_connections", pool="query") > 0
    assert value(models, "mlplane_db_pool_max_connections", pool="registry") > 0
    get_model = {
        "grpc_type": "unary",
        "grpc_service": "mlplane.v1.ModelRegistry",
        "grpc_method": "GetModel",
    }
    assert value(models, "grpc_server_handled_total", **get_model, grpc_code="OK") >= 1
    assert value(models, "grpc_server_started_total", **get_model) >= 1
    assert value(models, "grpc_server_msg_sent_total", **get_model) >= 1
    upload = {
        "grpc_type": "client_stream",
        "grpc_service": "mlplane.v1.ModelRegistry",
        "grpc_method": "UploadModelMultipart",
    }
    assert value(models, "grpc_server_handled_total", **upload, grpc_code="OK") >= 1
    assert value(models, "grpc_server_msg_received_total", **upload) >= 1
    export = {
        "grpc_type": "server_stream",
        "grpc_service": "mlplane.v1.QueryService",
        "grpc_method": "ExportHistoryCsv",
    }
    assert value(query, "grpc_server_handled_total", **export, grpc_code="OK") >= 1
