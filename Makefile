# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each bootstraps .venv (Python 3.11+ and make are all it needs).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lab bench notebooks lint format clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/runbook demo

test: $(STAMP)
	$(BIN)/ruff check lib tests scripts
	$(BIN)/ruff format --check lib tests scripts
	$(BIN)/python -m pytest

lab: $(STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --no-browser --notebook-dir=notebooks

bench: $(STAMP)
	$(BIN)/python bench/run.py

notebooks: $(STAMP)
	$(BIN)/python scripts/regenerate_notebooks.py

lint: $(STAMP)
	$(BIN)/ruff check lib tests scripts

format: $(STAMP)
	$(BIN)/ruff format lib tests scripts

clean:
	-$(BIN)/runbook server stop
	rm -rf $(VENV) .runbook
