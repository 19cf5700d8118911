# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATA := data/synthetic
DEMO_FLAGS := --dataset synthetic --root $(DEMO_DATA)

.PHONY: install demo test lint clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/actcli download synthetic --dest $(DEMO_DATA)
	$(BIN)/actcli annotate $(DEMO_FLAGS)
	$(BIN)/actcli train $(DEMO_FLAGS) --experiment demo --frames 8 --stride 4 --crop 64 --epochs 6
	$(BIN)/actcli test $(DEMO_FLAGS) --experiment demo
	$(BIN)/actcli benchmark --experiment demo --batch-size 2

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
