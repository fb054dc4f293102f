# The two commands a newcomer needs:  make book  and  make test.
# Every target creates .venv on first use and installs the pinned set from requirements/lock.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/lock.txt | cksum | cut -d' ' -f1)
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

.PHONY: help install book test test-fast figures bench gpu-paper paper-cpu clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/lock.txt -e ".[book,test]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install the pinned dependencies

# Ray (the optional [ray] extra, for `run --backend ray`) only for the tests: the book never needs it
$(VENV)/.ray-$(shell cat requirements/lock.txt | cksum | cut -d' ' -f1): $(STAMP)
	$(PY) -m pip install -q -c requirements/lock.txt -e ".[ray]"
	rm -f $(VENV)/.ray-* && touch $@
RAY_STAMP = $(VENV)/.ray-$(shell cat requirements/lock.txt | cksum | cut -d' ' -f1)

book: $(STAMP)  ## build the HTML book offline from the committed notebooks -> book/_build/html
	$(VENV)/bin/jupyter-book build book --warningiserror --nitpick --keep-going --quiet
	@echo "Open file://$(CURDIR)/book/_build/html/index.html"

test: $(STAMP) $(RAY_STAMP) book  ## unit tests, pytest --nbval over the notebooks, and the browser test of the built book
	# pytest's exit code 5 (no tests collected) is a failure here, like any other non-zero code
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest --nbval -q

test-fast: $(STAMP)  ## unit tests only
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest tests -q -m "not slow and not browser"

figures: $(STAMP)  ## re-execute every notebook with papermill (default parameters), in place
	$(PY) -m lvae_lib figures $(NOTEBOOKS)

bench: $(STAMP)  ## speed benchmark (training step vs reference, sgemm peak, L_K throughput)
	$(PY) -m lvae_lib bench

# One GPU session, prepared: the paper budget's Fig. 2 models first, then the rest of the Fig. 3 grid, stacked,
# for at most LIMIT seconds; complete records land in $(OUT)/results (checkpoints in $(OUT)/runs stay behind).
# Proved on a CPU with:  make gpu-paper OUT=/tmp/gpu BUDGET=smoke DEVICE=cpu
OUT ?= gpu-out
BUDGET ?= paper
DEVICE ?= cuda
LIMIT ?= 540
gpu-paper: $(STAMP)  ## paper-budget records of Figs. 2-3 on one GPU within LIMIT s (stacked), into OUT
	mkdir -p $(OUT)
	end=$$(( $$(date +%s) + $(LIMIT) )); for target in fig2 fig3; do \
		left=$$(( end - $$(date +%s) )); [ $$left -gt 10 ] || break; \
		timeout --signal=TERM --kill-after=30 $$left $(PY) -m lvae_lib run $$target --budget $(BUDGET) \
			--device $(DEVICE) --stack --results-dir $(OUT)/results --work-dir $(OUT)/runs || [ $$? -eq 124 ] || exit 1; \
	done
	find $(OUT)/results -name record.json | sort

# Fig. 2 at the paper budget on a CPU, two runs at a time (6-8 h a pair, two one-thread processes); checkpoints
# in WORK resume after any interruption; each record lands in results/paper when it completes.
# ONLY="VAE+BN-L5 VAE-L5" completes Fig. 2 at the paper budget.
WORK ?= runs
ONLY ?= LVAE+BN+WU-L5 VAE+BN+WU-L5
paper-cpu: $(STAMP)  ## Fig. 2's models ONLY (default: the central pair) at the paper budget on this CPU (resumable, checkpoints in WORK)
	OMP_NUM_THREADS=1 $(PY) -m lvae_lib run fig2 --budget paper --only $(ONLY) \
		--jobs 2 --threads 1 --work-dir $(WORK)

clean:  ## remove the built book
	rm -rf book/_build
