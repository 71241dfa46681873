# The workbook's two commands. Both create .venv on a fresh machine, install, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test smoke lint clean-venv browser

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

## make browser: Debian's chromium for tests/test_browser.py (Playwright drives it; it comes with
## the dev extra). Installed with apt when missing and we are root (CI); otherwise the browser test
## is skipped, saying how to install it (under CI=true it fails instead).
JEPA_CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ -x "$(JEPA_CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser test"; \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
		|| echo "make: installing chromium failed; tests/test_browser.py will be skipped (under CI it fails)"; \
	else \
		echo "make: no $(JEPA_CHROMIUM); tests/test_browser.py will be skipped (under CI it fails)."; \
		echo "      install it with: sudo apt-get update && sudo apt-get install -y chromium"; \
	fi

## make test: ruff format --check, ruff check (notebooks included), pytest (the browser test
## included), nbval on every notebook at smoke size
test: $(STAMP) browser
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m pytest tests
	JEPA_SMOKE=1 $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

lint: $(STAMP)
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

clean-venv:
	rm -rf $(VENV)
