# Two commands matter: `make demo` and `make test`. Both bootstrap .venv from nothing
# but a Python >= 3.11 interpreter and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

LOCK   := requirements.lock
# the Node.js wallet of the interoperability tests (tests/interop/nodewallet): the
# OpenWallet Foundation's OpenID4VC libraries, from its own lockfile
NODEWALLET := tests/interop/nodewallet
NODESTAMP  := $(NODEWALLET)/node_modules/.installed

.PHONY: demo test lint typecheck unit unit-sqlite test-node-pg test-a-year-ahead pg-start pg-stop bench screenshots scan clean lock

# Every package comes from requirements.lock, pinned with its hashes (a fresh clone next
# month installs what this one did); then the project itself, editable, without deps.
$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# Refresh requirements.lock from pyproject.toml's dependencies and the dev and bench
# extras, at their newest releases (pip-tools, in a venv of its own); commit the result.
lock:
	@test -x .venv-lock/bin/pip-compile || \
		($(PYTHON) -m venv .venv-lock && .venv-lock/bin/python -m pip install --quiet pip-tools)
	.venv-lock/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --extra dev --extra bench -o $(LOCK) pyproject.toml

# npm ci installs exactly package-lock.json (versions and integrity hashes). Without npm
# a loud notice: the peer tests then fail, saying what is missing.
$(NODESTAMP): $(NODEWALLET)/package.json $(NODEWALLET)/package-lock.json
	@if command -v npm >/dev/null; then \
		cd $(NODEWALLET) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
		echo "*** npm (Node.js >= 20) not found: the OpenID4VC wallet peer tests will fail ***" >&2; \
	fi

demo: $(STAMP)
	$(BIN)/ccx simulate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict protocol keys mappings cli alliance wallet node simulator ccx bench scripts

# pytest with a throwaway PostgreSQL server (scripts/pg-test-server): it is found or
# installed, started, exported as CCX_TEST_DATABASE_URL and always stopped. scripts/test-suites
# runs the whole suite on SQLite and, beside it on the other core, the node suites on
# PostgreSQL; a failure of either fails. Without PostgreSQL a loud notice is printed and
# its tests skip.
# Debian's Chromium for the browser tests (tests/pages) is found or installed first
# (scripts/chromium); without it those tests fail, saying so.
unit: $(STAMP) $(NODESTAMP)
	@CCX_CHROMIUM=$$(bash scripts/chromium ensure || true) \
		bash scripts/pg-test-server run -- bash scripts/test-suites $(PYTEST_ARGS)

# pytest alone (the PostgreSQL tests skip unless CCX_TEST_DATABASE_URL is set)
unit-sqlite: $(STAMP) $(NODESTAMP)
	@CCX_CHROMIUM=$$(bash scripts/chromium ensure || true) $(BIN)/pytest $(PYTEST_ARGS)

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

# The suite with the clock a year ahead (scripts/a-year-ahead: libfaketime): no test may
# depend on today's date. Not part of make test (about 25 minutes under libfaketime). The
# SQLite writer-lock tests wait on a lock with a timeout, which libfaketime turns into a
# wait of a year: they are left out.
test-a-year-ahead: $(STAMP)
	bash scripts/a-year-ahead +365d $(BIN)/python -m pytest -p no:cacheprovider \
		--deselect tests/storage/test_writer_lock.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/verify.py

# The pages at phone and desktop size into docs/img (docs/PAGES.md): a small simulated
# alliance walked in Chromium (scripts/chromium finds or installs it, and a Chinese font).
screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py --out docs/img

# An external scanner against a running node (docs/SECURITY.md, "An external scanner"):
# schemathesis's coverage, fuzzing and stateful phases, audience by audience (~3 minutes).
scan: $(STAMP)
	$(BIN)/python scripts/scan.py

clean:
	rm -rf $(VENV) .venv-lock .pytest_cache .mypy_cache .ruff_cache build *.egg-info \
		$(NODEWALLET)/node_modules
