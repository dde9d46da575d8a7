"""Shared by the deploy tests: where the tools are, and the chart rendered with each value set.

helm and promtool come from `scripts/ensure_deploy_tools.sh` (.tools/bin, `make deploy-tools`,
which `make test` runs first); hadolint and kubernetes-validate from the dev extra (.venv/bin).
A missing tool fails the tests that need it: they never skip, CI must run them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mlplane"
EXAMPLES = CHART / "examples"
TEST_VALUES = Path(__file__).resolve().parent / "values"
TOOLS_BIN = ROOT / ".tools" / "bin"

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

RELEASE = "mlplane"
NAMESPACE = "mlplane"

Manifest = dict[str, Any]

# The value sets every rendering test runs over: the defaults, the two examples (alone and
# together, as the README installs them), every switch the defaults leave on turned off, and the
# validation worker's other branches.
VALUE_SETS: dict[str, tuple[Path, ...]] = {
    "default": (),
    "external-services": (EXAMPLES / "external-services.yaml",),
    "oidc": (EXAMPLES / "oidc.yaml",),
    "external-services+oidc": (EXAMPLES / "external-services.yaml", EXAMPLES / "oidc.yaml"),
    "switches-off": (TEST_VALUES / "switches-off.yaml",),
    "validation": (TEST_VALUES / "validation.yaml",),
}


def tool(name: str) -> str:
    """A tool from .tools/bin, the venv's bin, or PATH; the test fails when it is missing."""
    for folder in (TOOLS_BIN, Path(sys.executable).parent):
        candidate = folder / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is missing: run `make deploy-tools` (helm, promtool into .tools/bin) and "
            "`make` (.venv with the dev extra: hadolint, kubernetes-validate)"
        )
    return found


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return run(tool("helm"), *args)


def value_args(files: tuple[Path, ...], sets: tuple[str, ...] = ()) -> list[str]:
    args: list[str] = []
    for file in files:
        args += ["--values", str(file)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


@functools.cache
def render_text(files: tuple[Path, ...], sets: tuple[str, ...] = ()) -> str:
    result = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *value_args(files, sets)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def render(files: tuple[Path, ...], sets: tuple[str, ...] = ()) -> list[Manifest]:
    """The manifests (parsed once per value set: tests read them, never change them)."""
    documents = yaml.load_all(render_text(files, sets), Loader=_LOADER)
    return [doc for doc in documents if doc]


def render_set(name: str) -> list[Manifest]:
    return render(VALUE_SETS[name])


def values_of(name: str) -> dict[str, Any]:
    """The chart's values as helm merges them for a value set (defaults, then the files)."""
    merged: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    for file in VALUE_SETS[name]:
        merged = _merge(merged, yaml.safe_load(file.read_text()))
    return merged


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def component(manifest: Manifest) -> str:
    labels: dict[str, str] = manifest["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component", "")


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def containers(manifest: Manifest) -> Iterator[dict[str, Any]]:
    spec = pod_spec(manifest)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("Deployment", "Job")]


def config_env(manifests: list[Manifest]) -> dict[str, str]:
    """The chart's ConfigMap of MLPLANE_* settings."""
    data: dict[str, str] = one(manifests, "ConfigMap", f"{RELEASE}-config")["data"]
    return data
