# PEFT from Scratch. `make lab` sets up .venv/ (if needed) and opens the course; `make test` sets up
# (if needed) and runs every test. Everything runs on the CPU.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of PyTorch. On this project's machines `torch==2.13.0` is a local CPU wheel; on a Linux
# laptop add TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid the multi-GB CUDA build
# (macOS and Windows get a CPU build from PyPI anyway).
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, CI) unless told it may.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: setup lab test pretrain notebooks check-notebooks benchmark clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The course's JupyterLab settings (no news or update pop-ups over chapter 1), installed into the venv's own
# settings folder, never the user's home.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings

lab: setup
	mkdir -p $(LAB_SETTINGS) && cp minitransformer/lab/overrides.json $(LAB_SETTINGS)/overrides.json
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) $(LAB_ARGS) chapters/01_mini_transformer.ipynb

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

pretrain: setup
	$(BIN)/python -m minitransformer.pretrain

# Re-run the solution notebooks (storing their outputs), then regenerate the student chapters.
notebooks: setup
	$(BIN)/python -m minitransformer.notebooks execute $(NOTEBOOKS)
	$(BIN)/python -m minitransformer.notebooks generate

# The course's own benchmarks (a few minutes; not part of `make test`): writes benchmarks/results.json.
benchmark: setup
	$(BIN)/python benchmarks/run.py

check-notebooks: setup
	$(BIN)/python -m minitransformer.notebooks check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
