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
	$(BIN)/actcli train $(DEMO_FLAGS) --experiment demo --model r3d_tiny --epochs 15 --lr 0.005 --dropout 0.2
	$(BIN)/actcli benchmark --experiment demo --batch-size 2
	$(BIN)/actcli test --experiment demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
