# %% [markdown]
# # Figures 9 and 10: data, reconstructions and samples
#
# The paper shows, for MNIST (Fig. 9) and OMNIGLOT (Fig. 10): a) true data, b) conditional
# reconstructions $\mathbb{E}[x|z_1]$ with $z \sim q(z|x)$, c) samples from the prior, drawn
# ancestrally from $z_5$ down. Ours come from the 5-layer LVAE+BN+WU, with the 5-layer VAE+BN+WU's
# samples beside them.

# %% tags=["parameters", "remove-cell"]
budget = "default"  # smoke, cpu, paper or auto (default: auto, the largest budget committed for this figure)
device = "cpu"  # cuda for the paper budget
seed = 0
results_dir = ""  # empty: the results folder of the repository
progress = False  # progress bars while training missing runs

# %% tags=["hide-input"]
from lvae_lib import plots, report
from lvae_lib.config import DATASETS
from lvae_lib.notebooks import show
from lvae_lib.query import ensure

plots.style()
records = ensure("fig9_10", budget, device, results_dir, progress=progress, seed=seed)
df = records.shown(beside_paper=True)  # and the paper budget's models beside them, where some exist
caption = plots.caption(df)

# %% tags=["remove-output"]
for ds, key in (("mnist", "fig9"), ("omniglot28", "fig10")):
    if grids := report.sample_grids(df, ds):
        show(key, plots.image_grid(grids, shape=DATASETS[ds].image_shape), plots.caption(df[df["dataset"] == ds]))

# %% [markdown]
# ```{glue:figure} fig9
# :alt: Figure 9: MNIST data, LVAE reconstructions, LVAE and VAE samples
#
# **Figure 9.** MNIST: a) test images, b) the 5-layer LVAE+BN+WU's reconstructions $\mathbb{E}[x|z_1]$,
# c) its samples and d) those of the 5-layer VAE+BN+WU, drawn ancestrally from $p(z_5)$ down and shown as
# Bernoulli means; panels after d), where they exist, are the same models' samples after 2000 epochs (the paper's protocol).
# {glue:text}`fig9_caption`
# ```
#
# ```{glue:figure} fig10
# :alt: Figure 10: OMNIGLOT data, LVAE reconstructions, LVAE and VAE samples
#
# **Figure 10.** The same for OMNIGLOT (ours: the 28×28 stand-in). {glue:text}`fig10_caption`
# ```

# %% [markdown]
# ## What to look for
#
# Reconstructions should keep the digit's identity and style; samples, drawn ancestrally from
# $p(z_5)$ down to $p(x|z_1)$ and shown as Bernoulli means, should look like digits (or characters)
# rather than blurred averages. Samples are a qualitative check only: the paper does not measure them.
