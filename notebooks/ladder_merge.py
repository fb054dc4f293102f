# %% [markdown]
# # The precision-weighted merge, drawn
#
# In the ladder inference model, every stochastic layer combines two Gaussians over $z_i$:
# the bottom-up estimate $\mathcal{N}(\hat\mu_{q,i}, \hat\sigma^2_{q,i})$ computed from the data by the
# deterministic upward pass, and the top-down prior $\mathcal{N}(\mu_{p,i}, \sigma^2_{p,i})$ of the
# generative model. Their normalised product is again Gaussian (eqs. 17–18): precisions add,
# and the posterior mean is the precision-weighted average of the two means.
#
# The figure below is drawn by `lvae_lib.plots.plot_merge`, which calls the same
# `lvae_lib.distributions.precision_weighted_merge` the model uses.

# %% tags=["parameters", "remove-cell"]
ratios = [0.25, 1.0, 4.0]  # prior variance / bottom-up variance
mu_hat = 2.0  # bottom-up mean (the prior is N(0, 1))

# %% tags=["hide-input", "remove-output"]
from lvae_lib import plots
from lvae_lib.notebooks import show

plots.style()
fig = plots.plot_merge(ratios, mu_hat=mu_hat)
show("merge", fig, "")

# %% [markdown]
# ```{glue:figure} merge
# :alt: Prior, bottom-up estimate and their merge for three precision ratios
#
# **The precision-weighted merge** of eqs. (17)–(18) in one dimension, for three ratios of prior to bottom-up precision.
# ```

# %% [markdown]
# When the bottom-up estimate is vague (left), the posterior stays close to the prior; when it is
# sharp (right), the data dominate. A unit whose upward pass carries no information therefore falls
# back on the generative model's own prediction instead of on an unrelated standard normal.
