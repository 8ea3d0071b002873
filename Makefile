# The two commands a new machine needs: `make serve` and `make test`.
# Both create .venv (scripts/install.sh) on first use.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup serve test test-fast lint bench-quick docs

setup:
	./scripts/install.sh

serve: setup
	$(VENV)/bin/distill serve

test: setup
	./scripts/test_tiers.sh

test-fast: setup
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not (e2e or train or browser or chaos or postgres or redis or fuzz)"

lint: setup
	$(VENV)/bin/ruff check proxy trainer bench tests && $(VENV)/bin/mypy && $(VENV)/bin/lint-imports

bench-quick: setup
	$(PY) -m bench.banking77.run --quick

docs: setup
	$(PY) scripts/update_readme.py
