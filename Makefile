# Project set-up and jobs. `make demo` and `make test` are all a fresh clone needs.
# Where torch comes from is decided by tools/bootstrap.py (its docstring has the rules): a torch
# already in .venv is kept; else this machine's local CPU wheel if pip's find-links has one
# (pinned by constraints.txt); else PyTorch's CPU index on Linux, PyPI's default on macOS.
# Choose explicitly with TORCH_INDEX=local|cpu|default|<index URL>, e.g. on a GPU machine:
#   make demo TORCH_INDEX=https://download.pytorch.org/whl/cu128
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_INDEX ?=
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint docs dist clean

$(STAMP): pyproject.toml constraints.txt tools/bootstrap.py
	$(PYTHON) tools/bootstrap.py --venv $(VENV) --extras test,docs --constraints constraints.txt --torch-index "$(TORCH_INDEX)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/constrained-unlearn demo

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

dist: $(STAMP)
	$(VENV)/bin/uv build --out-dir dist

clean:
	rm -rf $(VENV) site dist .pytest_cache
