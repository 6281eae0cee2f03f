# The two commands a newcomer needs (see README.md): `make demo` and `make test`.
# Both create ./.venv on first use, so nothing has to be installed by hand:
# `demo` installs the package alone, `test` adds the [dev] extra (server, dbt, test tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-base

.PHONY: install demo test lint bench
install: $(VENV)/.installed-dev

demo: $(VENV)/.installed-base
	$(BIN)/sutro-sql demo

test: $(VENV)/.installed-dev
	$(BIN)/ruff check sutro_sql tests bench examples
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check sutro_sql tests bench examples
	$(BIN)/ruff format --check sutro_sql tests bench examples

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/local_backend.py
	$(BIN)/python bench/sql_overhead.py
	$(BIN)/python bench/sql_latency.py
	$(BIN)/python bench/sql_dedup.py
	$(BIN)/python bench/remote_throughput.py
	$(BIN)/python bench/batch_scale.py
	$(BIN)/python bench/remote_body_memory.py
