# The two commands a newcomer needs:  make book  and  make test.
# Every target creates .venv on first use and installs the pinned set from requirements/lock.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/lock.txt | cksum | cut -d' ' -f1)
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

.PHONY: help install book test test-fast figures bench gpu-data rehearse-gpu paper-cpu clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# pip byte-compiles what it installs on one core; compileall does it on all of them (about 30 s less on 2 cores).
# Never skip it: the sweep's workers run with -B and would compile torch from source at every start. A few
# packages ship test files that do not parse (pip skips them too), hence the `|| true`.
COMPILE = $(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null || true

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -c requirements/lock.txt -e ".[book,test]"
	$(COMPILE)
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)  ## create .venv and install the pinned dependencies

# Ray (the optional [ray] extra, for `run --backend ray`) only for the tests: the book never needs it
$(VENV)/.ray-$(shell cat requirements/lock.txt | cksum | cut -d' ' -f1): $(STAMP)
	$(PY) -m pip install -q --no-compile -c requirements/lock.txt -e ".[ray]"
	$(COMPILE)
	rm -f $(VENV)/.ray-* && touch $@
RAY_STAMP = $(VENV)/.ray-$(shell cat requirements/lock.txt | cksum | cut -d' ' -f1)

book: $(STAMP)  ## build the HTML book offline from the committed notebooks -> book/_build/html
	$(VENV)/bin/jupyter-book build book --warningiserror --nitpick --keep-going --quiet
	@echo "Open file://$(CURDIR)/book/_build/html/index.html"

# test files run in parallel, one process per core (at most 4; each test file, and each notebook, on one worker).
# The cores are counted without OMP_NUM_THREADS, which CI sets to 1 and GNU nproc would otherwise report.
TEST_WORKERS ?= $(shell n=$$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
test: $(STAMP) $(RAY_STAMP) book  ## unit tests, pytest --nbval over the notebooks, and the browser test of the built book
	# pytest's exit code 5 (no tests collected) is a failure here, like any other non-zero code
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest --nbval -q -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP)  ## unit tests only
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m pytest tests -q -m "not slow and not browser"

figures: $(STAMP)  ## re-execute every notebook with papermill (default parameters), in place
	$(PY) -m lvae_lib figures $(NOTEBOOKS)

bench: $(STAMP)  ## speed benchmark (training step vs reference, sgemm peak, L_K throughput)
	$(PY) -m lvae_lib bench

# A GPU lent for minutes (no network, no install, 8 files back): `make gpu-data` copies MNIST and the commit into
# gpu-data/ (git-ignored), which travels with the tree; there, from the tree root, with the machine's own python3:
#     python3 -m lvae_lib gpu-slot --out $OUT --deadline 560 2>&1 | tee $OUT/slot.log
# and back here:  .venv/bin/python -m lvae_lib gpu-unpack <the returned folder>
# GPU_WORK: more work dirs of runs training on this machine (runs/ is always named): the slot leaves them alone
gpu-data: $(STAMP)  ## copy MNIST (verified) and the commit into gpu-data/, to carry to a GPU machine
	$(PY) -m lvae_lib gpu-data --work-dir $(wildcard runs) $(GPU_WORK)

# The same command here first, at the smoke budget, as the GPU machine would run it: Python 3.12 with torch 2.11
# and only that machine's packages (no pooch, papermill, nbformat), a copy of the tree without .git, the network
# cut (unshare -n), a deadline; then what comes back is checked against the lease's limits and unpacked.
REHEARSE_PY ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) python3.12)
REHEARSE_ENV ?= /tmp/lvae-gpuenv
REHEARSE_DIR ?= /tmp/lvae-rehearse
rehearse-gpu: gpu-data  ## run gpu-slot here at the smoke budget, offline, in a GPU-machine-like venv; check what comes back
	test -x $(REHEARSE_ENV)/bin/python || ($(REHEARSE_PY) -m venv $(REHEARSE_ENV) && $(REHEARSE_ENV)/bin/pip install -q \
		torch==2.11.0 "setuptools<82" numpy scipy pandas matplotlib seaborn tqdm safetensors pytest)
	rm -rf $(REHEARSE_DIR) && mkdir -p $(REHEARSE_DIR)/tree $(REHEARSE_DIR)/out
	git ls-files -co --exclude-standard | grep -v '^wip/' | tar -cf - -T - gpu-data | tar -xf - -C $(REHEARSE_DIR)/tree
	# the lease starts from the committed results; remove a few smoke records so that there is something to train
	cd $(REHEARSE_DIR)/tree && rm -rf results/smoke/mnist/VAE+BN-L5-* results/smoke/mnist/VAE-L5-*
	cd $(REHEARSE_DIR)/tree && set -o pipefail && unshare -n env -u LVAE_DATA_DIR HOME=$(REHEARSE_DIR)/home \
		$(REHEARSE_ENV)/bin/python -m lvae_lib gpu-slot --out $(REHEARSE_DIR)/out --budget smoke --device cpu \
		--deadline $${DEADLINE:-420} --sizes 1 2 2>&1 | tee $(REHEARSE_DIR)/out/slot.log
	$(PY) -c "import sys; from pathlib import Path; from lvae_lib.gpu_slot import check_returned, as_json; \
		bad = check_returned(Path('$(REHEARSE_DIR)/out')); print(as_json(Path('$(REHEARSE_DIR)/out'))); \
		print('over the limits:', bad) if bad else print('within the limits'); sys.exit(1 if bad else 0)"
	cp -r results $(REHEARSE_DIR)/results-here
	$(PY) -m lvae_lib gpu-unpack $(REHEARSE_DIR)/out --budget smoke --results-dir $(REHEARSE_DIR)/results-here \
		--work-dir $(REHEARSE_DIR)/runs-here

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
