# The two set-up commands of the README: `make demo` (the main job) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
FORESIGHT := $(VENV)/bin/foresight

.PHONY: venv demo test unit lint bench clean

venv:
	@scripts/bootstrap.sh

## The main job: train on a real log and print the evaluation table.
demo: venv
	scripts/demo.sh

## Every test the project has (unit + integration), as CI runs it.
test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

unit: venv
	$(PY) -m pytest -q -m "not cluster"

## ruff's lint rules (the code's layout is not ruff format's: some tables are kept compact).
lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
