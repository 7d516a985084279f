# glue: `make bench` runs the benchmark on the embedded surrogate zoo, `make test` runs the tests.
# Both create .venv on first use (torch first from the local CPU wheel, then the pinned rest).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELS ?= surrogate16
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PYTEST_ARGS ?=
STAMP := $(VENV)/.glue-installed

.PHONY: venv test bench report clean-results help

help:
	@echo "make venv | make test | make bench [MODELS=surrogate16] [JOBS=cores] | make report [MODELS=...]"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

bench: $(STAMP)
	$(VENV)/bin/glue zoo build $(MODELS)
	$(PY) benchmarks/parallel.py --jobs $(JOBS) -- --models $(MODELS) $(PYTEST_ARGS)
	$(VENV)/bin/glue report --zoo $(MODELS)

report: $(STAMP)
	$(VENV)/bin/glue report --zoo $(MODELS)
