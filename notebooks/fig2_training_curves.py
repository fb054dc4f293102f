# %% [markdown]
# # Figure 2: training curves
#
# **Paper's claim.** During training, the LVAE's train and test $\mathcal{L}_1$ rise above every VAE
# variant, and batch norm and warm-up each help the VAE. The paper shows the 5-layer models on MNIST
# over 2000 epochs (train: full lines, test: dashed), with no sign of over-fitting.

# %% tags=["parameters", "remove-cell"]
budget = "default"  # smoke, cpu, paper or auto (default: auto, the largest budget committed for this figure)
device = "cpu"  # cuda for the paper budget
seed = 0
results_dir = ""  # empty: the results folder of the repository
progress = False  # progress bars while training missing runs

# %% tags=["hide-input"]
import pandas as pd

from lvae_lib import plots, report
from lvae_lib.notebooks import collect, ensure, records, show, table

plots.style()
df = ensure("fig2", budget, device, results_dir, progress=progress, seed=seed)
# the models trained for the paper's 2000 epochs so far, in a panel of their own beside the figure's budget
at_paper = collect("fig2", ("paper",), results_dir or None) if df.attrs["budget"] != "paper" else df.iloc[:0]
caption = plots.caption(pd.concat([df, at_paper]),
                        "5-layer models; train L_1 is the running mean over each epoch (train mode, fresh binarization).")

# %% tags=["remove-output"]
fig = plots.training_curves({df.attrs["budget"]: report.curves(df), "paper": report.curves(at_paper)})
show("fig2", fig, caption)

# %% [markdown]
# ```{glue:figure} fig2
# :alt: Figure 2: L_1 during training, train and test, per variant
#
# **Figure 2.** Train (full) and test (dashed) $\mathcal{L}_1$ of the 5-layer MNIST models during training; with several seeds, their mean and a band from the lowest to the highest seed. The paper trains for 2000 epochs, so a shorter budget's curves end lower than the paper's; where some models have been trained at the `paper` budget, they have a panel of their own. Test lies above train here because train $\mathcal{L}_1$ is the running mean over each epoch in training mode (batch statistics, a fresh binarisation, a model still improving during the epoch), test is measured in evaluation mode at the epoch's end. {glue:text}`fig2_caption`
# ```

# %% [markdown]
# The final values (test $\mathcal{L}_1$ in evaluation mode, nats):

# %%
table(pd.concat([df, at_paper])[["budget", "variant", "layers", "seed", "train_L1", "test_L1"]].round(2))

# %% [markdown]
# ## What our run shows
#
# The claims of this figure, decided on every committed record of every seed by the intervals of
# {ref}`the verdict rule <verdicts>`: *holds* only when each interval of the difference lies on the
# claimed side, *not resolved* when one contains zero. At the `smoke` budget a verdict says nothing
# about the method.

# %%
table(report.claims(records("fig2", results_dir or None), "fig2"), drop=["figure"])
