# %% [markdown]
# # Figure 5: KL per layer
#
# **Paper's claim.** Splitting the KL term by layer shows where the "representation work" happens:
# the VAEs put it in the lowest layers and hardly use the highest, while the LVAE spreads it over
# more layers.

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
records = ensure("fig5", budget, device, results_dir, progress=progress, seed=seed)
df = records.shown(beside_paper=True)  # and the paper budget's models beside them, where some exist
caption = plots.caption(df, "5-layer models; mean KL[q_i|p_i] over the test set.")

# %% tags=["remove-output"]
fig = plots.layer_kl_figure(df)
show("fig5", fig, caption)

# %% [markdown]
# ```{glue:figure} fig5
# :alt: Figure 5: KL per layer, bars per variant
#
# **Figure 5.** KL$[q_i|p_i]$ of each layer $i$ of the 5-layer MNIST models, averaged over the test set; with several seeds, the mean and ±1 sd. The paper prints no values for this figure. Hatched: models trained for 2000 epochs (the paper's protocol), where some exist, beside the others. {glue:text}`fig5_caption`
# ```

# %% [markdown]
# The KL of each layer (nats, test-set mean) of each record:

# %%
table(report.layer_kl_table(df))

# %% [markdown]
# ## During warm-up
#
# How the KL of each layer evolves while the warm-up weight $\beta$ of eq. (20) rises from 0 to 1
# (the paper's Sec. 2.3): the test-set KL of every layer at each evaluation epoch of one training run
# per model, read from its record's `metrics.csv`.

# %% tags=["remove-output"]
wu_budget, wu_curves = report.warmup_curves(df)
if wu_curves:
    show("warmup_kl", plots.warmup_kl(wu_curves, wu_budget),
         plots.caption(df[df["budget"] == wu_budget], "Seed 0 of each model; the shaded epochs are the warm-up."))

# %% [markdown]
# ```{glue:figure} warmup_kl
# :alt: KL of each layer during training, and the warm-up weight beta, for the LVAE and the VAE
#
# **KL per layer during training** (solid, log scale) and the warm-up weight $\beta$ (dashed). At
# $\beta = 0$ nothing pulls a unit towards its prior and the bottom layer carries most information; as
# $\beta$ reaches 1 that KL falls, and a layer whose units are not worth their cost collapses towards
# zero. {glue:text}`warmup_kl_caption`
# ```

# %% [markdown]
# ## What our run shows
#
# The claims of this figure, decided on every committed record of every seed by the intervals of
# {ref}`the verdict rule <verdicts>`: *holds* only when each interval of the difference lies on the
# claimed side, *not resolved* when one contains zero, *untested* when none can be formed; the last
# column says whether the paper's own difference lies inside our interval. A smoke test's
# verdict says nothing about the method.

# %%
table(claims.decide(records.evidence(), "fig5"), drop=["figure"])
