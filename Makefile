# Set-up and everyday commands. `make run` and `make test` install into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sciml-installed
# The CPU build of torch is installed first where it is available; otherwise pip picks one.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -m "not slow"

.PHONY: install run test test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH) || $(PY) -m pip install -q torch
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: install
	$(VENV)/bin/sciml solve solvers/poisson2d.toml

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/cg_vs_scipy.py

clean:
	rm -rf out .pytest_cache
