# Two commands do all the set-up on a fresh machine with Python 3.11: `make demo`, `make test`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench java sysdeps clean help

help:
	@echo "make demo   build the demo project in demo/, load it, print where its report is"
	@echo "make test   lint, type-check, import contracts, and the test suite (DuckDB + Spark)"
	@echo "make bench  benchmarks (not part of make test); figures in benchmarks/results/"

$(BIN)/python:
	@echo "==> creating $(VENV) with $$($(PY) --version)"
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jingzhun needs Python >= 3.11")'
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# LightGBM's wheel links the system's OpenMP runtime (libgomp1); the reports' PNG charts
# (kaleido) and the console's browser tests need Chromium. Install what is missing (apt-get).
sysdeps:
	@missing=""; \
	ldconfig -p 2>/dev/null | grep -q libgomp.so.1 || missing="$$missing libgomp1"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then echo "==> installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

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

demo: sysdeps $(VENV)/.installed-base
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

# Two pytest workers, a test file each at a time (files share module and session fixtures, the
# PostgreSQL tests share one database): 11 min on two cores against 17 serially. PYTEST_WORKERS=0
# runs serially.
PYTEST_WORKERS ?= 2
test: sysdeps lint java
	@echo "==> pytest (DuckDB and Spark engines, $(PYTEST_WORKERS) workers)"
	./scripts/with-postgres.sh $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: sysdeps $(VENV)/.installed-test java
	@echo "==> benchmarks (figures written to benchmarks/results/)"
	$(BIN)/python -m benchmarks.ingest_parquet
	$(BIN)/python -m benchmarks.identity_match
	$(BIN)/python -m benchmarks.profiles
	$(BIN)/python -m benchmarks.segments_count
	$(BIN)/python -m benchmarks.models_score
	$(BIN)/python -m benchmarks.delivery_smtp
	$(BIN)/python -m benchmarks.recommend_bench
	$(BIN)/python -m benchmarks.recommend_eval
	$(BIN)/python -m benchmarks.recommend_repurchase_ceiling
	$(BIN)/python -m benchmarks.uplift_hillstrom
	$(BIN)/python -m benchmarks.journeys_trigger
	$(BIN)/python -m benchmarks.collect_load --seconds 20
	$(BIN)/python -m benchmarks.ads_decide
	$(BIN)/python -m benchmarks.encryption_at_rest

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
