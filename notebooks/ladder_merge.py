# %% [markdown]
# # The two inference models and the merge, drawn
#
# The VAE and the LVAE share their generative model and differ only in how they infer the latent
# variables (the paper's Figure 1, here for two layers; {doc}`../ladder` gives every equation). The VAE
# infers bottom-up, each layer from a sample of the one below. The LVAE first runs a deterministic
# upward pass $d_1, d_2$ and then a stochastic downward pass in the direction of the generative model,
# using the generative model's own top-down step (red) as the prior that the upward pass corrects.

# %% tags=["parameters", "remove-cell"]
ratios = [0.25, 1.0, 4.0]  # prior variance / bottom-up variance
mu_hat = 2.0  # bottom-up mean (the prior is N(0, 1))

# %% tags=["hide-input", "remove-output"]
from lvae_lib import plots
from lvae_lib.notebooks import show

plots.style()
show("fig1", plots.inference_models(), "")

# %% [markdown]
# ```{glue:figure} fig1
# :alt: The inference and generative models of the VAE and the LVAE, two layers: circles stochastic, diamonds deterministic
#
# **Figure 1.** Inference (left of each panel) and generative (right) models of a) the VAE and b) the
# LVAE, as in the paper's Figure 1. Circles are stochastic variables, diamonds deterministic ones;
# the red top-down step $z_2 \to z_1$ is one network, shared by the LVAE's inference and generative
# models. Drawn by `lvae_lib.plots.inference_models`; no trained model is involved.
# ```

# %% [markdown]
# ## The precision-weighted merge
#
# In the ladder inference model, every stochastic layer combines two Gaussians over $z_i$:
# the bottom-up estimate $\mathcal{N}(\hat\mu_{q,i}, \hat\sigma^2_{q,i})$ computed from the data by the
# deterministic upward pass, and the top-down prior $\mathcal{N}(\mu_{p,i}, \sigma^2_{p,i})$ of the
# generative model. Their normalised product is again Gaussian (eqs. 17–18): precisions add,
# and the posterior mean is the precision-weighted average of the two means.
#
# The figure below is drawn by `lvae_lib.plots.plot_merge`, which calls the same
# `lvae_lib.distributions.precision_weighted_merge` the model uses.

# %% tags=["remove-input", "remove-output"]
fig = plots.plot_merge(ratios, mu_hat=mu_hat)
show("merge", fig, "")

# %% [markdown]
# ```{glue:figure} merge
# :alt: Prior, bottom-up estimate and their merge for three precision ratios
#
# **The precision-weighted merge** of eqs. (17)–(18) in one dimension, for three ratios of prior to bottom-up precision.
# ```

# %% [markdown]
# Slide through the ratio yourself (every frame is drawn in advance, so this works offline):

# %% tags=["remove-input", "remove-output", "nbval-ignore-output"]
from IPython.display import HTML

show("merge_slider", HTML(plots.merge_slider(mu_hat=mu_hat)), "")

# %% [markdown]
# ```{glue:figure} merge_slider
# :alt: The precision-weighted merge with a slider over the ratio of prior to bottom-up precision
#
# **The merge, interactive.** The ratio $\sigma_p^2/\hat\sigma^2$ from 1/16 to 16 by factors of two (the
# player's slider and buttons); the title gives the posterior's mean and variance at each.
# ```

# %% [markdown]
# When the bottom-up estimate is vague (left), the posterior stays close to the prior; when it is
# sharp (right), the data dominate. A unit whose upward pass carries no information therefore falls
# back on the generative model's own prediction instead of on an unrelated standard normal.
