# One command each: `make course` runs the course headless, `make lab` opens it, `make test` tests it.
# Each sets everything up first (a virtual environment in .venv, torch, sft_utils, the offline tokenizer).
PYTHON ?= python3
VENV ?= .venv
# A CPU build is enough for the course; on a GPU machine pass e.g. TORCH_SPEC="torch" for pip's default build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.sft-course-installed

.PHONY: setup course lab test clean-notebooks

setup: $(STAMP)
	$(BIN)/python -m sft_utils.assets

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: installed alone, pip would let a dependency pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e ".[lab,dev]"
	touch $(STAMP)

course: setup
	$(BIN)/python -m sft_utils.notebooks --out build/notebooks

# JupyterLab refuses to run as root without --allow-root (containers, Colab-like VMs).
lab: setup
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: setup
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env

# Maintainers: re-execute the committed notebooks in place, cleaned for committing.
clean-notebooks: setup
	$(BIN)/python -m sft_utils.notebooks --inplace
