# %% [markdown]
# # Figures 9 and 10: data, reconstructions and samples
#
# The paper shows, for MNIST (Fig. 9) and OMNIGLOT (Fig. 10): a) true data, b) conditional
# reconstructions $\mathbb{E}[x|z_1]$ with $z \sim q(z|x)$, c) samples from the prior, drawn
# ancestrally from $z_5$ down. Ours come from the 5-layer LVAE+BN+WU.

# %% tags=["parameters", "hide-cell"]
budget = "default"  # smoke, cpu, paper or auto (default: auto, the largest budget committed for this figure)
device = "cpu"  # cuda for the paper budget
seed = 0
results_dir = ""  # empty: the results folder of the repository
progress = False  # progress bars while training missing runs

# %% tags=["hide-input"]
from lvae_lib import plots, report
from lvae_lib.config import DATASETS
from lvae_lib.notebooks import ensure

plots.style()
df = ensure("fig9_10", budget, device, results_dir, progress=progress, seed=seed)
print(plots.caption(df))

# %%
for ds in df["dataset"].unique():
    a = report.arrays(df[df["dataset"] == ds], "LVAE+BN+WU")
    grids = {"a) data": a["data"], "b) reconstructions": a["reconstructions"], "c) samples": a["samples"][:32]}
    fig = plots.image_grid(grids, shape=DATASETS[ds].image_shape)
    fig.suptitle(df[df["dataset"] == ds]["dataset_name"].iloc[0], y=1.02)

# %% [markdown]
# ## What to look for
#
# Reconstructions should keep the digit's identity and style; samples, drawn ancestrally from
# $p(z_5)$ down to $p(x|z_1)$ and shown as Bernoulli means, should look like digits (or characters)
# rather than blurred averages. Samples are a qualitative check only: the paper does not measure them.
