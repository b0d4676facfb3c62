# Two commands do all the set-up on a fresh machine with Python 3.11: `make demo`, `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench java clean help

help:
	@echo "make demo   build the demo project in demo/, load it, print where its report is"
	@echo "make test   lint, type-check, import contracts, and the test suite (DuckDB + Spark)"
	@echo "make bench  benchmarks (not part of make test); figures in benchmarks/results/"

$(BIN)/python:
	@echo "==> creating $(VENV) with $$($(PY) --version)"
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jingzhun needs Python >= 3.11")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	@echo "==> installing jingzhun (pinned dependencies) into $(VENV)"
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	@echo "==> installing jingzhun with the dev and spark extras into $(VENV)"
	$(BIN)/python -m pip install --quiet -e ".[dev,spark]"
	@touch $@ $(VENV)/.installed-base

# PySpark needs a Java runtime; install Debian's when the machine has none (CI runs as root).
java:
	@if command -v java >/dev/null 2>&1; then echo "==> java: $$(java -version 2>&1 | head -1)"; \
	else echo "==> installing a Java 17 runtime for Spark (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; fi

demo: $(VENV)/.installed-base
	@echo "==> building the demo project in demo/ (Online Retail sample + generated data)"
	$(BIN)/jingzhun demo demo

lint: $(VENV)/.installed-test
	@echo "==> ruff check"
	$(BIN)/ruff check src tests benchmarks
	@echo "==> ruff format --check"
	$(BIN)/ruff format --check src tests benchmarks
	@echo "==> mypy src/jingzhun"
	$(BIN)/mypy
	@echo "==> import-linter: data flows one way"
	$(BIN)/lint-imports

test: lint java
	@echo "==> pytest (DuckDB and Spark engines)"
	./scripts/with-postgres.sh $(BIN)/pytest

bench: $(VENV)/.installed-test java
	@echo "==> benchmarks (figures written to benchmarks/results/)"
	$(BIN)/python -m benchmarks.ingest_parquet
	$(BIN)/python -m benchmarks.identity_match
	$(BIN)/python -m benchmarks.profiles

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
