# The virtualenv lives in .venv at the repo root; every target makes it when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-long lint docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## test: lint, type-check and run every test (deterministic Hypothesis profile)
test: $(STAMP) lint
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest --cov --cov-report=term

## test-long: the same tests with many more Hypothesis examples, for local runs
test-long: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check otelkv tests
	$(BIN)/ruff format --check otelkv tests
	$(BIN)/mypy otelkv tests

## docs: regenerate the generated parts of docs/ from the code
docs: $(STAMP)
	$(BIN)/python -m otelkv.kubevirt.doc docs/parsing.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
