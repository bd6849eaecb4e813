# Two commands for a fresh machine: `make quickstart` and `make test`.
# Both create .venv, install the pinned dependencies (constraints.txt) and the
# Debian data/browser packages when they are missing, then run.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEBIAN_PKGS := dataset-fashion-mnist dict-gcide chromium chromium-driver
PIP_QUIET := 2>&1 | { grep -v "is ignored" || true; }

.PHONY: setup system-deps quickstart test test-slow lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip $(PIP_QUIET)
	$(PY) -m pip install -q torch==2.13.0 $(PIP_QUIET)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev,bench]' $(PIP_QUIET)
	touch $(STAMP)

system-deps:
	@missing=""; for p in $(DEBIAN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get install -y -q $$missing >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null)); \
	  else echo "note: Debian packages missing:$$missing (install them with apt-get for Fashion-MNIST and the browser test)"; fi; \
	fi

setup: $(STAMP) system-deps

quickstart: setup
	$(VENV)/bin/nas quickstart

# make test: lint, import contracts and every test not marked slow (minutes). make test-slow: the
# end-to-end tests marked slow (Ray clusters, the quickstart, every experiment's smoke run). CI
# (.ci/run) runs both.
test: setup
	$(VENV)/bin/ruff check nas dashboard experiments tests
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -m "not slow" --durations=10

test-slow: setup
	$(PY) -m pytest -q -m slow --durations=15

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
