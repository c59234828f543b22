# Two commands matter: `make run` and `make test`. Everything else is a helper they call.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint typecheck contracts unit lock bench-ledger clean

$(STAMP): pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Start tally (API server + job worker) on the embedded PostgreSQL, with demo data on first start.
run: $(STAMP)
	TALLY_LOG_FORMAT=$${TALLY_LOG_FORMAT:-console} $(BIN)/tally serve --with-worker --demo

## Lint, type-check, import contracts, then the whole test suite on real PostgreSQL.
test: $(STAMP) lint typecheck contracts unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports --no-cache

unit: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup -q -m "not solo"
	$(BIN)/pytest -q -m solo

bench-ledger: $(STAMP)
	$(BIN)/tally bench ledger

## Regenerate the pinned lock files from pyproject.toml (needs network access to the package index).
lock:
	$(PYTHON) -m venv .lockenv && .lockenv/bin/pip install --quiet uv
	.lockenv/bin/uv pip compile pyproject.toml --python-version 3.11 -o requirements/runtime.lock
	.lockenv/bin/uv pip compile pyproject.toml --extra dev --python-version 3.11 -o requirements/dev.lock

clean:
	rm -rf $(VENV) .lockenv .tally .pytest_cache .mypy_cache .ruff_cache
