# ddpm_lit: one command each for the things a user or CI does.
# `make demo` trains and samples; `make test` runs every notebook and tests/; both build .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: help install system-deps demo test test-fast test-slow lab export clean-nbs sync-check readme docs bench-cpu

help:
	@echo "make demo      train a small DDPM on Fashion-MNIST and sample a grid (sets up .venv)"
	@echo "make test      run every notebook (nbdev's runner) and tests/ under pytest (sets up .venv)"
	@echo "make test-fast the quick loop: tests/ without the notebooks, torchrun, the wheel and the browsers (< 2 min)"
	@echo "make test-slow the same as make test, also running cells flagged 'slow' (real training)"
	@echo "make export    nbdev-export + nbdev-clean: regenerate ddpm_lit/ from nbs/"
	@echo "make readme    regenerate README.md from nbs/index.ipynb (offline, no Quarto)"
	@echo "make docs      build the static documentation site into docs/ (offline, no Quarto)"
	@echo "make lab       JupyterLab on the chapters in nbs/ (sets up .venv)"
	@echo "make system-deps  the Debian packages the tests and the demo use (chromium, chromium-driver,"
	@echo "               dataset-fashion-mnist): installed when root with apt-get, else the command is printed"

# The venv is rebuilt when pyproject.toml changes. torch and torchvision are resolved by pip as a pair.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

install: $(STAMP)

# System packages, through tools/system_deps.sh: silent when present, installed when root with apt-get, else named
# with the command that installs them (the tests that need them skip and are listed at the end of `make test`).
# `browser`: chromium and chromium-driver (the browser tests); `data`: dataset-fashion-mnist. Each target asks only
# for what it uses; `make docs` needs none (MathJax comes from the dev extras when Debian's libjs-mathjax is absent).
SYSTEM_DEPS := browser data
system-deps:
	@tools/system_deps.sh $(SYSTEM_DEPS)

demo: SYSTEM_DEPS := data
demo: $(STAMP) system-deps
	@# a second `make demo` continues (or just re-samples) the run instead of refusing its directory
	$(BIN)/ddpm-lit train --preset demo --out runs/demo $(if $(wildcard runs/demo/checkpoints/step_*.pt),--resume)
	@# one sampling pass: 500 images (DDIM-50, eta 1, seed 0) for the FID; the grid shows the first 64
	$(BIN)/ddpm-lit sample runs/demo --n 500 --sampler ddim --steps 50 --eta 1 --npz runs/demo/samples.npz --out runs/demo/samples.png --grid-n 64
	@# how good: FID of those 500 on our classifier's features, with the real-data floor at that n
	$(BIN)/ddpm-lit evaluate runs/demo --samples runs/demo/samples.npz --bpd-n 0
	@echo "checkpoint: runs/demo/checkpoints/   metrics: runs/demo/metrics.jsonl   grid: runs/demo/samples.png   FID: runs/demo/eval.json"

# Two pytest workers with one thread each use the two cores better than one process with two threads.
test: $(STAMP) system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests

# the quick inner loop: every test not marked slow (no notebooks, torchrun, wheel or browser), under two minutes
test-fast: $(STAMP) system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -m "not slow" tests

test-slow: $(STAMP) system-deps
	DDPM_LIT_FORCE_FLAGS=slow OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 tests

export: $(STAMP)
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean

# Fails when nbdev-export or nbdev-clean would change a tracked file.
sync-check: $(STAMP)
	$(BIN)/nbdev-export
	$(BIN)/nbdev-clean
	@if [ -n "$$(git status --porcelain -- nbs ddpm_lit)" ]; then \
	  echo "nbdev-export/nbdev-clean changed these files: notebooks and ddpm_lit/ are out of sync or unclean:"; \
	  git status --porcelain -- nbs ddpm_lit; git --no-pager diff --stat -- nbs ddpm_lit; exit 1; fi
	@echo "notebooks and package in sync, notebooks clean"

readme: $(STAMP)
	$(BIN)/python tools/build_docs.py readme

# into docs/ (nbdev's doc_path in pyproject.toml, where nbdev-docs writes the Quarto site too); open docs/index.html
docs: $(STAMP)
	$(BIN)/python tools/build_docs.py site

# JupyterLab on the chapters; the kernel is the venv's. LAB_ARGS for more, e.g. make lab LAB_ARGS='--no-browser --port 8890'
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=nbs $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# The CPU table of nbs/10_benchmark.ipynb (installs the peers diffusers and denoising-diffusion-pytorch)
bench-cpu: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/bench.py --device cpu --config small --threads 1 --json bench/results/cpu-small.json
