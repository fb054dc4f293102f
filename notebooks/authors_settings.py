# %% [markdown]
# # Why our baseline is stronger than the paper's
#
# At the paper's protocol our bottom-up VAE+BN+WU does much better than the paper's best VAE, and our
# LVAE's lead over it is not the paper's (the table below; {doc}`fig2_training_curves` decides the lead). The evaluation was audited (test binarisation drawn once, the
# 60k/10k split, batch norm on running averages, independent importance samples), so the likelier reason is
# the baseline itself: this package follows the paper's text where the authors' released code
# (`casperkaae/LVAE`, `run_models.py`) made other choices, listed in {doc}`reproduction_report`. This
# chapter trains the 5-layer models with those choices, all together (the *authors' settings*, as their
# command for the VAE uses them) and one at a time on VAE+BN+WU (the Monte Carlo KL on the LVAE too), and
# asks two questions: how much does each setting cost each model, and do the authors' settings bring back
# the paper's LVAE − VAE gap?

# %% tags=["parameters", "remove-cell"]
budget = "cpu"  # the budget of the study's records (cpu: 200 epochs, L_1000)
results_dir = ""  # empty: the results folder of the repository

# %% tags=["hide-input"]
from IPython.display import Markdown

from lvae_lib import claims, report
from lvae_lib.notebooks import table
from lvae_lib.query import select

study = select(["authors", "authors-ablations"], results_dir or None)
evidence = study.evidence()  # every record of the study, read once
central = select("fig2", results_dir or None, budgets=("paper",))

# %% [markdown]
# ## The gap to explain
#
# The paper's numbers for MNIST (its text, Fig. 3) beside ours at the paper's protocol (2000 epochs,
# $\mathcal{L}_{5000}$ on the 10,000 test images).

# %%
table(report.mnist_text_compare(central.at("paper")))

# %% [markdown]
# ## The settings
#
# Each of the study's variants, the model it changes and what it sets there (every other option as in the
# rest of this book). `VAE+BN+WU+authors` and `LVAE+BN+WU+authors` set them all but one; the LVAE also gets the
# authors' `only_mu_up` and separate top-down weights for inference. The one is their Monte Carlo KL
# (`VAE+BN+WU+mcKL`, `LVAE+BN+WU+mcKL`), which became an option after those two were trained: it is measured on
# its own, on each model: in the VAE it changes the top layer's term only (the lower layers' are Monte Carlo
# here too), in the LVAE every layer's closed form.

# %%
table(report.study_settings())

# %% [markdown]
# ## What has been trained
#
# The study runs at the cpu budget (200 epochs, $\mathcal{L}_{1000}$), three seeds a model. A missing run is
# trained with `python -m lvae_lib run authors authors-ablations --budget cpu --seed 0 1 2` (resumable;
# complete records are skipped); the tables below use the records there are.

# %%
table(report.study_status(evidence, budget))

# %% [markdown]
# ## What each setting does
#
# Each variant against the model it changes, at the same budget: the difference (with the setting − without)
# on test $\mathcal{L}_1$ and $\mathcal{L}_K$ with the widest 95% interval behind it, and what the interval
# says by {ref}`the verdict rule <verdicts>`. A setting trained once borrows the seed-to-seed spread of the model
# it changes, for want of its own: the interval is then over test images, widened by that spread on both
# sides.

# %%
settings = claims.settings_table(evidence)
table(settings)

# %% [markdown]
# ## The study's claims
#
# *Holds* only when each interval lies on the claimed side; the last column is the paper's own difference,
# where it states one.

# %%
weighed = claims.weigh(evidence, claim_list=claims.study_claims)  # each claim with the evidence behind it
verdicts = claims.as_table(weighed)
table(verdicts, drop=["figure"])

# %% [markdown]
# ## Which way the evidence points
#
# The tables above in a few sentences, generated from the same records by the same rule (`claims.study_in_words`),
# on test $\mathcal{L}_K$:

# %% tags=["remove-input"]
Markdown(claims.study_in_words(evidence, settings, weighed))

# %% [markdown]
# ## What this can and cannot tell
#
# The study runs for 200 epochs, a tenth of the paper's protocol: a setting that slows training (the
# authors' learning rate is a fifth of the paper's) is likely to cost more here than it would after 2000
# epochs, so a cost found here may overstate the cost at the paper's protocol; it is not a measure of it.
# A setting that is *not resolved* at one seed may still matter, by less than the seed-to-seed noise of these models
# ({doc}`fig3_layers` shows it). And the authors' settings are those of their released code, which is not
# necessarily the code behind the paper's numbers. The authors' Monte Carlo KL is measured on each model alone,
# not inside the all-together variants.
