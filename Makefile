# Everything a fresh machine needs comes from here: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck docs pytest bench system-deps clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use: a real redis-server, and chromium for the Swagger UI test.
system-deps:
	@if ! command -v redis-server >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq || true) && \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server chromium chromium-driver >/dev/null \
	     || echo "WARNING: apt-get could not install redis-server/chromium; those tests will be skipped"); \
	  else \
	    echo "note: redis-server/chromium missing and cannot apt-get; those tests will be skipped"; \
	  fi; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check rs_guard

typecheck: install
	$(BIN)/mypy rs_guard

# The documentation site, built the way a release would publish it: any warning (a broken
# link, a missing API object) fails the build. Output in site/ (ignored by git).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

pytest: install system-deps
	$(BIN)/pytest

test: lint typecheck docs pytest

demo: install
	$(BIN)/python -m examples.demo

bench: install
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = "0" ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || echo "note: wrk not installed; the uvicorn figures use a Python client"
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache test-output site
