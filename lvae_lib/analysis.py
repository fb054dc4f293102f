"""What the latent layers learned: active units, KL per unit and per layer, PCA and its class separation (Figs. 4-6)."""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from . import distributions as D
from .model import LadderVAE, mode


@torch.no_grad()
def _batched(model: LadderVAE, x: torch.Tensor, n_samples: int, batch_size: int, fn):
    with mode(model, False):
        return [fn(model(x[i : i + batch_size], n_samples=n_samples)) for i in range(0, len(x), batch_size)]


def unit_activity(model: LadderVAE, x: torch.Tensor, n_samples: int = 10, batch_size: int = 500) -> list[np.ndarray]:
    """Burda et al.'s activity statistic A_u = Var_x( E_{q(u|x)}[u] ) for every unit, per layer.

    E_q[u] depends on samples of the layers u is conditioned on (below it for the
    VAE, above it for the LVAE), so it is estimated by Monte Carlo.  A plain
    variance of such estimates would add the Monte Carlo noise to A_u and call
    collapsed units active; instead the ``n_samples`` draws are split into two
    independent halves and A_u is the covariance over x of the two half-means,
    which is unbiased for Var_x(E_q[u|x]).
    """
    if n_samples < 2:
        raise ValueError(f"unit_activity needs n_samples >= 2, got {n_samples}")
    h = n_samples // 2

    def halves(o):
        return [(m[:h].mean(0), m[h : 2 * h].mean(0)) for m in o["mu_q"]]

    parts = _batched(model, x, 2 * h, batch_size, halves)
    out = []
    for i in range(model.cfg.n_layers):
        a = torch.cat([p[i][0] for p in parts]).double()
        b = torch.cat([p[i][1] for p in parts]).double()
        out.append(((a - a.mean(0)) * (b - b.mean(0))).sum(0).div(len(a) - 1).cpu().numpy())
    return out


def active_units(model: LadderVAE, x: torch.Tensor, threshold: float = 0.01, **kw) -> list[int]:
    """Number of units per layer whose activity A_u exceeds ``threshold`` (Burda et al. use 0.01)."""
    return [int((a > threshold).sum()) for a in unit_activity(model, x, **kw)]


# a unit is active when its KL(q|p), averaged over the test images, exceeds this many nats: the paper's measure
# (Sec. 3.2, Fig. 4: inactive units are those whose KL is near zero)
ACTIVE_KL = 0.01


def active_units_kl(unit_kls, threshold: float = ACTIVE_KL) -> list[int]:
    """Active units per layer by the paper's measure, from each layer's per-unit test KL (:func:`unit_kl`).
    In a hierarchy this differs from Burda's :func:`active_units`: a unit collapsed onto its conditional
    prior p(z_i | z_{i+1}) carries no KL, yet its posterior mean still varies with x through the layers above."""
    return [int((np.asarray(u) > threshold).sum()) for u in unit_kls]


def unit_kl(model: LadderVAE, x: torch.Tensor, n_samples: int = 1, batch_size: int = 1000) -> list[np.ndarray]:
    """Mean KL(q(z_{i,k}|.) || p(z_{i,k}|.)) of every unit k of every layer i over ``x`` (Fig. 4)."""
    parts = _batched(model, x, n_samples, batch_size, lambda o: [k.sum((0, 1)) for k in o["kl_units"]])
    n = len(x) * n_samples
    return [(sum(p[i] for p in parts) / n).cpu().numpy() for i in range(model.cfg.n_layers)]


def layer_kl_per_image(model: LadderVAE, x: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """KL[q_i | p_i] of every image (rows) and layer (columns), one sample each: its mean over the rows
    estimates :func:`layer_kl`, and two models' rows on the same images give a paired difference."""
    parts = _batched(model, x, 1, batch_size, lambda o: torch.stack([k.sum(-1).mean(0) for k in o["kl_units"]], 1))
    return torch.cat(parts).cpu().numpy()


def layer_kl(model: LadderVAE, x: torch.Tensor, **kw) -> np.ndarray:
    """Mean KL[q_i | p_i] per layer, bottom to top (Fig. 5)."""
    return np.array([u.sum() for u in unit_kl(model, x, **kw)])


def latent_samples(model: LadderVAE, x: torch.Tensor, batch_size: int = 1000) -> list[np.ndarray]:
    """One sample z_i ~ q(z_i|.) per image for every layer (inputs of the PCA plots, Fig. 6)."""
    parts = _batched(model, x, 1, batch_size, lambda o: [z[0] for z in o["z"]])
    return [torch.cat([p[i] for p in parts]).cpu().numpy() for i in range(model.cfg.n_layers)]


def pca_2d(z: np.ndarray) -> np.ndarray:
    """Project rows of ``z`` onto their first two principal components (fewer if z has fewer dims)."""
    zc = z - z.mean(0)
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    proj = zc @ vt[:2].T
    if proj.shape[1] < 2:
        proj = np.concatenate([proj, np.zeros((len(proj), 2 - proj.shape[1]))], 1)
    return proj.astype(np.float32)


KNN_K = 10  # neighbours of the class-separation measure of Fig. 6


def knn_correct(points: np.ndarray, labels: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Leave-one-out k-nearest-neighbour classification of ``points`` (one row per image, e.g. Fig. 6's
    2-D PCA of a layer): True where the majority label of an image's ``k`` nearest other images is its
    own (ties go to the smaller label). Its mean measures how well the layer separates the classes:
    about 1/classes for a layer that carries no class information."""
    points, labels = np.asarray(points, np.float64), np.asarray(labels)
    if points.ndim != 2 or len(points) != len(labels):
        raise ValueError(f"knn_correct needs points of shape (n, d) and n labels, got {points.shape} and {labels.shape}")
    if not 1 <= k < len(points):
        raise ValueError(f"knn_correct needs 1 <= k < n = {len(points)}, got k={k}")
    n = len(points)
    _, idx = cKDTree(points).query(points, k + 1)
    # drop the image itself (with duplicate points it need not come first; where it is not among the
    # k + 1 found, drop the farthest)
    own = idx == np.arange(n)[:, None]
    own[~own.any(1), -1] = True
    neighbours = labels[idx[~own].reshape(n, k)]
    classes = np.unique(labels)
    votes = (neighbours[:, :, None] == classes[None, None, :]).sum(1)
    return classes[votes.argmax(1)] == labels


@torch.no_grad()
def reconstructions(model: LadderVAE, x: torch.Tensor) -> np.ndarray:
    """E[x|z_1] with z ~ q(z|x): the conditional reconstructions of Figs. 9-10."""
    with mode(model, False):
        r = model.infer(model.upward(x), 1)
        return model.mean_x(r["z"][0]).cpu().numpy()


@torch.no_grad()
def prior_samples(model: LadderVAE, n: int) -> np.ndarray:
    with mode(model, False):
        return model.sample(n).cpu().numpy()


@torch.no_grad()
def resample_below(model: LadderVAE, x: torch.Tensor, k: int, n: int = 8) -> np.ndarray:
    """What the layers below ``k`` add: for each image of ``x``, z ~ q(z|x) once; z_{k+1}, ..., z_L kept,
    z_k, ..., z_1 drawn afresh from the generative model p(z_j | z_{j+1}) ``n`` times; returns E[x|z_1] as
    ``[len(x), n, pixels]``. k = 0 gives reconstructions, k = L samples from the prior (x is then unused)."""
    L = model.cfg.n_layers
    if not 0 <= k <= L:
        raise ValueError(f"k must be in 0..{L} for a {L}-layer model, got {k}")
    with mode(model, False):
        z = model.infer(model.upward(x), 1, scores=False)["z"]
        out = []
        for _ in range(n):
            if k == L:
                cur = torch.randn(len(x), model.cfg.latents[-1], device=x.device)
                k_top = L - 1
            else:
                cur, k_top = z[k], k
            for j in reversed(range(k_top)):  # prior[j]: z_{j+2} -> p(z_{j+1} | z_{j+2}), 0-based z[j + 1] -> z[j]
                cur = D.reparameterize(*model.prior[j](cur))
            out.append(model.mean_x(cur))
        return torch.stack(out, 1).cpu().numpy()


@torch.no_grad()
def recompute_batchnorm(model: LadderVAE, x: torch.Tensor, batch_size: int = 256) -> None:
    """Re-estimate every batch-norm layer's statistics over ``x`` (the authors' choice).

    By default this package evaluates with the running averages that
    ``BatchNorm1d`` keeps during training.  The authors instead recomputed the
    statistics over the whole training set before evaluating; this does that,
    with an exact (cumulative) average over the batches of ``x``.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    try:
        with mode(model, True):
            for i in range(0, len(x), batch_size):
                model(x[i : i + batch_size])
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
