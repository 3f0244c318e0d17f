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
	$(BIN)/ruff check lib tests scripts bench
	$(BIN)/ruff format --check lib tests scripts bench
	$(BIN)/python -m pytest

# JupyterLab on 127.0.0.1 (the URL with its token is printed), notebooks/ open, and the python3
# kernel running .venv's interpreter; 01_backup's default source is data/sample.db, made here once.
lab: $(STAMP)
	@test -f data/sample.db || $(BIN)/runbook sample data/sample.db --scale 0.02
	JUPYTER_PREFER_ENV_PATH=1 $(BIN)/jupyter lab --no-browser --ServerApp.ip=127.0.0.1 \
		--ServerApp.root_dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Regenerates the committed notebooks headlessly (papermill, fixed sample, fresh target) and strips
# volatile metadata (as nbstripout --keep-output --keep-count --keep-id would); tests/
# test_notebooks.py fails when a committed notebook was not produced this way.
notebooks: $(STAMP)
	$(BIN)/python scripts/regenerate_notebooks.py

lint: $(STAMP)
	$(BIN)/ruff check lib tests scripts bench

format: $(STAMP)
	$(BIN)/ruff format lib tests scripts bench

clean:
	-$(BIN)/runbook server stop
	rm -rf $(VENV) .runbook
