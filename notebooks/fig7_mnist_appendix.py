# %% [markdown]
# # Figure 7 (appendix): Figure 3 with the LVAE without batch norm
#
# **Paper's claim.** The LVAE trained without batch norm (LVAE+WU) performs very poorly: batch norm
# matters for the LVAE as much as for the VAE.

# %% tags=["parameters", "hide-cell"]
budget = "default"  # smoke, cpu, paper or auto (default: auto, the largest budget committed for this figure)
device = "cpu"  # cuda for the paper budget
seed = 0
results_dir = ""  # empty: the results folder of the repository
progress = False  # progress bars while training missing runs

# %% tags=["hide-input"]
from lvae_lib import plots, report
from lvae_lib.notebooks import ensure, records

plots.style()
df = ensure("fig7", budget, device, results_dir, progress=progress, seed=seed)
print(plots.caption(df))

# %%
fig = plots.layers_figure(df)

# %%
report.layers_table(df, "test_L1")

# %% [markdown]
# ## What our run shows
#
# The claims of this figure, decided on every committed record of every seed by the intervals of
# {ref}`the verdict rule <verdicts>`: *holds* only when each interval of the difference lies on the
# claimed side, *not resolved* when one contains zero. At the `smoke` budget a verdict says nothing
# about the method.

# %%
report.claims(records("fig7", results_dir or None), "fig7")
