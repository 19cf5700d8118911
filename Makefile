# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATA := data/synthetic
DEMO_FLAGS := --dataset synthetic --root $(DEMO_DATA)

.PHONY: install demo demo-anticipation test lint clean-demo ffmpeg-libs

# torchcodec (the faster decoder) needs FFmpeg's shared libraries; without them actcli decodes with PyAV.
# The tests also use the ffmpeg command (libxvid) to write DivX/XviD AVIs as UCF and HMDB51 ship them.
ffmpeg-libs:
	@if ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so' && command -v ffmpeg >/dev/null; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null 2>&1 \
		|| (apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null); \
	else echo "note: FFmpeg's libraries not found (apt-get install ffmpeg); actcli will decode with PyAV"; fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory ffmpeg-libs
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

# Anticipation and early prediction on the synthetic sequences (docs/anticipation.md): data, backbone, features,
# rulstm / avt / attentive_probe / early_lstm, and the table against the baselines and the best possible accuracy.
demo-anticipation: $(STAMP)
	$(BIN)/python -m actcli.demo_anticipation

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
