# The workbook's two commands. Both create .venv on a fresh machine, install, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test smoke lint clean-venv

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: execute the numbered notebooks headless into results/ and write results/summary.md
run: $(STAMP)
	$(PY) -m jepa_core.runner.workbook run

## make smoke: the same, at smoke size (a few minutes)
smoke: $(STAMP)
	$(PY) -m jepa_core.runner.workbook run --smoke

## make test: ruff (notebooks included), pytest, nbval on every notebook at smoke size
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest tests
	JEPA_SMOKE=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

lint: $(STAMP)
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)
