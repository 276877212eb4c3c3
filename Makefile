# The README's commands. Every target sets up the virtual environment first (reused when present).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.santa-installed
# Every pip call after torch gets the constraints file, so nothing replaces the CPU torch build.
PIPC := $(PIP) install -q -c constraints.txt
# Extra Hydra overrides for `make demo` (e.g. DEMO_ARGS='trainer.max_steps=50').
DEMO_ARGS ?=

.PHONY: setup demo test test-fast lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIPC) setuptools wheel
	# DeepSpeed compiles no ops here (it only trains on CUDA); it needs torch at build time.
	DS_BUILD_OPS=0 $(PIPC) --no-build-isolation deepspeed
	$(PIPC) -e '.[dev]'
	@# MultiPL-E Java tests import javatuples; install it where apt is usable, else skip Java later.
	@if [ ! -f /usr/share/java/javatuples.jar ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		{ apt-get install -y -q libjavatuples-java >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libjavatuples-java >/dev/null 2>&1; }; } \
		|| echo "note: libjavatuples-java not installed (Java benchmarks will be skipped)"; fi
	touch $(STAMP)

demo: setup
	$(PY) train.py $(DEMO_ARGS)

# The house checks first (seconds), then the suite.
test: setup lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: setup
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

# Lint and format ([tool.ruff] in pyproject.toml).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Static types of santa/ ([tool.mypy] in pyproject.toml).
typecheck: setup
	$(PY) -m mypy

bench: setup
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf outputs multirun cache wandb lightning_logs
