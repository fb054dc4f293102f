# %% [markdown]
# # The trained models
#
# The paper-budget models keep their weights in their records (`model.safetensors`, about 7 MB each,
# covered by the record's checksums), so a reader can load and probe the models behind the figures on a
# laptop, in seconds, with no training and no data download:
#
# ```python
# from lvae_lib import experiments as E, results
# run = E.Run("mnist", "LVAE+BN+WU", 5)
# record = results.Store(E.DEFAULT_RESULTS, "paper").load(run, run.key(E.get_budget("paper")))
# model = record.load_model()          # a LadderVAE in evaluation mode (device="cuda" works too)
# x = model.sample(16)                  # E[x | z_1] of 16 ancestral samples
# ```
#
# Below: the 5-layer LVAE+BN+WU and VAE+BN+WU trained for 2000 epochs (the paper's protocol), seed 0 of each
# (`query.trained_models`; the checks further down cover every paper-budget record that keeps its weights).

# %% tags=["parameters", "remove-cell"]
results_dir = ""  # empty: the results folder of the repository

# %% tags=["hide-input"]
import numpy as np
import torch

from lvae_lib import analysis, plots
from lvae_lib.experiments import describe_budget
from lvae_lib.notebooks import show
from lvae_lib.query import trained_models

plots.style()
models, records, data = trained_models(("LVAE+BN+WU", "VAE+BN+WU"), results_dir or None)
for v, rec in records.items():
    print(f"{v}-L5: {rec.epochs} epochs, seed {rec.run.seed}, test L_{rec.summary.K} {rec.summary.test_LK:.2f} "
          f"(record {rec.key})")
x = torch.from_numpy(data[:24].astype(np.float32) / 255.0)  # the first 24 binarised test images
to_u8 = lambda a: (np.asarray(a) * 255).round().astype(np.uint8)  # noqa: E731
caption = "; ".join(f"{v}: {describe_budget(r.budget, r.run.dataset)}, seed {r.run.seed}" for v, r in records.items()) + "."

# %% tags=["remove-output"]
torch.manual_seed(0)
panels = {"test images": data[:24]}
for v, m in models.items():
    panels[f"{v}: reconstructions"] = to_u8(analysis.reconstructions(m, x))
for v, m in models.items():
    panels[f"{v}: samples"] = to_u8(analysis.prior_samples(m, 24))
show("trained_samples", plots.image_grid(panels, nrow=3, ncol=8), caption)

# %% [markdown]
# ```{glue:figure} trained_samples
# :alt: Test digits, the two models' reconstructions and their samples
#
# **Test digits, reconstructions and samples** of the two paper-budget models: reconstructions are
# $\mathbb{E}[x|z_1]$ with $z \sim q(z|x)$; samples are drawn ancestrally from $p(z_5)$ down. Drawn now,
# from the committed weights. {glue:text}`trained_samples_caption`
# ```
#
# ## What each layer encodes
#
# For one test digit, $z \sim q(z|x)$ is drawn once; the layers above $k$ are kept and $z_k, \dots, z_1$
# are drawn afresh from the generative model $p(z_j | z_{j+1})$ (`analysis.resample_below`). Row $k = 0$
# is the reconstruction, row $k = 5$ a sample from the prior. Where the digit survives up to row $k$,
# the layers above $k$ carry its identity; where it changes, the layers below do. A layer whose units
# are inactive adds nothing: its rows look like the row below it.

# %% tags=["remove-output"]
torch.manual_seed(0)
digit = x[:1]
grids = {f"{v}: k = 0 (top row) to 5": np.concatenate([to_u8(analysis.resample_below(m, digit, k, n=8)[0])
                                                      for k in range(6)]) for v, m in models.items()}
show("trained_layers", plots.image_grid(grids, nrow=6, ncol=8), caption)

# %% [markdown]
# ```{glue:figure} trained_layers
# :alt: A test digit resampled below each layer, for the LVAE and the VAE
#
# **Resampling below layer $k$** for the first test digit: each row keeps $z_{k+1}, \dots, z_5$ of one
# posterior draw and redraws the layers below it eight times. {glue:text}`trained_layers_caption`
# ```

# %% [markdown]
# ## Two checks of the evaluation
#
# The kept weights let the evaluation itself be checked (`python -m lvae_lib check-weights`; about an hour
# a model on one CPU thread, seconds on a GPU):
#
# * **Batch-norm statistics.** We evaluate with the running averages that batch norm keeps during
#   training; the authors recomputed the statistics over the whole training set first. Each model's
#   $\mathcal{L}_{5000}$ is computed again with recomputed statistics and compared, per test image, with
#   the record's own.
# * **Convergence in $K$.** $\mathcal{L}_{20000}$ on the first 1,000 test images, against
#   $\mathcal{L}_{5000}$ of the first 5,000 of the same samples: how far the paper's $K$ is from
#   $\log p(x)$, at least.

# %% tags=["remove-input"]
from IPython.display import Markdown
from myst_nb import glue

from lvae_lib import report
from lvae_lib.notebooks import table

checks = report.weight_checks_table(results_dir or None)
glue("weight_checks", table(checks))
checks_words = report.weight_checks_in_words(results_dir or None)
glue("weight_checks_words", checks_words, display=False)
Markdown(checks_words)
