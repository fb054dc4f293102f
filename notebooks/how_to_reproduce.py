# %% [markdown]
# # How to reproduce
#
# ## The commands, per budget
#
# Everything runs from the repository root after `make install` (or `make book` / `make test`,
# which install first). A *budget* (`lvae_lib/experiments.py`) fixes data size, epochs, warm-up and
# the $K$ of the final $\mathcal{L}_K$ in one place:
#
# | budget | data | epochs (MNIST / OMNIGLOT) | warm-up | final bound | for |
# | --- | --- | --- | --- | --- | --- |
# | `smoke` | 1,000 train / 500 test images | 2 / 2 | 50% | $\mathcal{L}_{10}$ | proving the code path, in seconds |
# | `cpu` | full | 200 / 150 | 10% | $\mathcal{L}_{1000}$ | a 2-core machine, hours per model |
# | `paper` | full | 2000 / 1500 | 10% | $\mathcal{L}_{5000}$ | a GPU; the paper's protocol |
#
# ```bash
# # every record a figure needs, trained if missing (resumable: run it again after an interruption)
# .venv/bin/python -m lvae_lib run fig3 --budget cpu
# .venv/bin/python -m lvae_lib run fig8 table1 fig3 --budget cpu --jobs 2   # several figures, in this order
# .venv/bin/python -m lvae_lib run all --budget paper --device cuda
# # then regenerate the notebook (or all of them) and the book
# .venv/bin/papermill notebooks/fig3_layers.ipynb out.ipynb -p budget paper -p device cuda
# make figures && make book
# # one model by hand, and its L_5000
# .venv/bin/python -m lvae_lib train runs/lvae5 --preset LVAE+BN+WU --layers 5 --epochs 2000
# .venv/bin/python -m lvae_lib evaluate runs/lvae5 --k 5000
# ```
#
# Records land in `results/<budget>/<dataset>/<model>-<hash>/` (`record.json` with configs, summary
# numbers and provenance; `metrics.csv` per epoch; `arrays.npz` for the figures), checkpoints in
# `runs/` (not committed). Data are looked up in `$LVAE_DATA_DIR`, then `~/.cache/lvae`, and
# otherwise downloaded and checksum-verified.

# %% tags=["parameters", "remove-cell"]
results_dir = ""  # empty: the results folder of the repository

# %% tags=["hide-input"]
from lvae_lib import bench
from lvae_lib.notebooks import table
from lvae_lib.query import select

df = select("all", results_dir or None).first_of()

# %% [markdown]
# ## Measured speed
#
# `python -m lvae_lib bench` (or `make bench`) times, in one run, the machine's fp32 matmul peak, a
# training step of the 5-layer VAE and LVAE in a plain reference implementation
# (`lvae_lib/reference.py`: `DataLoader`, `torch.distributions`, default Adam) and in the library,
# and the throughput of $\mathcal{L}_{5000}$. Its CSVs are committed under `results/bench/`:
# `cpu.csv` from this book's 2-core machine (its `device` column names the processor: the machines
# this project is lent differ, and an earlier one with AMX ran the same step about twice as fast),
# `gpu.csv` from one H100 lent for one session (`bench --device cuda --processes 4`, with the CUDA MPS
# daemon running). Step times on a shared machine vary by some 15% between runs of the benchmark.
#
# On the GPU the model is far too small to keep the card busy. One eager step is some 700 small
# kernels, and launching them from Python is the cost: about 20 ms a step, as slow as the 2-core CPU.
# So `train` captures the step once as a CUDA graph (`lvae_lib.train.GraphedStep`) and replays it,
# which takes about 3 ms. Several runs share the card well (the `4 x 1-thread processes` rows).
# In the paper-budget runs, four graphed runs at once each trained about one epoch per second, so a
# 2000-epoch run takes about 35 minutes on a shared H100. That session's 30 minutes of device time
# did not finish any.

# %%
table(bench.bench_table(results_dir or None))

# %% [markdown]
# `pct_peak` is the achieved matmul rate (FLOPs counted by PyTorch's FLOP counter, divided by the
# measured time) against the sgemm row. Where a training step spends its time
# (`bench --profile`, torch.profiler's self time per operator, top 15):

# %%
table(bench.bench_profile(results_dir or None))

# %% [markdown]
# ## A faster step, and whether it changes the results
#
# One training loop (`lvae_lib.train.fit`) serves one model and a stack of them; its step can run
# eagerly or through `torch.compile` (`--compile`), in fp32 or with the MLPs' matmuls in bfloat16
# (`--precision bf16`: the weights, Adam's state, the Gaussian heads, the precision-weighted merge,
# every log-probability and the loss stay fp32; casting the whole loss to bf16 diverged). The
# precision is part of a record's key, so a bf16 record is never taken for an fp32 one. The same
# `bench` run times every mode side by side, on one thread, training paused:

# %%
from lvae_lib import bench, fidelity
from lvae_lib.notebooks import table

table(bench.modes_table(results_dir or None))

# %% [markdown]
# The same modes on the H200 that one GPU slot was lent (`gpu-slot`, its log in
# `results/bench/gpu-slot.log`): one model's step replayed as a CUDA graph, against stacks of models
# (eager, and compiled at two), each at its measured time. "GFLOP/s" against the H200's datasheet
# rates (its fp32, TF32 and bf16 peaks) shows how far the small model is from keeping the card busy.

# %%
table(bench.modes_table(results_dir or None, device="gpu"))

# %% [markdown]
# A paper-budget model is 470,000 steps (`h a paper model`). This machine's CPU has AVX-512 with bf16
# instructions but no AMX, whose bf16 matrix units are what make bf16 several times faster than fp32 on
# the CPUs that have them: here bf16 gains only what the compiled bf16 rows show.
#
# **Does bf16 keep the records within the noise?** LVAE+BN+WU and VAE+BN+WU with 5 layers, trained
# at the `cpu` budget in bf16 (compiled), against the committed fp32 records of the same runs,
# seeds 0-2; every evaluation in fp32. The rule (`lvae_lib/fidelity.py`): bf16 may become the
# default only if every interval in nats contains 0 and lies within ±0.15 nats, and every
# active-unit interval contains 0.

# %%
fid = fidelity.compare("bf16", "cpu", results_dir or None)
table(fid.assign(difference=fid["difference"].astype(float).round(2), lo=fid["lo"].astype(float).round(2),
                 hi=fid["hi"].astype(float).round(2)))

# %% tags=["remove-input"]
from IPython.display import Markdown

Markdown(f"**bf16 on a CPU**: {fidelity.decide(fid)[1]}.")

# %% [markdown]
# ## Measured training time of every committed record
#
# Hours per budget and dataset, then per record except `smoke` (`device` and `threads` are those of
# the run; two one-thread runs share the 2-core machine):

# %%
table(bench.budget_totals(df))

# %%
table(bench.run_times(df))

# %% [markdown]
# ## Several runs at once, and clusters
#
# `run` trains the missing records of a target; `--jobs N` runs N of them at a time on one machine,
# each in its own process (on a CPU, one-thread processes side by side use its cores better than one
# run with several threads; on a GPU, several small models share the card). For the
# `paper` budget on many GPUs, Ray spreads the runs over a cluster:
#
# ```bash
# pip install -c requirements/lock.txt -e ".[ray]"     # on every node; Ray is an optional extra
# ray start --head --port=6379                         # on the head node
# ray start --address=<head-ip>:6379                   # on each worker node
# python -m lvae_lib run all --budget paper --device cuda --backend ray --address auto --num-gpus 0.25
# ```
#
# Each run becomes a Ray task requesting `--num-gpus` GPUs (0.25: four runs per card) and
# `--threads` CPUs. It trains in the worker's temporary folder and returns its record, which the
# driver writes into `results/` atomically, so the nodes share no filesystem; they need this package
# and the data (`LVAE_DATA_DIR` or internet access). A task that fails is retried (`--retries`), then
# reported by name while the rest go on; running the command again trains only what is still missing,
# and Ctrl-C cancels the pending tasks without leaving half-written records. On **Slurm**, start the
# head and the workers inside one allocation with `srun` (Ray's documentation, "Deploying on Slurm",
# has a ready `sbatch` script) and run the command on the head node. On **Kubernetes**, deploy a
# `RayCluster` with the KubeRay operator and pass `--address ray://<head-service>:10001`.

# %% [markdown]
# ## Adding an experiment
#
# 1. If it needs a new model variant, add a row to `VARIANTS` in `lvae_lib/config.py` (inference,
#    batch norm, warm-up, and the colour and marker every figure gives it); `preset(name, layers,
#    dataset)` builds it, and the plots and the report know it from there. A row can also set any other
#    field of `ModelConfig` or `TrainConfig` (its `model=` and `train=` pairs: `share_top_down=False`,
#    the authors' head batch norm, their optimiser; a misspelt field is refused by name); what it cannot
#    change is what the budget fixes (epochs, warm-up length, evaluation, subsets) and the seed. A study
#    that is not one of the paper's figures marks its rows `paper=False`, so that the paper's "best VAE"
#    is never chosen among them, and its target in `experiments.STUDIES`. A new dataset is a row of
#    `DATASETS` there (name, image shape, likelihood, activation, binarisation, the paper's epochs)
#    and its loader in `lvae_lib/data.py`.
# 2. Register the runs it needs in `lvae_lib/experiments.py`, e.g.
#    `FIGURES["myfig"] = [Run("mnist", "LVAE+BN+WU", L) for L in (2, 5)]`. A run is keyed by the hash
#    of its full configuration, so runs shared with other figures are trained once.
# 3. Copy the parameters cell of any figure notebook into `notebooks/myfig.py`, call
#    `records = lvae_lib.query.ensure("myfig", budget, device, results_dir, progress=progress, seed=seed)`, plot
#    `records.shown()` with `lvae_lib.plots` and decide claims on `records.evidence()`; pair it with
#    `jupytext --sync notebooks/myfig.py`, execute it with `python -m lvae_lib figures notebooks/myfig.ipynb`,
#    and add it to `book/_toc.yml`.
# 4. `make test` checks that the pair is in sync, that it has a parameters cell and outputs, that it
#    re-executes to the same outputs (nbval), and that its page renders in a browser.
