"""The validation worker in the chart (issue #16): `mlplane serve validation` as its own
Deployment on the services image, probed natively on its gRPC health service, hardened like every
pod, with the registry's DSN and S3 settings and nothing else, its own ServiceAccount (and IAM
role), a NetworkPolicy that lets it reach only DNS, PostgreSQL and S3, an HPA and a PDB, its
/metrics scraped like the services', and the render refusing a memory limit that does not cover
the worker and its sandboxed children, or a grace period shorter than the sandbox's wall limit.

The generic checks of test_chart.py (hardened pods, kubernetes-validate on every value set,
settings that exist, Secrets by reference, NetworkPolicies for every pod) cover the worker as
well; the value set `validation` (tests/deploy/values/validation.yaml) renders its other branches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.common.settings import Settings
from services.validation.worker import SERVICE_NAME
from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    Manifest,
    by_kind,
    component,
    config_env,
    helm,
    one,
    pod_spec,
    render,
    render_set,
    run,
    tool,
    values_of,
)

pytestmark = pytest.mark.stack

WORKER_PART = "validation"  # app.kubernetes.io/component
WORKER = f"{RELEASE}-{WORKER_PART}"
MiB = 1024 * 1024
WORKER_BYTES = 300 * MiB  # the worker's own memory, as the chart counts it (not measured yet)

WORKER_SETS = [name for name in VALUE_SETS if values_of(name)["validation"]["enabled"]]


def _deployment(manifests: list[Manifest]) -> Manifest:
    return one(manifests, "Deployment", WORKER)


def _container(manifests: list[Manifest]) -> dict[str, Any]:
    spec = pod_spec(_deployment(manifests))
    assert "initContainers" not in spec
    (container,) = spec["containers"]
    return container


def _template(*sets: str, flag: str = "--set") -> tuple[int, str]:
    """`helm template` with --set (or --set-string, --set-json) assignments: status, stderr.
    (--set reads 45.5 as a string, which the schema refuses; --set-json reads a number.)"""
    args = [arg for assignment in sets for arg in (flag, assignment)]
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    return result.returncode, result.stderr


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


# --------------------------------------------------------------------------- the Deployment


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_runs_mlplane_serve_validation_like_the_registry(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)["validation"]
    worker = _container(manifests)
    (models,) = pod_spec(one(manifests, "Deployment", f"{RELEASE}-models"))["containers"]
    # The same image, entrypoint style and settings as the ModelRegistry.
    assert worker["command"] == ["mlplane", "serve", "validation"]
    assert "args" not in worker
    assert worker["image"] == models["image"]
    assert worker["imagePullPolicy"] == models["imagePullPolicy"]
    assert worker["envFrom"] == models["envFrom"]
    env = config_env(manifests)
    assert _ports(worker) == {"grpc": values["port"], "metrics": values["metricsPort"]}
    assert env["MLPLANE_VALIDATION_LISTEN"] == f"0.0.0.0:{values['port']}"
    assert env["MLPLANE_VALIDATION_METRICS_PORT"] == str(values["metricsPort"])
    assert env["MLPLANE_METRICS_ADDRESS"] == "0.0.0.0"  # noqa: S104 - Prometheus scrapes the pod
    deployment = _deployment(manifests)
    if values["autoscaling"]["enabled"]:
        assert "replicas" not in deployment["spec"]  # the HPA owns it
    else:
        assert deployment["spec"]["replicas"] == values["replicaCount"]
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"].items() >= values["podLabels"].items()
    assert template["metadata"]["annotations"].items() >= values["podAnnotations"].items()
    assert "checksum/config" in template["metadata"]["annotations"]
    spec = pod_spec(deployment)
    assert spec.get("nodeSelector", {}) == values["nodeSelector"]
    assert spec.get("tolerations", []) == values["tolerations"]


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_is_probed_on_its_grpc_health_service(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)["validation"]
    worker = _container(manifests)
    port = _ports(worker)["grpc"]
    # Native gRPC probes on grpc.health.v1, as for the services: readiness on the worker's own
    # name (services/validation/worker.py registers it, and "", both NOT_SERVING on SIGTERM),
    # liveness and startup on "".
    assert worker["readinessProbe"]["grpc"] == {"port": port, "service": SERVICE_NAME}
    assert worker["livenessProbe"]["grpc"] == {"port": port}
    assert worker["startupProbe"]["grpc"] == {"port": port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert "httpGet" not in worker[probe], probe
    # Nothing routes to it, so nothing to wait for before it stops: no preStop sleep and no
    # drain (it would only go on claiming jobs it must then give back) ...
    assert "lifecycle" not in worker
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["MLPLANE_SHUTDOWN_DRAIN_SECONDS"] == "0"
    assert float(config_env(manifests)["MLPLANE_SHUTDOWN_DRAIN_SECONDS"]) > 0  # the services'
    # ... and the grace period covers the gRPC stop and the sandboxed child it waits for.
    grace = pod_spec(_deployment(manifests))["terminationGracePeriodSeconds"]
    assert grace == values["terminationGracePeriodSeconds"]
    shutdown_grace = float(config_env(manifests)["MLPLANE_SHUTDOWN_GRACE_SECONDS"])
    assert grace > shutdown_grace + values["sandbox"]["wallSeconds"]


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_keeps_the_hardened_security_context(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    worker = _container(manifests)
    spec = pod_spec(_deployment(manifests))
    # The sandbox's unshare(CLONE_NEWUSER|CLONE_NEWNET) gets no help: no capability, no
    # privilege, no escalation, the runtime's seccomp profile (deploy/README.md says what holds
    # when the kernel refuses it: the NetworkPolicy and the audit hook).
    security = worker["securityContext"]
    assert security == values["containerSecurityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"] == values["podSecurityContext"]
    for host in ("hostNetwork", "hostPID", "hostIPC", "hostUsers", "shareProcessNamespace"):
        assert host not in spec, host
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    # The sandbox's scratch folders go to /tmp (TMPDIR), an emptyDir of tmpSizeLimit.
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["TMPDIR"] == env["HOME"] == "/tmp"
    mounts = {m["mountPath"]: m for m in worker["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    tmp = volumes[mounts["/tmp"]["name"]]
    assert tmp["emptyDir"] == {"sizeLimit": values["validation"]["tmpSizeLimit"]}


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_gets_the_registrys_dsn_and_store_and_nothing_else(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    worker = _container(manifests)
    (models,) = pod_spec(one(manifests, "Deployment", f"{RELEASE}-models"))["containers"]

    def secret_refs(container: dict[str, Any]) -> dict[str, dict[str, str]]:
        return {
            e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
        }

    refs = secret_refs(worker)
    wanted = {"MLPLANE_REGISTRY_DATABASE_URL"}
    # Plain values: the process's own (HOME, TMPDIR, malloc, no drain) and extraEnv.
    plain = {e["name"] for e in worker["env"] if "valueFrom" not in e}
    extra_names = {e["name"] for e in values["extraEnv"] + values["validation"]["extraEnv"]}
    assert plain - extra_names == {
        "HOME",
        "TMPDIR",
        "MALLOC_ARENA_MAX",
        "MALLOC_MMAP_THRESHOLD_",
        "MLPLANE_SHUTDOWN_DRAIN_SECONDS",
    }
    if values["objectStore"]["s3"]["credentials"]["existingSecret"]:
        wanted |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    # No page-token key, no webhook key: it serves no API and sends no events.
    assert set(refs) == wanted
    for variable in wanted:
        assert refs[variable] == secret_refs(models)[variable], variable
    # The same object store settings as the ModelRegistry: one ConfigMap for both.
    assert config_env(manifests)["MLPLANE_STORE"] == "s3"
    # It verifies no token: no JWKS, whether a static one or the issuer's.
    spec = pod_spec(_deployment(manifests))
    assert "jwks" not in {v["name"] for v in spec["volumes"]}
    assert "jwks" not in {m["name"] for m in worker["volumeMounts"]}
    # extraEnv (the release's, then the worker's) comes last, so it wins.
    extra = values["extraEnv"] + values["validation"]["extraEnv"]
    assert worker["env"][len(worker["env"]) - len(extra) :] == extra


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_settings_are_the_workers_settings(
    value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)["validation"]
    for key, value in config_env(manifests).items():
        monkeypatch.setenv(key, value)
    try:
        settings = Settings()
    except ValidationError as exc:
        pytest.fail(f"the chart's settings do not parse: {exc}")
    assert settings.validation_listen == f"0.0.0.0:{values['port']}"
    assert settings.validation_metrics_port == values["metricsPort"]
    assert settings.validation_concurrency == values["concurrency"]
    assert settings.validation_memory_bytes == values["sandbox"]["memoryBytes"]
    assert settings.validation_cpu_seconds == values["sandbox"]["cpuSeconds"]
    assert settings.validation_wall_seconds == values["sandbox"]["wallSeconds"]
    assert settings.validation_lease_seconds == values["leaseSeconds"]
    assert settings.validation_max_attempts == values["maxAttempts"]
    assert settings.validation_poll_seconds == values["pollSeconds"]
    assert settings.validation_store_retries == values["storeRetries"]


def test_the_chart_defaults_are_the_workers_defaults() -> None:
    # values.yaml restates the worker's defaults (services/common/settings.py): they must agree.
    values = values_of("default")["validation"]
    defaults = Settings.model_fields
    assert defaults["validation_listen"].default.rsplit(":", 1)[1] == str(values["port"])
    assert defaults["validation_metrics_port"].default == values["metricsPort"]
    assert defaults["validation_concurrency"].default == values["concurrency"]
    assert defaults["validation_memory_bytes"].default == values["sandbox"]["memoryBytes"]
    assert defaults["validation_cpu_seconds"].default == values["sandbox"]["cpuSeconds"]
    assert defaults["validation_wall_seconds"].default == values["sandbox"]["wallSeconds"]
    assert defaults["validation_lease_seconds"].default == values["leaseSeconds"]
    assert defaults["validation_max_attempts"].default == values["maxAttempts"]
    assert defaults["validation_poll_seconds"].default == values["pollSeconds"]
    assert defaults["validation_store_retries"].default == values["storeRetries"]


# ------------------------------------------------------------------ what the render refuses


def _memory_needed(concurrency: int, memory_bytes: int) -> int:
    return WORKER_BYTES + concurrency * memory_bytes


def test_the_default_memory_limit_covers_the_worker_and_its_sandbox() -> None:
    values = values_of("default")["validation"]
    needed = _memory_needed(values["concurrency"], values["sandbox"]["memoryBytes"])
    limit = values["resources"]["limits"]["memory"]
    assert limit == "4608Mi"
    assert 4608 * MiB >= needed
    # A child may really use all of it: the request reserves it on the node.
    assert values["resources"]["requests"]["memory"] == limit


@pytest.mark.parametrize(
    ("assignments", "needed_mib"),
    [
        # concurrency 1 x 4 GiB + 300 MiB = 4396 MiB, in the units Kubernetes accepts.
        (("validation.resources.limits.memory=4395Mi",), 4396),
        (("validation.resources.limits.memory=4.29Gi",), 4396),
        (("validation.resources.limits.memory=4609M",), 4396),
        (("validation.resources.limits.memory=4609540095",), 4396),
        # Two jobs at once need two sandboxes.
        (("validation.concurrency=2",), 8492),
        (
            (
                "validation.concurrency=3",
                "validation.sandbox.memoryBytes=1073741824",
                "validation.resources.limits.memory=3Gi",
                "validation.resources.requests.memory=1Gi",
            ),
            3372,
        ),
    ],
)
def test_a_memory_limit_below_the_workers_needs_is_refused(
    assignments: tuple[str, ...], needed_mib: int
) -> None:
    status, stderr = _template(*assignments)
    assert status != 0
    assert "validation.resources.limits.memory (" in stderr
    assert f"must be at least {needed_mib}Mi: 300Mi for the worker" in stderr


@pytest.mark.parametrize(
    ("assignments", "limit"),
    [
        (("validation.resources.limits.memory=4396Mi",), "4396Mi"),
        (("validation.resources.limits.memory=4.3Gi",), "4.3Gi"),
        (("validation.resources.limits.memory=4610M",), "4610M"),
        (("validation.resources.limits.memory=4609540096",), "4609540096"),
        (
            (
                "validation.concurrency=2",
                "validation.resources.limits.memory=8492Mi",
                "validation.resources.requests.memory=8492Mi",
            ),
            "8492Mi",
        ),
        (
            (
                "validation.sandbox.memoryBytes=1073741824",
                "validation.resources.limits.memory=1324Mi",
                "validation.resources.requests.memory=1324Mi",
            ),
            "1324Mi",
        ),
    ],
)
def test_a_memory_limit_that_covers_the_worker_renders(
    assignments: tuple[str, ...], limit: str
) -> None:
    status, stderr = _template(*assignments)
    assert status == 0, stderr
    (worker,) = pod_spec(_deployment(render((), assignments)))["containers"]
    assert str(worker["resources"]["limits"]["memory"]) == limit


def test_a_memory_limit_given_as_a_string_of_bytes_is_read_as_bytes() -> None:
    assert _template("validation.resources.limits.memory=4609540096", flag="--set-string")[0] == 0
    status, stderr = _template("validation.resources.limits.memory=4609540095", flag="--set-string")
    assert status != 0
    assert "must be at least 4396Mi" in stderr


def test_a_worker_without_a_memory_limit_is_refused() -> None:
    status, stderr = _template("validation.resources.limits.memory=null")
    assert status != 0
    assert "validation.resources.limits.memory is required" in stderr


@pytest.mark.parametrize(
    ("assignments", "refused_below"),
    [
        # shutdownGraceSeconds (10) + wallSeconds (90)
        (("validation.terminationGracePeriodSeconds=100",), "100"),
        (("validation.terminationGracePeriodSeconds=30",), "100"),
        (("validation.terminationGracePeriodSeconds=101",), None),
        (
            ("validation.sandbox.wallSeconds=45.5", "validation.terminationGracePeriodSeconds=55"),
            "55.5",
        ),
        (
            ("validation.sandbox.wallSeconds=45.5", "validation.terminationGracePeriodSeconds=56"),
            None,
        ),
        (("shutdownGraceSeconds=30", "validation.terminationGracePeriodSeconds=120"), "120"),
    ],
)
def test_the_grace_period_must_cover_the_stop_and_the_child_in_flight(
    assignments: tuple[str, ...], refused_below: str | None
) -> None:
    status, stderr = _template(*assignments, flag="--set-json")
    if refused_below is not None:
        assert status != 0
        assert (
            "must exceed shutdownGraceSeconds + validation.sandbox.wallSeconds "
            f"({refused_below})" in stderr
        )
    else:
        assert status == 0, stderr


def test_a_disabled_worker_is_not_checked_and_leaves_nothing_behind() -> None:
    sets = (
        "validation.enabled=false",
        "validation.resources.limits.memory=64Mi",
        "validation.terminationGracePeriodSeconds=1",
        "metrics.serviceMonitor.enabled=true",
    )
    status, stderr = _template(*sets)
    assert status == 0, stderr
    for manifests in (render((), sets), render_set("switches-off")):
        assert not [m for m in manifests if component(m) == "validation"]
        assert not [m for m in manifests if m["metadata"]["name"] == WORKER]
        assert not [k for k in config_env(manifests) if k.startswith("MLPLANE_VALIDATION_")]


# --------------------------------------------------------------------------- scaling


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_scales_on_cpu_and_has_a_disruption_budget(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)["validation"]
    deployment = _deployment(manifests)
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    hpas = [m for m in by_kind(manifests, "HorizontalPodAutoscaler") if component(m) == WORKER_PART]
    pdbs = [m for m in by_kind(manifests, "PodDisruptionBudget") if component(m) == WORKER_PART]
    if values["autoscaling"]["enabled"]:
        (hpa,) = hpas
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": WORKER,
        }
        assert hpa["spec"]["minReplicas"] == values["autoscaling"]["minReplicas"]
        assert hpa["spec"]["maxReplicas"] == values["autoscaling"]["maxReplicas"]
        assert hpa["spec"]["metrics"] == [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": values["autoscaling"][
                            "targetCPUUtilizationPercentage"
                        ],
                    },
                },
            }
        ]
    else:
        assert not hpas
    if values["podDisruptionBudget"]["enabled"]:
        (pdb,) = pdbs
        assert (
            pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
        )
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pods.items()
        budget = {k: v for k, v in values["podDisruptionBudget"].items() if k != "enabled"}
        if "maxUnavailable" in budget:
            budget = {"maxUnavailable": budget["maxUnavailable"]}
        assert {k: v for k, v in pdb["spec"].items() if k != "selector"} == budget
    else:
        assert not pdbs


def test_a_single_default_worker_can_still_be_drained() -> None:
    # One replica under minAvailable: 1 would block every node drain; the worker's budget
    # allows one pod away at a time instead (queued jobs wait, the lease hands on the rest).
    values = values_of("default")["validation"]
    assert values["autoscaling"]["minReplicas"] == 1
    (pdb,) = [
        m
        for m in by_kind(render_set("default"), "PodDisruptionBudget")
        if component(m) == "validation"
    ]
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": pdb["spec"]["selector"],
    }


# ------------------------------------------------------------------ network and identity


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_the_worker_reaches_only_dns_postgres_and_s3(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    np = values["networkPolicy"]
    policy = one(manifests, "NetworkPolicy", WORKER)
    pods = _deployment(manifests)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    # In: Prometheus on the metrics port, nothing else (the health port is the kubelet's).
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": values["validation"]["metricsPort"], "protocol": "TCP"}]
    assert ingress.get("from", []) == np["metricsIngressFrom"]

    # Out: DNS, PostgreSQL, S3 (and STS, within the s3 destination); no JWKS, no webhook
    # receiver, whatever the release configures for the others.
    def rule(destination: str) -> dict[str, Any]:
        return {"to": np[destination]["to"], "ports": np[destination]["ports"]}

    assert policy["spec"]["egress"] == [
        rule("dns"),
        rule("postgres"),
        rule("s3"),
        *np["extraEgress"],
    ]
    if value_set == "validation":  # a remote JWKS and webhooks, each at its own address
        assert values["auth"]["jwksUrl"]
        assert values["webhooks"]["urls"]
        for unwanted in ("jwks", "webhooks"):
            assert rule(unwanted) not in policy["spec"]["egress"], unwanted


@pytest.mark.parametrize("value_set", WORKER_SETS)
def test_nothing_routes_to_the_worker(value_set: str) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    # Its Service exists for Prometheus only: headless, the metrics port alone.
    service = one(manifests, "Service", WORKER)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {
            "name": "metrics",
            "port": values["validation"]["metricsPort"],
            "targetPort": "metrics",
            "protocol": "TCP",
            "appProtocol": "http",
        }
    ]
    assert service["spec"]["selector"] == _deployment(manifests)["spec"]["selector"]["matchLabels"]
    # The gateway is given no address of it and may not reach its pods.
    gateway = pod_spec(one(manifests, "Deployment", f"{RELEASE}-gateway"))
    render_args = " ".join(gateway["initContainers"][0]["args"])
    assert "validation" not in render_args
    assert str(values["validation"]["port"]) not in render_args
    if values["networkPolicy"]["enabled"]:
        gateway_policy = one(manifests, "NetworkPolicy", f"{RELEASE}-gateway")
        for egress in gateway_policy["spec"]["egress"]:
            for peer in egress["to"]:
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                assert labels.get("app.kubernetes.io/component") != "validation"


@pytest.mark.parametrize(
    ("sets", "account", "role"),
    [
        ((), WORKER, None),
        # The registry's role by default (its trust policy must then name this account too) …
        (
            ("serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/models",),
            WORKER,
            "arn:aws:iam::123456789012:role/models",
        ),
        # … or a role of its own: a read-only one, since it runs untrusted models.
        (
            (
                "serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/models",
                "serviceAccount.validationIrsaRoleArn=arn:aws:iam::123456789012:role/read",
            ),
            WORKER,
            "arn:aws:iam::123456789012:role/read",
        ),
        # Existing ServiceAccounts: the registry's unless the worker's is named.
        (("serviceAccount.create=false", "serviceAccount.modelsName=s3-writer"), "s3-writer", None),
        (
            (
                "serviceAccount.create=false",
                "serviceAccount.modelsName=s3-writer",
                "serviceAccount.validationName=s3-reader",
            ),
            "s3-reader",
            None,
        ),
    ],
)
def test_the_worker_runs_under_an_account_with_s3_access(
    sets: tuple[str, ...], account: str, role: str | None
) -> None:
    manifests = render((), sets)
    assert pod_spec(_deployment(manifests))["serviceAccountName"] == account
    accounts = {m["metadata"]["name"]: m for m in by_kind(manifests, "ServiceAccount")}
    if "serviceAccount.create=false" in sets:
        assert not accounts
        return
    annotations = accounts[account]["metadata"].get("annotations", {})
    assert annotations.get("eks.amazonaws.com/role-arn") == role
    assert accounts[account]["automountServiceAccountToken"] is False
    # The registry keeps its own role either way.
    models = accounts[f"{RELEASE}-models"]["metadata"].get("annotations", {})
    registry_role = next(
        (s.split("=", 1)[1] for s in sets if s.startswith("serviceAccount.irsaRoleArn=")), None
    )
    assert models.get("eks.amazonaws.com/role-arn") == registry_role


def test_the_eks_example_gives_the_worker_a_read_only_role_of_its_own() -> None:
    values = values_of("external-services")["serviceAccount"]
    assert values["validationIrsaRoleArn"] not in ("", values["irsaRoleArn"])
    account = one(render_set("external-services"), "ServiceAccount", WORKER)
    assert (
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == (values["validationIrsaRoleArn"])
    )
    header = (CHART / "examples" / "external-services.yaml").read_text()
    assert f"system:serviceaccount:{NAMESPACE}:{WORKER}" in header


# ------------------------------------------------------------------ kubernetes-validate, NOTES

_VARIANTS: dict[str, tuple[str, ...]] = {
    "existing-accounts": (
        "serviceAccount.create=false",
        "serviceAccount.modelsName=s3-writer",
        "serviceAccount.validationName=s3-reader",
    ),
    "three-jobs-small-sandboxes": (
        "validation.concurrency=3",
        "validation.sandbox.memoryBytes=1073741824",
        "validation.resources.limits.memory=3372Mi",
        "validation.resources.requests.memory=3372Mi",
        "validation.autoscaling.targetMemoryUtilizationPercentage=80",
        "validation.podDisruptionBudget.enabled=false",
        "networkPolicy.enabled=false",
    ),
}


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_worker_variants_pass_kubernetes_validate_strict(version: str, tmp_path: Path) -> None:
    files = []
    expected = 0
    for variant, sets in _VARIANTS.items():
        status, stderr = _template(*sets)
        assert status == 0, stderr
        manifests = render((), sets)
        path = tmp_path / f"{variant}.yaml"
        path.write_text(yaml.safe_dump_all(manifests))
        files.append(str(path))
        expected += len(manifests)
    result = run(tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, *files)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 0, "\n".join(lines[-20:])
    assert not [line for line in lines if not line.startswith("INFO")], "\n".join(lines)
    assert sum(" passed for resource " in line for line in lines) == expected


def _notes(*sets: str) -> str:
    args = [arg for assignment in sets for arg in ("--set", assignment)]
    result = helm(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *args
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\nNOTES:\n", 1)[1]


def test_the_notes_name_the_worker_and_its_role() -> None:
    notes = _notes()
    assert f"deploy/{WORKER}" in notes
    assert "ModelRegistry and the validation worker use the pod's default AWS identity" in notes
    shared = _notes("serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/models")
    assert f"system:serviceaccount:{NAMESPACE}:{WORKER}" in shared
    assert "give it a read-only role (serviceAccount.validationIrsaRoleArn)" in shared
    own = _notes(
        "serviceAccount.irsaRoleArn=arn:aws:iam::123456789012:role/models",
        "serviceAccount.validationIrsaRoleArn=arn:aws:iam::123456789012:role/read",
    )
    assert "role arn:aws:iam::123456789012:role/read" in own
    assert "give it a read-only role" not in own
    assert WORKER not in _notes("validation.enabled=false")
