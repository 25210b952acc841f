# Two commands do all set-up: `make demo` and `make test`. Each creates .venv when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-fast bench lint readme slurm-up slurm-down

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m bpgrid.sweep +grid=quick
	$(PY) -m bpgrid.report +grid=quick

test: $(VENV)/.installed
	$(PY) -m pytest

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow and not slurm and not latex"

bench: $(VENV)/.installed
	$(PY) benchmarks/feedback_overhead.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

readme: $(VENV)/.installed
	$(PY) -m bpgrid.choices

slurm-up:
	bash launch/slurm_local.sh up

slurm-down:
	bash launch/slurm_local.sh down
