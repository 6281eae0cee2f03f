# The two commands a newcomer needs (see README.md): `make demo` and `make test`.
# Both create ./.venv on first use, so nothing has to be installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/sutro-sql: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/sutro-sql

.PHONY: install demo test lint bench
install: $(BIN)/sutro-sql

demo: install
	$(BIN)/sutro-sql demo

test: install
	$(BIN)/ruff check sutro_sql tests bench examples
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/local_backend.py
	$(BIN)/python bench/sql_overhead.py
	$(BIN)/python bench/sql_latency.py
	$(BIN)/python bench/sql_dedup.py
