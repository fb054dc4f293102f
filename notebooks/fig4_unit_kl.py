# %% [markdown]
# # Figure 4: KL of every latent unit during training
#
# **Paper's claim.** Without warm-up the set of active units barely changes during training; with
# warm-up many units are active early and some are pruned later, ending with a more distributed
# representation; batch norm helps the VAE use its higher layers; the LVAE activates the most units in
# every layer. A unit with KL(q|p) near zero (white) carries no information: it is inactive.

# %% tags=["parameters", "remove-cell"]
budget = "default"  # smoke, cpu, paper or auto (default: auto, the largest budget committed for this figure)
device = "cpu"  # cuda for the paper budget
seed = 0
results_dir = ""  # empty: the results folder of the repository
progress = False  # progress bars while training missing runs

# %% tags=["hide-input"]
from lvae_lib import claims, plots, report
from lvae_lib.notebooks import show, table
from lvae_lib.query import ensure

plots.style()
records = ensure("fig4", budget, device, results_dir, progress=progress, seed=seed)
df = records.shown(beside_paper=True)  # and the paper budget's models beside them, where some exist
caption = plots.caption(df, "5-layer models; KL per unit averaged over the test set.")

# %% tags=["remove-output"]
fig = plots.unit_kl_figure(report.snapshots(df))
show("fig4", fig, caption)

# %% [markdown]
# ```{glue:figure} fig4
# :alt: Figure 4: KL of every latent unit at five epochs
#
# **Figure 4.** log KL$[q|p]$ of every latent unit of the 5-layer MNIST models (columns; one panel per layer, each drawn the same width whatever its number of units, the units sorted by their final KL) at five epochs (rows); white units are inactive. The paper shows the same units over 2000 epochs, each layer as wide as its number of units. Where some models have been trained for 2000 epochs (the paper's protocol), they follow as rows of their own, named "(2000 epochs)". {glue:text}`fig4_caption`
# ```

# %% [markdown]
# Active units per layer at the end of training, layers 1-5: by the paper's measure (the unit's test KL
# above 0.01 nats, what Fig. 4 draws), and by Burda et al.'s ($\mathrm{Var}_x \mathbb{E}_q[u] > 0.01$),
# which in a hierarchy also counts units collapsed onto their conditional prior (see {doc}`../evaluation`):

# %%
table(claims.active_units_table(df))

# %% [markdown]
# ## What our run shows
#
# The claims of this figure, decided on every committed record of every seed by the intervals of
# {ref}`the verdict rule <verdicts>`: *holds* only when each interval of the difference lies on the
# claimed side, *not resolved* when one contains zero, *untested* when none can be formed; the last
# column says whether the paper's own difference lies inside our interval. A smoke test's
# verdict says nothing about the method.

# %%
table(claims.decide(records.evidence(), "fig4"), drop=["figure"])
