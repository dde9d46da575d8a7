"""The Helm chart (deploy/helm/mlplane): `helm lint` with its values schema, `helm template`
with each value set through `kubernetes-validate --strict`, and what the manifests must say
(issue #15): hardened pods, probes on the gRPC health service, HPA and PDB per component,
NetworkPolicies, Secrets by reference, the IRSA role, the migration hook, settings that exist.
The validation worker's own checks (issue #16) are in test_validation_worker.py; the checks
here that cover every workload cover it too.

No cluster runs here: these are the offline checks (deploy/README.md says what they leave out).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from gateway.envoy_config import MODEL_REGISTRY, QUERY_SERVICE
from services.common.settings import Settings
from tests.deploy.chart import (
    CHART,
    RELEASE,
    VALUE_SETS,
    by_kind,
    component,
    config_env,
    containers,
    helm,
    one,
    pod_spec,
    render_set,
    render_text,
    run,
    tool,
    values_of,
    workloads,
)

pytestmark = pytest.mark.stack

# Kubernetes releases the manifests are checked against: the chart's minimum (Chart.yaml
# kubeVersion) and the newest the pinned kubernetes-validate knows (its default).
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}  # checked in test_custom_resources.py
COMPONENTS = ("gateway", "query", "models")
GRPC_SERVICES = {"query": QUERY_SERVICE, "models": MODEL_REGISTRY}


def name(component_name: str) -> str:
    return f"{RELEASE}-{component_name}"


# --------------------------------------------------------------------------- lint and schema


def test_chart_version_requirement_matches_the_checked_releases() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={KUBERNETES_VERSIONS[0]}-0"


@pytest.mark.parametrize("value_set", ["default", "external-services+oidc", "switches-off"])
def test_helm_lint_strict(value_set: str) -> None:
    files = [arg for f in VALUE_SETS[value_set] for arg in ("--values", str(f))]
    result = helm("lint", "--strict", str(CHART), *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("query.replicas=3", "additional properties 'replicas' not allowed"),
        ("models.maxModelBytes=3000000000", "/models/maxModelBytes"),
        ("auth.jwksUrl=ftp://issuer.example.com/keys", "/auth/jwksUrl"),
        ("gateway.service.type=ExternalName", "/gateway/service/type"),
        ("serviceAccount.irsaRoleArn=role/mlplane", "/serviceAccount/irsaRoleArn"),
        ("networkPolicy.postgres.ports=null", "/networkPolicy/postgres"),
        ("validation.replicas=2", "additional properties 'replicas' not allowed"),
        ("validation.concurrency=0", "/validation/concurrency"),
        ("validation.concurrency=17", "/validation/concurrency"),
        ("validation.sandbox.memoryBytes=1048576", "/validation/sandbox/memoryBytes"),
        ("validation.sandbox.wallSeconds=0", "/validation/sandbox/wallSeconds"),
        ("validation.sandbox.cpuSeconds=1.5", "/validation/sandbox/cpuSeconds"),
        ("validation.sandbox.network=off", "additional properties 'network' not allowed"),
        ("validation.leaseSeconds=1", "/validation/leaseSeconds"),
        ("validation.maxAttempts=0", "/validation/maxAttempts"),
        ("validation.storeRetries=-1", "/validation/storeRetries"),
        ("validation.resources.limits.memory=lots", "/validation/resources/limits/memory"),
        ("serviceAccount.validationIrsaRoleArn=role/x", "/serviceAccount/validationIrsaRoleArn"),
    ],
)
def test_values_schema_refuses(assignment: str, complaint: str) -> None:
    result = helm("lint", str(CHART), "--set", assignment)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_grace_period_must_cover_the_drain() -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--set", "query.terminationGracePeriodSeconds=20"
    )
    assert result.returncode != 0
    assert "query.terminationGracePeriodSeconds (20) must exceed" in result.stderr


# Values whose keys are Kubernetes' own fields (or repeat a documented shape): described as a
# whole in deploy/README.md, not key by key.
_DESCRIBED_AS_A_WHOLE = re.compile(
    r"^(podSecurityContext|containerSecurityContext|networkPolicy\.\w+|"
    r"(\w+\.)?(image|resources|renderResources|autoscaling|podDisruptionBudget))$"
)


def _value_paths(node: dict[str, Any], prefix: str = "", depth: int = 3) -> list[str]:
    paths = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        paths.append(path)
        if isinstance(value, dict) and depth > 1 and not _DESCRIBED_AS_A_WHOLE.match(path):
            paths += _value_paths(value, f"{path}.", depth - 1)
    return paths


def test_every_value_is_in_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            resolved: dict[str, Any] = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
            return resolved
        return node

    def walk(values: dict[str, Any], node: dict[str, Any], prefix: str) -> None:
        node = resolve(node)
        for key, value in values.items():
            if "properties" not in node:
                return  # a free-form map (labels, annotations, selectors)
            assert key in node["properties"], f"{prefix}{key} is not in values.schema.json"
            assert node.get("additionalProperties") is False, f"{prefix} is not strict"
            if isinstance(value, dict):
                walk(value, node["properties"][key], f"{prefix}{key}.")

    walk(yaml.safe_load((CHART / "values.yaml").read_text()), schema, "")


def test_every_value_is_described_in_the_readme() -> None:
    readme = (CHART.parents[2] / "deploy" / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [p for p in _value_paths(values) if f"`{p}`" not in readme]
    assert not missing, f"not described in deploy/README.md: {missing}"


# --------------------------------------------------------------------------- kubernetes-validate


def test_manifests_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    files = []
    for value_set in VALUE_SETS:
        path = tmp_path / f"{value_set}.yaml"
        path.write_text(render_text(VALUE_SETS[value_set]))
        files.append(str(path))
    for version in KUBERNETES_VERSIONS:
        result = run(
            tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, *files
        )
        lines = (result.stdout + result.stderr).splitlines()
        problems = [
            line
            for line in lines
            if not line.startswith("INFO")
            and not any(f"kind {kind} with api version" in line for kind in CUSTOM_KINDS)
        ]
        assert not problems, "\n".join(problems)
        assert result.returncode == 0, "\n".join(lines[-20:])
        passed = [line for line in lines if " passed for resource " in line]
        rendered = sum(
            1
            for value_set in VALUE_SETS
            for m in render_set(value_set)
            if m["kind"] not in CUSTOM_KINDS
        )
        assert len(passed) == rendered, f"{len(passed)} of {rendered} objects checked ({version})"


def test_strict_validation_catches_an_unknown_field(tmp_path: Path) -> None:
    # kubernetes-validate's strict schemas refuse what Kubernetes would silently drop.
    text = render_text(VALUE_SETS["default"]).replace(
        "enableServiceLinks: false", "enableServiceLinks: false\n      hostname2: x", 1
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = run(tool("kubernetes-validate"), "--strict", str(path))
    assert result.returncode != 0
    assert "'hostname2' was unexpected" in result.stdout + result.stderr


# --------------------------------------------------------------------------- the objects


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_pods_are_hardened(value_set: str) -> None:
    manifests = render_set(value_set)
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        what = f"{workload['kind']}/{workload['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, what
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, what
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, what
        writable = {
            mount["mountPath"]
            for container in containers(workload)
            for mount in container.get("volumeMounts", [])
            if not mount.get("readOnly")
        }
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in containers(workload):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, what
            assert security["readOnlyRootFilesystem"] is True, what
            assert security["capabilities"] == {"drop": ["ALL"]}, what
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, what
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert set(resources[kind]) >= {"cpu", "memory"}, (what, kind)
            for mount in container.get("volumeMounts", []):
                if not mount.get("readOnly"):
                    assert mount["name"] in empty_dirs, (what, mount)
        # Whatever the processes write goes to an emptyDir: /tmp, the state folder.
        assert "/tmp" in writable, what
        for volume in spec["volumes"]:
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), (what, volume)


def test_upload_spool_is_an_emptydir_where_the_registry_spools() -> None:
    manifests = render_set("default")
    models = one(manifests, "Deployment", name("models"))
    env = config_env(manifests)
    spool = env["MLPLANE_UPLOAD_SPOOL_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in pod_spec(models)["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(models)["volumes"]}
    assert volumes[mounts[spool]]["emptyDir"]["sizeLimit"] == "8Gi"
    settings = Settings(state_dir=Path(env["MLPLANE_STATE_DIR"]), upload_spool_dir=Path(spool))
    assert str(settings.spool_dir) == spool
    assert mounts[env["MLPLANE_STATE_DIR"]] == "state"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_each_component_has_a_deployment_service_hpa_and_pdb(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    for part in COMPONENTS:
        deployment = one(manifests, "Deployment", name(part))
        service = one(manifests, "Service", name(part))
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["selector"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        hpas = [m for m in by_kind(manifests, "HorizontalPodAutoscaler") if component(m) == part]
        pdbs = [m for m in by_kind(manifests, "PodDisruptionBudget") if component(m) == part]
        if values[part]["autoscaling"]["enabled"]:
            assert "replicas" not in deployment["spec"]  # the HPA owns it
            (hpa,) = hpas
            assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
            assert hpa["spec"]["minReplicas"] >= 2
        else:
            assert not hpas
            assert deployment["spec"]["replicas"] == values[part]["replicaCount"]
        if values[part]["podDisruptionBudget"]["enabled"]:
            (pdb,) = pdbs
            assert pdb["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        else:
            assert not pdbs
        # Rolling updates never take a ready pod away before its replacement is ready.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_services_are_probed_on_their_grpc_health_service() -> None:
    manifests = render_set("default")
    for part, grpc_service in GRPC_SERVICES.items():
        deployment = one(manifests, "Deployment", name(part))
        (container,) = pod_spec(deployment)["containers"]
        port = {p["name"]: p["containerPort"] for p in container["ports"]}["grpc"]
        # services/common/server.py marks "" and the service's own name SERVING, and both
        # NOT_SERVING once SIGTERM arrives (so readiness turns off before the drain).
        assert container["readinessProbe"]["grpc"] == {"port": port, "service": grpc_service}
        assert container["livenessProbe"]["grpc"] == {"port": port}
        assert container["startupProbe"]["grpc"] == {"port": port}
        assert container["command"] == ["mlplane", "serve", part]
        env = config_env(manifests)
        assert env[f"MLPLANE_{part.upper()}_LISTEN"] == f"0.0.0.0:{port}"
        metrics = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
        assert env[f"MLPLANE_{part.upper()}_METRICS_PORT"] == str(metrics)
        # Headless: Envoy resolves every ready pod and balances requests over them.
        service = one(manifests, "Service", name(part))
        assert service["spec"]["clusterIP"] == "None"
        assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
            "grpc": port,
            "metrics": metrics,
        }
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        assert grace > sleep + float(env["MLPLANE_SHUTDOWN_GRACE_SECONDS"])
    gateway = one(manifests, "Deployment", name("gateway"))
    envoy = pod_spec(gateway)["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert envoy[probe]["httpGet"] == {"path": "/healthz", "port": "http"}


def _settings_fields() -> set[str]:
    return {f"MLPLANE_{field.upper()}" for field in Settings.model_fields}


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_mlplane_variable_is_a_setting(value_set: str) -> None:
    manifests = render_set(value_set)
    names = set(config_env(manifests))
    for workload in workloads(manifests):
        for container in containers(workload):
            names |= {e["name"] for e in container.get("env", [])}
    unknown = {n for n in names if n.startswith("MLPLANE_")} - _settings_fields()
    assert not unknown, f"not in services/common/settings.py: {sorted(unknown)}"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_the_configmap_is_valid_settings(value_set: str, monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    env = config_env(manifests)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings()
    except ValidationError as exc:
        pytest.fail(f"the chart's settings do not parse: {exc}")
    assert settings.max_model_bytes == values["models"]["maxModelBytes"]
    assert settings.s3_part_size_bytes == values["objectStore"]["s3"]["partSizeBytes"]
    assert settings.webhook_urls == values["webhooks"]["urls"]
    assert settings.cors_allowed_origins == values["gateway"]["corsAllowedOrigins"]
    assert settings.jwt_algorithms == values["auth"]["algorithms"]
    assert settings.store == "s3"
    assert settings.dev_issuer_enabled is (not values["auth"]["jwksUrl"])


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_secrets_are_referenced_never_rendered(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    assert not by_kind(manifests, "Secret")
    text = render_text(VALUE_SETS[value_set])
    assert "postgresql://" not in text
    assert "postgres://" not in text
    worker = {"validation"} if values["validation"]["enabled"] else set()
    expected = {
        "MLPLANE_DATABASE_URL": (values["database"]["existingSecret"], "adminUrl"),
        "MLPLANE_QUERY_DATABASE_URL": (values["database"]["existingSecret"], "queryUrl"),
        "MLPLANE_REGISTRY_DATABASE_URL": (values["database"]["existingSecret"], "registryUrl"),
        "MLPLANE_PAGE_TOKEN_SECRET": (values["pageTokens"]["existingSecret"], "secret"),
        "MLPLANE_WEBHOOK_SECRET": (values["webhooks"]["existingSecret"], "secret"),
        "AWS_ACCESS_KEY_ID": (
            values["objectStore"]["s3"]["credentials"]["existingSecret"],
            "accessKeyId",
        ),
        "AWS_SECRET_ACCESS_KEY": (
            values["objectStore"]["s3"]["credentials"]["existingSecret"],
            "secretAccessKey",
        ),
    }
    seen: dict[str, set[str]] = {}
    for workload in workloads(manifests):
        for container in containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    assert "value" in env, env
                    continue
                assert (ref["name"], ref["key"]) == expected[env["name"]], env
                seen.setdefault(env["name"], set()).add(component(workload))
    assert seen["MLPLANE_QUERY_DATABASE_URL"] == {"query"} | (
        {"migration"} if values["migration"]["enabled"] else set()
    )
    # The validation worker reads versions and writes reports with the registry's role.
    assert seen["MLPLANE_REGISTRY_DATABASE_URL"] == {"models"} | worker | (
        {"migration"} if values["migration"]["enabled"] else set()
    )
    assert seen.get("MLPLANE_DATABASE_URL", set()) == (
        {"migration"} if values["migration"]["enabled"] else set()
    )
    assert seen["MLPLANE_PAGE_TOKEN_SECRET"] == {"query", "models"}
    if values["webhooks"]["existingSecret"]:
        assert seen["MLPLANE_WEBHOOK_SECRET"] == {"models"}
    else:
        assert "MLPLANE_WEBHOOK_SECRET" not in seen
    # Static S3 keys go to whoever reads or writes the bucket, and to nobody else.
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if values["objectStore"]["s3"]["credentials"]["existingSecret"]:
            assert seen[key] == {"models"} | worker, key
        else:
            assert key not in seen, key


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_the_static_jwks_is_mounted_where_each_reader_looks(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    static = not values["auth"]["jwksUrl"]
    env = config_env(manifests)
    assert ("MLPLANE_JWT_JWKS_URL" in env) is not static
    for part in COMPONENTS:
        spec = pod_spec(one(manifests, "Deployment", name(part)))
        container = spec["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        if not static:
            assert "jwks" not in mounts
            assert "jwks" not in volumes
            continue
        secret = volumes["jwks"]["secret"]
        assert secret["secretName"] == values["auth"]["jwksSecret"]["name"]
        assert secret["items"] == [
            {"key": values["auth"]["jwksSecret"]["key"], "path": "jwks.json"}
        ]
        if part == "gateway":
            # `mlplane gateway render --out-dir D` points Envoy at D/keys/jwks.json.
            render = spec["initContainers"][0]["args"]
            out_dir = next(a.split("=", 1)[1] for a in render if a.startswith("--out-dir="))
            expected = Settings(state_dir=Path(out_dir)).jwks_file
        else:
            expected = Settings(state_dir=Path(env["MLPLANE_STATE_DIR"])).jwks_file
        assert Path(mounts["jwks"]) / "jwks.json" == expected, part


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_network_policies(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    policies = by_kind(manifests, "NetworkPolicy")
    if not values["networkPolicy"]["enabled"]:
        assert not policies
        return
    np = values["networkPolicy"]
    remote_jwks = bool(values["auth"]["jwksUrl"])
    selected = {component(p): p for p in policies}
    parts = [component(w) for w in workloads(manifests)]
    assert set(selected) == set(parts), "every pod of the chart is under a policy"
    for policy in policies:
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == (
            component(policy)
        )

    def egress(part: str) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = selected[part]["spec"]["egress"]
        return rules

    def rule(destination: str) -> dict[str, Any]:
        return {"to": np[destination]["to"], "ports": np[destination]["ports"]}

    gateway_pods = {
        "podSelector": {"matchLabels": selected["gateway"]["spec"]["podSelector"]["matchLabels"]}
    }
    for part in ("query", "models"):
        port = values[part]["port"]
        ingress = selected[part]["spec"]["ingress"]
        grpc_rules = [r for r in ingress if {"port": port, "protocol": "TCP"} in r["ports"]]
        # Only the gateway reaches the gRPC port.
        assert grpc_rules == [
            {"from": [gateway_pods], "ports": [{"port": port, "protocol": "TCP"}]}
        ]
        metrics_rule = next(r for r in ingress if r is not grpc_rules[0])
        assert metrics_rule["ports"] == [{"port": values[part]["metricsPort"], "protocol": "TCP"}]
        wanted = [rule("dns"), rule("postgres")]
        if part == "models":
            wanted.append(rule("s3"))
            if values["webhooks"]["urls"]:
                wanted.append(rule("webhooks"))
        if remote_jwks:
            wanted.append(rule("jwks"))
        assert egress(part) == wanted + np["extraEgress"], part
    gateway_egress = egress("gateway")
    assert gateway_egress[0] == rule("dns")
    for part in ("query", "models"):
        to_part = {
            "to": [
                {
                    "podSelector": {
                        "matchLabels": selected[part]["spec"]["podSelector"]["matchLabels"]
                    }
                }
            ],
            "ports": [{"port": values[part]["port"], "protocol": "TCP"}],
        }
        assert to_part in gateway_egress
    assert (rule("jwks") in gateway_egress) is remote_jwks
    if "migration" in selected:
        assert "ingress" not in selected["migration"]["spec"]
        assert egress("migration") == [rule("dns"), rule("postgres"), *np["extraEgress"]]


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_only_the_registry_and_the_worker_have_an_s3_role(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    accounts = {m["metadata"]["name"]: m for m in by_kind(manifests, "ServiceAccount")}
    used = {
        component(d): pod_spec(d)["serviceAccountName"] for d in by_kind(manifests, "Deployment")
    }
    worker = values["validation"]["enabled"]
    if not values["serviceAccount"]["create"]:
        assert not accounts
        assert used == {
            "gateway": values["serviceAccount"]["name"],
            "query": values["serviceAccount"]["name"],
            "models": values["serviceAccount"]["modelsName"],
        } | (
            {
                "validation": values["serviceAccount"]["validationName"]
                or values["serviceAccount"]["modelsName"]
            }
            if worker
            else {}
        )
        return
    assert used == {"gateway": RELEASE, "query": RELEASE, "models": name("models")} | (
        {"validation": name("validation")} if worker else {}
    )
    assert set(accounts) == set(used.values())
    role = values["serviceAccount"]["irsaRoleArn"]
    roles = {
        name("models"): role,
        # The worker's own role when one is named (a read-only one), else the registry's.
        name("validation"): values["serviceAccount"]["validationIrsaRoleArn"] or role,
    }
    for account_name, account in accounts.items():
        assert account["automountServiceAccountToken"] is False
        annotations = account["metadata"].get("annotations", {})
        if roles.get(account_name):
            assert annotations["eks.amazonaws.com/role-arn"] == roles[account_name]
        else:
            assert "eks.amazonaws.com/role-arn" not in annotations


def test_external_services_example_uses_irsa_and_no_static_keys() -> None:
    manifests = render_set("external-services")
    models = one(manifests, "Deployment", name("models"))
    env_names = {e["name"] for e in pod_spec(models)["containers"][0]["env"]}
    assert not env_names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    account = one(manifests, "ServiceAccount", name("models"))
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )


def test_migration_is_a_pre_install_and_pre_upgrade_hook() -> None:
    manifests = render_set("default")
    (job,) = by_kind(manifests, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    # A pre-install hook runs before the release's other objects exist: it may use none.
    assert "serviceAccountName" not in spec
    (container,) = spec["containers"]
    assert "envFrom" not in container
    # `mlplane db setup`'s code, with no script around it.
    assert container["command"] == ["mlplane", "db", "setup"]
    assert "args" not in container
    assert not by_kind(render_set("switches-off"), "Job")


def test_extra_volumes_reach_every_mlplane_process_and_not_envoy() -> None:
    # The external-services example mounts the database's CA bundle (sslrootcert in the DSNs).
    values = values_of("external-services")
    (volume,) = values["extraVolumes"]
    (mount,) = values["extraVolumeMounts"]
    mounted_in = set()
    for workload in workloads(render_set("external-services")):
        assert volume in pod_spec(workload)["volumes"], workload["metadata"]["name"]
        for container in containers(workload):
            if mount in container.get("volumeMounts", []):
                mounted_in.add(container["name"])
    assert mounted_in == {"render-config", "query", "models", "validation", "migrate"}
    for workload in workloads(render_set("default")):
        names = {v["name"] for v in pod_spec(workload)["volumes"]}
        assert volume["name"] not in names


@pytest.mark.parametrize(
    ("assignments", "complaint"),
    [
        (("extraVolumes[0].name=tmp", "extraVolumes[0].emptyDir=null"), "/extraVolumes/0/name"),
        (("extraVolumeMounts[0].name=ca", "extraVolumeMounts[0].mountPath=/tmp"), "mountPath"),
        (
            ("extraVolumeMounts[0].name=ca", "extraVolumeMounts[0].mountPath=/etc/ca"),
            'extraVolumeMounts: "ca" is not one of extraVolumes',
        ),
    ],
)
def test_extra_volumes_are_refused_where_they_would_break_the_pods(
    assignments: tuple[str, ...], complaint: str
) -> None:
    args = [arg for assignment in assignments for arg in ("--set", assignment)]
    result = helm("template", RELEASE, str(CHART), *args)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_envoy_runs_the_workers_it_was_sized_with() -> None:
    # Envoy's default is one worker per core of the node, whatever the pod's CPU limit.
    manifests = render_set("default")
    (envoy,) = pod_spec(one(manifests, "Deployment", name("gateway")))["containers"]
    args = envoy["args"]
    assert args[args.index("--concurrency") + 1] == str(
        values_of("default")["gateway"]["concurrency"]
    )


def test_no_object_is_named_beyond_what_kubernetes_accepts() -> None:
    long_release = "r" * 53
    result = helm("template", long_release, str(CHART))
    assert result.returncode == 0, result.stderr
    for manifest in yaml.safe_load_all(result.stdout):
        if manifest:
            object_name = manifest["metadata"]["name"]
            assert len(object_name) <= 63
            assert re.fullmatch(r"[a-z0-9-]+", object_name)


def test_resources_carry_the_sizing_note() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"\s*(resources|renderResources):\s*$", line):
            assert (
                lines[index - 1].strip() == "# sizing: see deploy/README.md"
                or lines[index - 2].strip() == "# sizing: see deploy/README.md"
            ), line
