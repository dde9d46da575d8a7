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

.PHONY: up test lint fmt typecheck buf-lint buf-breaking generate bench clean help web web-check chromium fuzz

help:
	@echo "make up        embedded PostgreSQL + both services + Envoy on :8080 (foreground)"
	@echo "make test      lint, type checks, buf lint and breaking, the web app's checks, the whole test suite with the browser tests (what CI runs)"
	@echo "make generate  regenerate generated/ and web/src/gen/ from protos/"
	@echo "make web       build the web app (web/dist), which make up serves on the gateway"
	@echo "make fmt       format with ruff"
	@echo "make fuzz      the fuzz suite at length (every RPC and the multipart upload, 400 requests each)"
	@echo "make bench     export, upload and approval benchmarks against the real stack (bench/README.md)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlplane needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
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

up: $(STAMP) web/dist/index.html
	$(BIN)/mlplane up

generate: $(STAMP) $(WEB_STAMP)
	$(BIN)/python scripts/generate_protos.py
	cd web && npm run generate

# The web app's own checks: types, lint, unit and component tests (Vitest).
web-check: $(WEB_STAMP)
	cd web && npm run typecheck
	cd web && npm run lint
	cd web && npm test

# Debian's Chromium for the browser tests (tests/web): Playwright cannot download its own here.
chromium:
	@bash scripts/ensure_chromium.sh

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

test: $(STAMP) chromium buf-lint buf-breaking lint typecheck web-check
	$(BIN)/python -m pytest

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

clean:
	rm -rf $(VENV) node_modules web/node_modules web/dist .mlplane .pytest_cache .mypy_cache .ruff_cache
