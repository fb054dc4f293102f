# %% [markdown]
# # Reproduction report
#
# Every number the paper prints — its text on Fig. 3, Table 1 and Table 2 — beside ours, generated
# from the committed records in `results/` (nothing here is typed by hand). For each run, the record
# of the largest budget that has one is used (`paper`, else `cpu`, else `smoke`), and the budget is
# named in every row. The second table lists the paper's claims that the records can test, with our
# evidence, the 95% intervals of each difference and the verdict of {ref}`the verdict rule <verdicts>`
# (a claim holds only when every interval lies on the claimed side, *does not hold* when every one lies
# on the other, is *not resolved* when they straddle the line, and *untested* when no interval can be
# formed), and, where the paper prints both sides, whether its own difference lies inside our interval.

# %% tags=["parameters", "remove-cell"]
budgets = "paper,cpu,smoke"  # budgets to draw records from, in order of preference
results_dir = ""  # empty: the results folder of the repository

# %% tags=["hide-input"]
from lvae_lib import claims, plots, report
from lvae_lib.notebooks import show, table
from lvae_lib.query import select
from myst_nb import glue

plots.style()  # tables show every character of a cell
records = select("all", results_dir or None)
df = records.first_of(budgets.split(","))
reproduction = report.reproduction_table(df)
evidence = records.evidence()  # every record, every budget and seed
weighed = claims.weigh(evidence)  # each claim with the evidence behind it, weighed once
verdicts = claims.as_table(weighed)
caption = plots.caption(df) if len(df) else "no records yet"

# %% [markdown]
# ## The result
#
# In words, generated from the records and the claims below:

# %% tags=["remove-input"]
from IPython.display import Markdown

words = claims.result_in_words(evidence, weighed)
glue("result_in_words", Markdown(words))  # shown here ...
glue("result_in_words_text", words.replace("**", ""), display=False)  # ... and pasted atop the book's first page

# %% [markdown]
# Every number the paper prints that our records answer, the paper's beside ours:

# %% tags=["remove-output"]
fig = plots.paper_vs_ours(reproduction)
show("result", fig, caption)

# %% [markdown]
# ```{glue:figure} result
# :alt: The paper's numbers against ours, per dataset
#
# **Paper against ours.** Open circles: the paper's values ($\mathcal{L}_{5000}$, or $\mathcal{L}_1$
# where the row says so); dots: ours with ±1 sd over seeds, coloured by how long they trained (each panel's
# key is above it). Our $K$ is named on each row, and our model on a second line where it is not the one the
# paper names; $\mathcal{L}_K$ rises with $K$, so an $\mathcal{L}_{1000}$ leans below the paper's
# $\mathcal{L}_{5000}$, and a model trained for fewer epochs lies lower still. {glue:text}`result_caption`
# ```
#
# And every claim of the paper that the records test, with the verdict of {ref}`the verdict rule <verdicts>`
# (the evidence and its intervals are in the last section):

# %%
summary = table(verdicts[["figure", "claim", "budget", "verdict"]])
glue("claims_summary", summary)  # shown here, and pasted on the book's first page

# %% [markdown]
# ## Paper against ours, row by row
#
# `our model` names the record behind each of our numbers (the paper's "best VAE" is the best of our
# VAE variants and depths, which need not be the paper's). `our metric` says which bound our number is:
# the `cpu` budget evaluates $\mathcal{L}_{1000}$ where the paper has $\mathcal{L}_{5000}$, and `smoke`
# $\mathcal{L}_{10}$. $\mathcal{L}_K$ never decreases with $K$ (in expectation), so such numbers lean
# pessimistic, and `ours - paper` is left empty where the two $K$ differ rather than mix the $K$ gap
# into the difference. `ours` is the mean over seeds, ± their sd where there are several. OMNIGLOT
# rows are ours on the 28×28 stand-in (see the deviations below).

# %%
rows, missing = report.compact(reproduction)
table(rows)

# %% tags=["hide-input"]
print("Not run here (no record; the paper's values are in Table 2's chapter): " + ", ".join(missing) if missing else "")

# %% [markdown]
# How far $\mathcal{L}_{1000}$ leans below $\mathcal{L}_{5000}$ is measured, not guessed: a record with
# $K = 5000$ also keeps, per test image, the $\mathcal{L}_{1000}$ of the first 1000 of the same
# samples, so the gap is known for that very model:

# %% tags=["hide-input"]
gaps = claims.k_gap(df)
table(gaps) if len(gaps) else print("No record with K > 1000 is committed yet (the paper-budget runs are under way).")

# %% [markdown]
# ## The paper's claims, tested on our records

# %%
table(verdicts)

# %% [markdown]
# ## Deviations from the paper, all of them deliberate
#
# * **Budgets.** The paper trains every model for 2000 epochs (OMNIGLOT 1500) and evaluates
#   $\mathcal{L}_{5000}$; fine-tuning adds 2000 epochs with 10 Monte Carlo samples. On the 2-core
#   machines this book is built on that is out of reach for the ~60 models involved, so the `cpu`
#   budget trains MNIST for 200 epochs (OMNIGLOT 150), keeps the paper's warm-up ratio (10%) and
#   evaluates $\mathcal{L}_{1000}$; fine-tuning gets 20 epochs with the learning-rate decay every 2 (the paper's ten decays).
#   The `paper` budget is the paper's protocol. It is meant for a GPU, but one model also trains at it on
#   one CPU thread in about 8 hours (10–15 s an epoch, a second run beside it), and that is how the
#   central pair of Fig. 2, LVAE+BN+WU and VAE+BN+WU with 5 layers, was trained (each record's provenance
#   names the device of every epoch). Every row above names its budget.
# * **OMNIGLOT.** The paper uses the 28×28 binarised OMNIGLOT of Burda et al. (`chardata.mat`), which
#   could not be downloaded where this book was built. `lvae_lib.data` downloads and verifies it for
#   users who can; the committed records use a documented **stand-in** built from the original
#   105×105 Omniglot images: strokes inverted, area-downsampled to 28×28 (grey levels kept for dynamic
#   binarisation), drawers 1–15 for training and 16–20 for testing, 24,345 / 8,115 images. Its numbers are not comparable to the paper's to the nat: the images differ.
# * **NORB.** Small NORB (a 263 MB download, about 900 MB unpacked) could not be downloaded here either. The download-and-verify
#   code exists (`lvae_lib.data`, tested on files in the exact format); Table 2's NORB rows show the
#   paper's values only. No synthetic number is ever shown as a NORB result.
# * **Batch norm at evaluation** uses PyTorch's running averages; the authors re-estimated the
#   statistics on the training set (`python -m lvae_lib evaluate --recompute-bn` does that).
# * **KL terms.** Analytic wherever $q_i$ and $p_i$ condition on the same sample (every LVAE layer,
#   the VAE's top layer), one-sample Monte Carlo in the VAE's middle layers, as "analytically when
#   possible" implies.
# * **Shared top-down path.** The LVAE shares the top-down MLPs between the generative and the
#   inference model, as the paper's Fig. 1b draws it; the authors' released code did not share them.
#   `ModelConfig(share_top_down=False)` gives that variant.
# * **Variance floor.** Every softplus variance has $10^{-6}$ added, for numerical safety.
# * **`train_L1`** is measured on the first 10,000 training images with one fixed binarisation (the
#   same for every model), not on all 60,000 with fresh ones.
#
# ## Where this code differs from the authors' released code
#
# The authors' Theano/Lasagne code (`casperkaae/LVAE`, `run_models.py`) made choices that the paper
# does not state. This package follows the paper where the two differ:
#
# * **Batch norm on the latent heads.** Their `denselayer` puts batch norm on every dense layer,
#   including the layers that output $\mu$ and $\sigma^2$ of each latent layer; here batch norm is on
#   the hidden layers of the MLPs only.
# * **`only_mu_up`** (their default `True`): their LVAE's upward MLPs read the previous layer's
#   $\hat\mu$ rather than the deterministic $d_{i-1}$ of eq. (13); here they read $d_{i-1}$.
# * **Shared top-down parameters**: their default `ladder_share_params False` (see above).
# * **Optimiser**: Adam with $\epsilon = 10^{-4}$ (here PyTorch's $10^{-8}$), and gradient clipping:
#   total norm 4, then each element to $\pm 0.9$ (here none).
# * **Initialisation**: Glorot-normal weights and a variance bias of 1 (here PyTorch's defaults).
# * **Learning rate**: their README's example uses $2 \cdot 10^{-4}$, the script's default is
#   $2 \cdot 10^{-3}$; the paper states $10^{-3}$, which is used here.
# * **Leaky ReLU**: Lasagne's `leaky_rectify` has slope 0.01; the paper states 0.1, used here.
# * **Variance floor**: $10^{-5}$ on latent and output variances (here $10^{-6}$).
# * **Batch-norm statistics at test time**: recomputed on the whole training set before every
#   evaluation (here the running averages; `evaluate --recompute-bn` does theirs).
# * **KL estimate**: their objective takes $\log p(z_i) - \log q(z_i)$ at the sampled $z_i$ in every
#   layer, the top one too (one-sample Monte Carlo); here the KL is analytic wherever $q_i$ and $p_i$
#   condition on the same sample (see above). `ModelConfig(kl="mc")` gives theirs; in the bottom-up VAE it
#   changes only the top layer's term (the others are Monte Carlo here too), in the LVAE every layer's.
#   {doc}`authors_settings` measures it on each (`VAE+BN+WU+mcKL`, `LVAE+BN+WU+mcKL`); it came after the
#   study's all-together variants, which do not include it.
#
# ## What was easy, what was hard
#
# The model itself is small: the ladder's merge is four lines, and a linear-Gaussian model whose
# exact posterior lies in the ladder family checks it to $10^{-9}$. The hard parts were the
# ones that change numbers without failing: the paper's eq. (17) typesets a variance as $\sigma$;
# active units need an unbiased estimator, because a plain variance of Monte Carlo means counts
# the noise as activity; batch-norm running averages are meaningless after a few batches; and the
# compute, which is why every number carries its budget.
