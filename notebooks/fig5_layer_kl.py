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
from lvae_lib import plots, report
from lvae_lib.notebooks import beside_paper, ensure, records, show, table

plots.style()
df = beside_paper(ensure("fig5", budget, device, results_dir, progress=progress, seed=seed))
caption = plots.caption(df, "5-layer models; mean KL[q_i|p_i] over the test set.")

# %% tags=["remove-output"]
fig = plots.layer_kl_figure(df)
show("fig5", fig, caption)

# %% [markdown]
# ```{glue:figure} fig5
# :alt: Figure 5: KL per layer, bars per variant
#
# **Figure 5.** KL$[q_i|p_i]$ of each layer $i$ of the 5-layer MNIST models, averaged over the test set; with several seeds, the mean and ±1 sd. The paper prints no values for this figure. Hatched: models at the `paper` budget, where some exist, beside the others. {glue:text}`fig5_caption`
# ```

# %%
table(df.assign(kl=df["layer_kl"].map(lambda a: [round(v, 2) for v in a]))[["budget", "variant", "seed", "kl"]]
      .rename(columns={"kl": "KL per layer 1-5 (nats)"}))

# %% [markdown]
# ## What our run shows
#
# The claims of this figure, decided on every committed record of every seed by the intervals of
# {ref}`the verdict rule <verdicts>`: *holds* only when each interval of the difference lies on the
# claimed side, *not resolved* when one contains zero, *untested* when none can be formed; the last
# column says whether the paper's own difference lies inside our interval. At the `smoke` budget a
# verdict says nothing about the method.

# %%
table(report.claims(records("fig5", results_dir or None), "fig5"), drop=["figure"])
