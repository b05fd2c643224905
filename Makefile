# Kino — build, test, demo. Every target works on a fresh machine: `make install` builds what the others need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install system-deps protos demo test test-all lint bench clean

install: system-deps $(STAMP)

# ffmpeg (mux, probe) and espeak-ng (speech) are system packages; the package lists are refreshed
# only when the first try fails (a fresh image may have none).
SYSTEM_PACKAGES := ffmpeg espeak-ng
system-deps:
	@command -v ffmpeg >/dev/null && command -v espeak-ng >/dev/null || \
	  apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES) || \
	  { apt-get update && apt-get install -y --no-install-recommends $(SYSTEM_PACKAGES); }

# The venv is rebuilt only when pyproject.toml changes. torch first, pinned, so that no
# dependency pulls a CUDA build.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# Generated code goes to gen/kino/v1 and is committed, so install does not regenerate it:
# tests/test_protos_fresh.py fails when someone edits a .proto and forgets `make protos`.
protos: $(STAMP)
	$(PY) -m services.common.protogen gen

demo: install
	$(VENV)/bin/kino demo

test: install
	$(PY) -m pytest -q -m "not slow"

test-all: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check services training tests
	$(VENV)/bin/ruff format --check services training tests

bench: install
	$(PY) -m services.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
