# recsys: the two commands a new user needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RECSYS_HOME ?= $(CURDIR)/data

.PHONY: venv run test test-fast lint format airflow lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@echo "Setting up $(VENV) from requirements.lock (first time: about 3 GB, 2 minutes)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -r requirements.lock
	$(BIN)/python -m pip install -qq --no-deps -e . 2>/dev/null || $(BIN)/python -m pip install --no-deps -e .
	touch $(STAMP)

## Run the nightly DAG once (airflow dags test) on the default synthetic dataset, then show results.
run: venv
	$(BIN)/recsys run $(ARGS)

## The whole test suite (what CI runs).
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The quick tests only (no Spark, no Airflow).
test-fast: venv
	$(BIN)/python -m pytest -m "not spark and not airflow and not slow" $(PYTEST_ARGS)

## Format check and lint (ruff, configured in pyproject.toml; CI runs this before the tests).
lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

## Reformat and apply ruff's safe fixes.
format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Airflow standalone (UI on http://localhost:8080); Ctrl-C stops everything it started.
airflow: venv
	$(BIN)/recsys airflow

## Re-pin the whole environment from pyproject.toml.
lock:
	rm -rf /tmp/recsys-lock && $(PYTHON) -m venv /tmp/recsys-lock
	/tmp/recsys-lock/bin/pip install --quiet --upgrade pip
	/tmp/recsys-lock/bin/pip install --quiet -e '.[test]'
	(echo "# Exact versions of every package in the environment (pip freeze of a clean install)."; \
	 echo "# Regenerate: make lock. Direct dependencies and their pins live in pyproject.toml."; \
	 /tmp/recsys-lock/bin/pip freeze --exclude-editable) > requirements.lock

clean:
	rm -rf $(VENV) data
