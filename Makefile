# mlplane: `make up` runs the stack, `make test` runs what CI runs.
# Every target bootstraps what it needs (.venv from PyPI, buf from npm) and is idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
WEB_STAMP := web/node_modules/.installed
# What the web app's build is made from: `make up` rebuilds it when any of these is newer.
WEB_SOURCES := $(shell find web/src web/public web/index.html web/vite.config.ts \
	web/tsconfig.json web/package.json -type f 2>/dev/null)

.PHONY: up test test-prereqs test-tools web-build web-typecheck web-lint web-unit lint fmt typecheck buf-lint buf-breaking generate bench clean help web web-check chromium fuzz deploy-tools deploy-check

help:
	@echo "make up        embedded PostgreSQL + both services + Envoy on :8080 (foreground)"
	@echo "make test      lint, type checks, buf lint and breaking, the web app's checks, the whole test suite with the browser tests (what CI runs)"
	@echo "make generate  regenerate generated/ and web/src/gen/ from protos/"
	@echo "make web       build the web app (web/dist), which make up serves on the gateway"
	@echo "make fmt       format with ruff"
	@echo "make fuzz      the fuzz suite at length (every RPC and the multipart upload, 400 requests each)"
	@echo "make deploy-check  the images and the Helm chart, offline: hadolint, helm lint, helm template"
	@echo "               with each value set through kubernetes-validate, the CRs, the gateway render"
	@echo "make bench     export, upload, approval and validation benchmarks against the real stack (bench/README.md)"

# uv (from PyPI, into the venv) installs the same pinned packages as pip would, in parallel:
# about 15 s on a clean clone instead of pip's 1.5-5 minutes here. pip stays in the venv.
UV_VERSION := 0.13.9

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlplane needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed for buf, the proto linter"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_STAMP): web/package.json web/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed for the web app"; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/index.html: $(WEB_STAMP) $(WEB_SOURCES)
	cd web && npm run build

web: web/dist/index.html

web-build: $(WEB_STAMP)
	cd web && npm run build

up: $(STAMP) web/dist/index.html
	$(BIN)/mlplane up

generate: $(STAMP) $(WEB_STAMP)
	$(BIN)/python scripts/generate_protos.py
	cd web && npm run generate

# The web app's own checks: types, lint, unit and component tests (Vitest). Three targets, so
# that `make -j` (as `make test` does) runs them side by side; Vitest on every core.
web-check: web-typecheck web-lint web-unit

web-typecheck: $(WEB_STAMP)
	cd web && npm run typecheck

web-lint: $(WEB_STAMP)
	cd web && npm run lint

web-unit: $(WEB_STAMP)
	cd web && npm test -- --maxWorkers=100%

# Debian's Chromium for the browser tests (tests/web): Playwright cannot download its own here.
chromium:
	@bash scripts/ensure_chromium.sh

# helm and promtool, pinned and checksum-verified, into .tools/bin (deploy/README.md).
deploy-tools:
	@bash scripts/ensure_deploy_tools.sh

# The images and the chart, checked offline (tests/deploy; about half a minute; `make test` runs
# the same tests): hadolint on both Dockerfiles; helm lint with values.schema.json; helm template
# with the default values, the external-services and oidc examples and every switch off, each
# through kubernetes-validate --strict; the ServiceMonitor and PrometheusRule against their CRDs;
# the gateway pod's `mlplane gateway render` through envoy --mode validate; the migration Job
# and both services run with the chart's commands and settings against a real PostgreSQL; and
# promtool on the alert rules (tests/deploy/test_monitoring.py, without its running-stack test).
DEPLOY_TESTS := tests/deploy/test_images.py tests/deploy/test_chart.py \
	tests/deploy/test_custom_resources.py tests/deploy/test_gateway_render.py \
	tests/deploy/test_workloads.py
deploy-check: $(STAMP) deploy-tools
	$(BIN)/python -m pytest -q $(DEPLOY_TESTS) tests/deploy/test_monitoring.py \
		--deselect tests/deploy/test_monitoring.py::test_every_metric_the_dashboard_and_alerts_use_is_exported

buf-lint: $(NODE_STAMP)
	node_modules/.bin/buf lint
	node_modules/.bin/buf format --exit-code --diff --path protos/mlplane

# The v1 contract as it was first made to explain itself (the commit of the 2026-12-05
# changelog entry): from then on mlplane.v1 may only grow. A clean clone has the history,
# so the baseline needs no file or network.
BUF_BASELINE := c64564ec0a2791b1b52fe1ecd342685515e62182
buf-breaking: $(NODE_STAMP)
	node_modules/.bin/buf breaking --against '.git#ref=$(BUF_BASELINE)'

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything the suite needs and every check `make test` runs before it. They are independent
# of each other, so `make test` runs them side by side (output kept together per target): the
# installs mostly wait on the network, the checks share the two cores. The web app is built
# here too, always (the browser tests test the current sources), and that build is web-check's
# type check as well (`npm run build` is `tsc -b && vite build`): tsc runs once, not twice.
# Chromium and the deploy tools run one after the other: both may call apt.
TEST_PREREQS := $(STAMP) test-tools buf-lint buf-breaking lint typecheck web-lint web-unit \
	web-build

test:
	@$(MAKE) --no-print-directory -j4 --output-sync=target test-prereqs
	$(BIN)/python -m pytest

test-prereqs: $(TEST_PREREQS)

test-tools:
	@bash scripts/ensure_chromium.sh
	@bash scripts/ensure_deploy_tools.sh

# The property-based fuzz suite at length: every RPC from its descriptors and raw multipart
# uploads, against a real stack (make test runs 12 requests per RPC; this 400 by default,
# about 15 minutes on two cores; MLPLANE_FUZZ_EXAMPLES=N to choose).
fuzz: $(STAMP)
	MLPLANE_FUZZ_EXAMPLES=$${MLPLANE_FUZZ_EXAMPLES:-400} $(BIN)/python -m pytest -q \
		tests/security/test_rpc_fuzz.py tests/models/test_form_metadata_fuzz.py

# Benchmarks against the real stack (minutes, not part of `make test`; see bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.export_bench
	$(BIN)/python -m bench.upload_bench
	$(BIN)/python -m bench.approval_bench
	$(BIN)/python -m bench.validation_bench

clean:
	rm -rf $(VENV) node_modules web/node_modules web/dist .mlplane .pytest_cache .mypy_cache .ruff_cache .tools
