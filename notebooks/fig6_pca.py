# %% [markdown]
# # Figure 6: PCA of the latent layers
#
# **Paper's claim.** In the vanilla VAE the layers above the second have collapsed onto the prior;
# batch norm and warm-up each activate one more layer; the LVAE uses all five, and its top layer
# clusters by digit class.

# %% tags=["parameters", "remove-cell"]
budget = "default"  # smoke, cpu, paper or auto (default: auto, the largest budget committed for this figure)
device = "cpu"  # cuda for the paper budget
seed = 0
results_dir = ""  # empty: the results folder of the repository
progress = False  # progress bars while training missing runs

# %% tags=["hide-input"]
from lvae_lib import plots, report
from lvae_lib.notebooks import ensure, show

plots.style()
df = ensure("fig6", budget, device, results_dir, progress=progress, seed=seed)
caption = plots.caption(df, "One sample z_i ~ q(z_i|.) per test image, first two principal components, coloured by digit.")

# %% tags=["remove-output"]
proj, labels = report.projections(df)
fig = plots.pca_figure(proj, labels)
show("fig6", fig, caption)

# %% [markdown]
# ```{glue:figure} fig6
# :alt: Figure 6: PCA of the latent samples per layer, coloured by digit
#
# **Figure 6.** The first two principal components of one sample $z_i \sim q(z_i|\cdot)$ per test image (2,000 images) of each layer (columns) and 5-layer model (rows), coloured by digit. {glue:text}`fig6_caption`
# ```

# %% [markdown]
# ## What to look for
#
# In the paper, the VAE's projections of the upper layers are shapeless blobs (collapsed units carry
# no information about the digit), while the LVAE's show class structure up to higher layers. The
# number of active units per layer in {doc}`fig4_unit_kl` is the quantitative side of the same
# statement; at a reduced budget, compare the two figures.
