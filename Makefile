# One command each: `make course` runs the course headless, `make lab` opens it, `make test` tests it.
# Each sets everything up first (a virtual environment in .venv, torch, sft_utils, the offline tokenizer).
PYTHON ?= python3
VENV ?= .venv
# PyTorch: a CPU build from PyTorch's CPU index by default (PyPI's Linux build carries GBs of CUDA).
# On a GPU machine: make course TORCH_INDEX= TORCH_SPEC=torch  (PyPI's default build, with CUDA).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin

# torch first and on its own in venv $(1): otherwise a dependency would pull PyPI's default (CUDA) build.
# --no-deps: torch's own needs (sympy, filelock, …) come from PyPI with the next install.
install_torch = $(1)/bin/python -c "import torch" 2>/dev/null || \
  $(1)/bin/python -m pip install --quiet --no-deps "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
STAMP := $(VENV)/.sft-course-installed

.PHONY: setup course lab test test-notebooks test-slow test-transformers4 colab-rehearsal test-floors clean-notebooks

setup: $(STAMP)
	$(BIN)/python -m sft_utils.assets

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(call install_torch,$(VENV))
	$(BIN)/python -m pip install --quiet --constraint constraints.txt -e ".[lab,dev]"
	touch $(STAMP)

course: setup
	$(BIN)/python -m sft_utils.course.notebooks --out build/notebooks

# JupyterLab refuses to run as root without --allow-root (containers, Colab-like VMs).
lab: setup
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The tests (a few minutes); the notebook replay and the longer runs are stages of their own, which CI runs too.
test: setup
	$(BIN)/python -m pytest tests -m "not slow"

# Every notebook replayed with nbval: each cell must run, tagged cells must print what the committed ones print.
test-notebooks: setup
	$(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env

# The longer learning runs and rehearsals (marker `slow`).
test-slow: setup
	$(BIN)/python -m pytest tests -m slow

# pyproject.toml promises transformers 4.56.2+ too (Colab images may lag): the unit tests on the last 4.x.
# The notebooks' checked outputs are those of the pinned 5.x, so nbval is not run here; nor the browser test,
# which checks the frontend (JupyterLab is not installed in this environment).
VENV4 ?= .venv-transformers4
test-transformers4: setup
	test -x $(VENV4)/bin/python || $(PYTHON) -m venv $(VENV4)
	$(call install_torch,$(VENV4))
	$(VENV4)/bin/python -m pip install --quiet "transformers>=4.56.2,<5" -e ".[dev]"
	$(VENV4)/bin/python -m pytest tests -m "not browser and not slow"

# Every notebook top to bottom on a stand-in Colab: a fresh venv in build/colab-rehearsal/ with the newest
# transformers 4.x and $(TORCH_SPEC), sft-course installed by the notebooks' own set-up cell from the committed
# HEAD (SFT_COURSE_REPO=<url or path> for another source), a stand-in google.colab. See tools/colab_rehearsal.py.
colab-rehearsal: setup
	$(BIN)/python tools/colab_rehearsal.py --torch "$(TORCH_SPEC)" --torch-index "$(TORCH_INDEX)"

# The floors of pyproject.toml are true: every dependency at its lowest allowed version (constraints-floors.txt),
# installed together in a fresh venv, then a toy training run that must learn. PyPI's torch 2.4.0 brings its
# CUDA libraries (about 3 GB to download, 5 GB installed): not part of CI.
VENV_FLOORS ?= build/venv-floors
test-floors:
	rm -rf $(VENV_FLOORS) && $(PYTHON) -m venv $(VENV_FLOORS)
	$(VENV_FLOORS)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_FLOORS)/bin/python -m pip install --quiet --constraint constraints-floors.txt .
	cd $(VENV_FLOORS) && HF_HUB_OFFLINE=1 bin/python -m sft_utils.train --data toy:facts --steps 20 --no-progress \
	  --output-dir toy-run
	cd $(VENV_FLOORS) && bin/python -c "import json; v = json.load(open('toy-run/history.json'))['valid_loss']; \
	  assert v[-1] < v[0] - 1, v; print(f'floors: toy run learned, validation loss {v[0]:.2f} -> {v[-1]:.2f}')"

# Maintainers: re-execute the committed notebooks in place, cleaned for committing.
clean-notebooks: setup
	$(BIN)/python -m sft_utils.course.notebooks --inplace
