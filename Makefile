# contactsync — `make run` starts the service with a demo workspace; `make test` runs everything.
PY := .venv/bin/python
STAMP = .venv/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test check lint format bench services docs screenshots clean

$(STAMP): pyproject.toml
	@bash scripts/bootstrap.sh

run: $(STAMP)
	@$(PY) -m contactsync demo
	@$(PY) -m contactsync serve

services:
	@bash scripts/services.sh

lint: $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench
	$(PY) -m mypy --strict src

format: $(STAMP)
	$(PY) -m ruff format src tests bench
	$(PY) -m ruff check --fix src tests bench

# the whole suite: lint, types, and every test on SQLite and PostgreSQL
test: $(STAMP) services lint
	$(PY) -m pytest -q -n auto --dist loadfile

# the quick loop: everything but the slow fault/soak tests
check: $(STAMP) services
	$(PY) -m ruff check src tests bench
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow" -x

bench: $(STAMP)
	$(PY) bench/hub_upsert.py
	$(PY) bench/sync_engine.py
	$(PY) bench/sql_connector.py
	$(PY) bench/exchange_import.py
	$(PY) bench/exchange_export.py
	$(PY) bench/realtime_api.py
	$(PY) bench/console_pages.py

docs: $(STAMP)
	$(PY) -m contactsync errors --markdown > docs/errors.md
	$(PY) scripts/gen_docs.py

# the console's pictures in docs/screenshots/, taken by the browser tests
screenshots: $(STAMP) services
	CONTACTSYNC_UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/browser

clean:
	rm -rf .venv var .pytest_cache .mypy_cache .ruff_cache
