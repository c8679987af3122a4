# Two commands matter: `make demo` and `make test`. Both bootstrap .venv from nothing
# but a Python >= 3.11 interpreter and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit unit-sqlite test-node-pg pg-start pg-stop bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ccx simulate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict protocol keys mappings

# pytest with a throwaway PostgreSQL server (scripts/pg-test-server): it is found or
# installed, started, exported as CCX_TEST_DATABASE_URL and always stopped. scripts/test-suites
# runs the whole suite on SQLite and, beside it on the other core, the node suites on
# PostgreSQL; a failure of either fails. Without PostgreSQL a loud notice is printed and
# its tests skip.
unit: $(STAMP)
	@bash scripts/pg-test-server run -- bash scripts/test-suites $(PYTEST_ARGS)

# pytest alone (the PostgreSQL tests skip unless CCX_TEST_DATABASE_URL is set)
unit-sqlite: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# the node suites on PostgreSQL alone (tests/storage/node_postgres.py; make test runs them too)
test-node-pg: $(STAMP)
	@bash scripts/pg-test-server run -- $(BIN)/python -m pytest -p tests.storage.node_postgres \
		--node-db=postgresql tests/node $(PYTEST_ARGS)

# a server that stays up for manual runs: set -a; eval "$$(make -s pg-start)"; set +a
pg-start:
	@bash scripts/pg-test-server start

pg-stop:
	@bash scripts/pg-test-server stop

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/verify.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
