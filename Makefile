# PEFT from Scratch. `make lab` sets up .venv/ (if needed) and opens the course; `make test` sets up
# (if needed) and runs every test. Everything runs on the CPU.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of PyTorch. On this project's machines `torch==2.13.0` is a local CPU wheel; on a Linux
# laptop add TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid the multi-GB CUDA build
# (macOS and Windows get a CPU build from PyPI anyway). That index is searched besides PyPI, where the
# locked versions of torch's own dependencies are; for the pinned version pip prefers its `+cpu` build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# Every install uses the lock as pip constraints: the exact versions CI tested (`make lock` refreshes it).
LOCK := requirements-lock.txt
STAMP := $(VENV)/.installed
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: setup lab test test-elsewhere lock pretrain notebooks check-notebooks benchmark clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(LOCK) "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# Refresh the lock with today's releases: a throwaway venv (build/lock-venv, removed after) gets torch and the
# course without constraints, and tools/lock.py writes its `pip freeze` into $(LOCK) and environment.yml's pins.
# .venv/ is not touched; run `make test` next (the changed lock reinstalls .venv/) and commit both files.
LOCK_VENV := build/lock-venv

lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	$(LOCK_VENV)/bin/python -m pip freeze --all --exclude-editable > $(LOCK_VENV)/freeze.txt
	$(PYTHON) tools/lock.py $(LOCK_VENV)/freeze.txt
	rm -rf $(LOCK_VENV)

# The course's JupyterLab settings (no news or update pop-ups over chapter 1), installed into the venv's own
# settings folder, never the user's home.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings

lab: setup
	mkdir -p $(LAB_SETTINGS) && cp minitransformer/course/lab/overrides.json $(LAB_SETTINGS)/overrides.json
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) $(LAB_ARGS) chapters/01_mini_transformer.ipynb

# Every solution notebook, run once more as another learner's machine would run it: PyTorch's plain
# (non-vectorised) CPU kernels, whose last bits differ, and the live re-runs of a study on seeds it never stored.
# A check that passes only because it reproduces this machine's digits or one seed's path can fail here.
SOLUTION_NOTEBOOKS := $(wildcard solutions/*.ipynb)
ELSEWHERE := MINITRANSFORMER_LIVE_SEED_OFFSET=1000 ATEN_CPU_CAPABILITY=default

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(ELSEWHERE) $(BIN)/python -m pytest $(PYTEST_ARGS) $(SOLUTION_NOTEBOOKS)

test-elsewhere: setup
	$(ELSEWHERE) $(BIN)/python -m pytest $(PYTEST_ARGS) $(SOLUTION_NOTEBOOKS)

pretrain: setup
	$(BIN)/python -m minitransformer.pretrain

# Re-run the solution notebooks (storing their outputs), then regenerate the student chapters.
notebooks: setup
	$(BIN)/python -m minitransformer.course.notebooks execute $(NOTEBOOKS)
	$(BIN)/python -m minitransformer.course.notebooks generate

# The course's own benchmarks (a few minutes; not part of `make test`): writes benchmarks/results.json.
benchmark: setup
	$(BIN)/python benchmarks/run.py

check-notebooks: setup
	$(BIN)/python -m minitransformer.course.notebooks check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
