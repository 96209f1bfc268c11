# Thin targets; the logic lives in the archbench command and the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
# make up PORT=8080 HOST=0.0.0.0
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install up test test-fast lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "installing archbench and its dependencies into $(VENV) (TensorFlow among them: a few minutes the first time)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -e '.[worker,dev]'
	touch $@

up: install
	$(VENV)/bin/archbench up --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest

# The inner loop: no Postgres, Redis, worker processes or training (README "Development").
# The services point at closed ports and CI=true turns a skip into a failure, and
# ARCHBENCH_TEST_NO_TRAINING makes fit() fail: a test that needs either and lacks its
# marker fails here instead of slowing the loop.
test-fast: install
	CI=true ARCHBENCH_TEST_PG=postgresql://postgres@127.0.0.1:9/postgres \
	  ARCHBENCH_TEST_REDIS=redis://127.0.0.1:9 ARCHBENCH_TEST_NO_TRAINING=1 \
	  $(PY) -m pytest tests/unit -m "not services and not worker and not training and not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install
	cd bench && ../$(PY) analysis_speed.py && ../$(PY) metrics_export.py && \
	  ../$(PY) api_load.py && ../$(PY) many_small.py && ../$(PY) overhead.py

clean:
	rm -rf $(VENV) .archbench .pytest_cache .mypy_cache .ruff_cache
