# The README's two commands are `make run` and `make test`; everything installs itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint e2e bench install clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,postgres]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m config.serve

test: lint
	$(PY) -m pytest

e2e: $(STAMP)
	$(PY) -m pytest -m e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

bench: $(STAMP)
	@.ci/bench-tools
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
