"""The VAE and the Ladder VAE of Sønderby et al. (2016), Sections 2.1-2.2.

Both share one generative model (eqs. 1-3, 10-12); they differ only in the
inference model:

* ``bottom_up`` (VAE, eqs. 7-9): q(z_1|x) q(z_2|z_1) ... q(z_L|z_{L-1}).
* ``ladder`` (LVAE, eqs. 13-19): a deterministic upward pass d_n = MLP(d_{n-1})
  gives a Gaussian "approximate likelihood" (mu_hat_i, var_hat_i) per layer;
  a stochastic downward pass merges it with the top-down prior
  p(z_i|z_{i+1}) by precision weighting (eqs. 17-18).

``forward`` returns a dict, in the spirit of openai/vdvae: ``elbo``,
``distortion`` (-log p(x|z)), ``rate`` (total KL), ``kl`` per layer and
``kl_units`` per latent unit, all per example (shape ``[S, B]`` for S samples).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from . import distributions as D
from .config import ModelConfig


class Linear(nn.Linear):
    """``nn.Linear`` whose matmul may run in a lower precision: with ``matmul_dtype`` set (the training
    step's ``bf16`` policy, :func:`lvae_lib.step.precision`), input and weight are cast to it and the
    product comes back in fp32, where the bias is added. The MLPs use it; the Gaussian heads do not."""

    matmul_dtype: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.matmul_dtype is None:
            return super().forward(x)
        return F.linear(x.to(self.matmul_dtype), self.weight.to(self.matmul_dtype)).float() + self.bias


def mlp(in_dim: int, width: int, cfg: ModelConfig) -> nn.Sequential:
    """The paper's two-layer MLP, eq. (10): (Linear [-> BN] -> nonlinearity) x 2."""
    layers: list[nn.Module] = []
    for d in (in_dim, width):
        layers.append(Linear(d, width))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.LeakyReLU(cfg.leaky_slope) if cfg.activation == "leaky_relu" else nn.Tanh())
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """mu = Linear(d), var = Softplus(Linear(d)) (eqs. 11-12 and 14-15); with ``batch_norm`` (the authors'
    code, ``ModelConfig.head_batch_norm``) each Linear is followed by batch norm."""

    def __init__(self, in_dim: int, out_dim: int, min_var: float, batch_norm: bool = False):
        super().__init__()
        if batch_norm:
            self.mu = nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim))
            self.var = nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim), nn.Softplus())
        else:
            self.mu = nn.Linear(in_dim, out_dim)
            self.var = nn.Sequential(nn.Linear(in_dim, out_dim), nn.Softplus())
        self.min_var = min_var

    def forward(self, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(d), self.var(d) + self.min_var


class GaussianMap(nn.Module):
    """y -> (mu(y), var(y)) through a two-layer MLP and a Gaussian head."""

    def __init__(self, in_dim: int, width: int, out_dim: int, cfg: ModelConfig):
        super().__init__()
        self.mlp = mlp(in_dim, width, cfg)
        self.head = GaussianHead(width, out_dim, cfg.min_var, cfg.head_batch_norm)

    def forward(self, y):
        return self.head(self.mlp(y))


class LadderVAE(nn.Module):
    """A hierarchical VAE with either bottom-up or ladder inference (see module docstring)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        lat, hid = cfg.latents, cfg.hidden
        L = cfg.n_layers
        # ---- generative model p(x|z_1) prod p(z_i|z_{i+1}) p(z_L)  (eqs. 1-3)
        # prior[i] maps z_{i+2} -> p(z_{i+1} | z_{i+2}) for 0-based i = 0..L-2
        self.prior = nn.ModuleList(GaussianMap(lat[i + 1], hid[i + 1], lat[i], cfg) for i in range(L - 1))
        self.decoder_mlp = mlp(lat[0], hid[0], cfg)
        if cfg.likelihood == "bernoulli":
            self.decoder_head = nn.Linear(hid[0], cfg.x_dim)  # logits of the Bernoulli means
        else:
            self.decoder_head = GaussianHead(hid[0], cfg.x_dim, cfg.min_var)
        # ---- inference model
        if cfg.inference == "bottom_up":
            # encoder[i] maps z_i (x for i = 0) -> q(z_{i+1} | z_i)   (eqs. 7-9)
            ins = (cfg.x_dim,) + lat[:-1]
            self.encoder = nn.ModuleList(GaussianMap(ins[i], hid[i], lat[i], cfg) for i in range(L))
        else:
            # upward pass d_{i+1} = MLP(d_i), d_0 = x, and heads (mu_hat, var_hat)  (eqs. 13-15)
            # (the authors' only_mu_up: each MLP above the first reads mu_hat of the layer below instead)
            ins = (cfg.x_dim,) + (lat[:-1] if cfg.only_mu_up else hid[:-1])
            self.up_mlp = nn.ModuleList(mlp(ins[i], hid[i], cfg) for i in range(L))
            self.up_head = nn.ModuleList(GaussianHead(hid[i], lat[i], cfg.min_var, cfg.head_batch_norm) for i in range(L))
            if not cfg.share_top_down:
                self.td = nn.ModuleList(GaussianMap(lat[i + 1], hid[i + 1], lat[i], cfg) for i in range(L - 1))
        if cfg.init == "glorot":
            self._glorot()

    @torch.no_grad()
    def _glorot(self) -> None:
        """The authors' initialisation: Glorot-normal weights and zero biases for every Linear, and a bias
        of 1 before each variance Softplus."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
        for head in (m for m in self.modules() if isinstance(m, GaussianHead)):
            head.var[0].bias.fill_(1.0)

    # ------------------------------------------------------------------ inference
    def upward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]] | torch.Tensor:
        """The deterministic part of inference, run once per image (not once per sample).

        LVAE: the list of (mu_hat_i, var_hat_i), i = 1..L.  VAE: the first MLP's output d(x).
        """
        if self.cfg.inference == "bottom_up":
            return self.encoder[0].mlp(x)
        out, d = [], x
        for f, head in zip(self.up_mlp, self.up_head):
            d = f(d)
            out.append(head(d))
            if self.cfg.only_mu_up:
                d = out[-1][0]  # the next MLP reads mu_hat
        return out

    @staticmethod
    def _repeat(t: torch.Tensor, n: int) -> torch.Tensor:
        return t if n == 1 else t.unsqueeze(0).expand(n, *t.shape).reshape(n * t.shape[0], *t.shape[1:])

    def infer(self, up, n_samples: int = 1, scores: bool = True) -> dict:
        """Sample z ~ q(z|x) ``n_samples`` times per image and score it.

        Returns per layer i (0-based, bottom to top): samples ``z``, the
        parameters ``mu_q, var_q, mu_p, var_p`` and ``kl_units`` (per unit, by the config's ``kl``
        estimator); and per row ``log_ratio`` = log p(z) - log q(z|x) of the sample, summed over
        units and layers (skipped when ``scores`` is false, as in training with the ELBO, which
        needs only the KL).  Rows are sample-major: row ``s * B + b`` is sample s of image b.
        """
        infer = self._infer_bottom_up if self.cfg.inference == "bottom_up" else self._infer_ladder
        z, q, p, kl_units = infer(up, n_samples)
        mc = self.cfg.kl == "mc"
        if not (scores or mc):
            return dict(z=z, q=q, p=p, kl_units=kl_units)
        L = self.cfg.n_layers
        log_q = [D.gaussian_log_prob(z[i], *q[i]) for i in range(L)]  # per unit
        log_p = [D.standard_normal_log_prob(z[i]) if i == L - 1 else D.gaussian_log_prob(z[i], *p[i]) for i in range(L)]
        if mc:  # the authors' estimator: one-sample log q - log p at every layer, where a closed form exists too
            kl_units = [lq - lp for lq, lp in zip(log_q, log_p)]
        if not scores:
            return dict(z=z, q=q, p=p, kl_units=kl_units)
        # log p(z) - log q(z|x) of each row: with log p(x|z_1), the importance weight log w
        log_ratio = torch.stack([lp.sum(-1) for lp in log_p]).sum(0) - torch.stack([lq.sum(-1) for lq in log_q]).sum(0)
        return dict(z=z, q=q, p=p, kl_units=kl_units, log_ratio=log_ratio)

    def _infer_bottom_up(self, up, n_samples: int):
        """The VAE's q(z|x) (eqs. 7-9): each layer from a sample of the one below, bottom to top; then
        the KL of each layer, analytic at the top, one-sample Monte Carlo below."""
        L = self.cfg.n_layers
        z, q, p, kl_units = [None] * L, [None] * L, [None] * L, [None] * L
        d = self._repeat(up, n_samples)
        for i in range(L):
            mu, var = self.encoder[i].head(d) if i == 0 else self.encoder[i](z[i - 1])
            q[i] = (mu, var)
            z[i] = D.reparameterize(mu, var)
        for i in range(L):
            if i == L - 1:
                p[i] = (torch.zeros_like(z[i]), torch.ones_like(z[i]))
                # the top prior is fixed: the KL is analytic
                kl_units[i] = D.standard_normal_kl(*q[i])
            else:
                p[i] = self.prior[i](z[i + 1])
                # p's parent z_{i+1} was drawn from q(z_{i+1}|z_i): no closed form, one-sample MC
                kl_units[i] = D.gaussian_log_prob(z[i], *q[i]) - D.gaussian_log_prob(z[i], *p[i])
        return z, q, p, kl_units

    def _infer_ladder(self, up, n_samples: int):
        """The LVAE's q(z|x) (eqs. 16-19): top to bottom, each layer the precision-weighted merge of the
        upward pass's (mu_hat, var_hat) with the top-down prior given the sample above; the KL of every
        layer analytic, since q_i and p_i share that sample."""
        L = self.cfg.n_layers
        z, q, p, kl_units = [None] * L, [None] * L, [None] * L, [None] * L
        up = [(self._repeat(m, n_samples), self._repeat(v, n_samples)) for m, v in up]
        top_down = self.prior if self.cfg.share_top_down else self.td
        for i in reversed(range(L)):
            mu_hat, var_hat = up[i]
            if i == L - 1:
                p[i] = (torch.zeros_like(mu_hat), torch.ones_like(mu_hat))
                q[i] = (mu_hat, var_hat)  # mu_q,L = mu_hat_L, var_q,L = var_hat_L
                kl_units[i] = D.standard_normal_kl(*q[i])
            else:
                p[i] = self.prior[i](z[i + 1])
                mp = p[i] if self.cfg.share_top_down else top_down[i](z[i + 1])
                q[i] = D.precision_weighted_merge(mu_hat, var_hat, *mp)  # eqs. (17)-(18)
                # q and p share the sampled parent z_{i+1}: analytic KL
                kl_units[i] = D.gaussian_kl(*q[i], *p[i])
            z[i] = D.reparameterize(*q[i])
        return z, q, p, kl_units

    # ------------------------------------------------------------------ generative
    def decode(self, z1: torch.Tensor):
        """p(x|z_1): Bernoulli logits, or (mean, variance) for the Gaussian likelihood."""
        return self.decoder_head(self.decoder_mlp(z1))

    def log_px(self, x: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        """log p(x|z_1) summed over pixels; ``x`` may have fewer rows than ``z1`` (repeated)."""
        out = self.decode(z1)
        n = z1.shape[0] // x.shape[0]
        if self.cfg.likelihood == "bernoulli":
            if n == 1:
                return D.bernoulli_log_prob(x, out).sum(-1)
            # many samples per image (L_K): x . logits - softplus(logits), without repeating x n times
            logits = out.view(n, *x.shape)
            return (torch.einsum("bd,sbd->sb", x, logits) - F.softplus(logits).sum(-1)).reshape(-1)
        return D.gaussian_log_prob(self._repeat(x, n), *out).sum(-1)

    def mean_x(self, z1: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z_1), for reconstructions and samples."""
        out = self.decode(z1)
        return torch.sigmoid(out) if self.cfg.likelihood == "bernoulli" else out[0]

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral samples from the prior: z_L ~ N(0, I), z_i ~ p(z_i|z_{i+1}); returns E[x|z_1]."""
        dev = next(self.parameters()).device
        z = torch.randn(n, self.cfg.latents[-1], device=dev)
        for i in reversed(range(self.cfg.n_layers - 1)):
            z = D.reparameterize(*self.prior[i](z))
        return self.mean_x(z)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, n_samples: int = 1, log_w: bool = True) -> dict:
        """Score a batch ``x`` of shape [B, D] with ``n_samples`` posterior samples per image.

        Returns tensors of shape [S, B] (``kl`` [S, B, L]; ``kl_units`` a list of [S, B, units]):
        ``elbo`` = log p(x|z) - KL, ``distortion`` = -log p(x|z), ``rate`` = KL summed over
        layers, ``log_px``, ``log_w`` = log p(x, z) - log q(z|x) (the importance weight; left out
        when ``log_w`` is false, which training with the ELBO does), and ``z`` (the samples, bottom to top).
        """
        if x.dim() != 2 or x.shape[1] != self.cfg.x_dim:
            raise ValueError(f"expected x of shape [batch, {self.cfg.x_dim}], got {tuple(x.shape)}")
        S, B = n_samples, x.shape[0]
        r = self.infer(self.upward(x), n_samples, scores=log_w)
        log_px = self.log_px(x, r["z"][0]).view(S, B)
        kl_units = [k.view(S, B, -1) for k in r["kl_units"]]
        kl = torch.stack([k.sum(-1) for k in kl_units], dim=-1)
        rate = kl.sum(-1)
        out = dict(
            elbo=log_px - rate,
            distortion=-log_px,
            rate=rate,
            log_px=log_px,
            kl=kl,
            kl_units=kl_units,
            z=[t.view(S, B, -1) for t in r["z"]],
            mu_q=[m.view(S, B, -1) for m, _ in r["q"]],
        )
        if log_w:
            out["log_w"] = log_px + r["log_ratio"].view(S, B)
        return out


@contextlib.contextmanager
def mode(model: nn.Module, training: bool):
    """Put ``model`` in training or evaluation mode for a block, and restore its mode after."""
    was = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def fold_batchnorm(model: LadderVAE) -> LadderVAE:
    """A copy of ``model`` for evaluation with every ``Linear -> BatchNorm`` pair folded into one ``Linear``.

    In evaluation mode batch norm is the affine map ``(y - mean) / sqrt(var + eps) * gamma + beta`` of
    the running statistics, so it can be absorbed into the weights before it: the same outputs up to
    rounding, one pass over the activations fewer per layer (used by :func:`lvae_lib.objectives.iw_bound`).
    """
    import copy

    m = copy.deepcopy(model).eval()
    for seq in m.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            lin, bn = seq[i], seq[i + 1]
            if isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
                s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                lin.weight.mul_(s[:, None])
                lin.bias.copy_((lin.bias - bn.running_mean) * s + bn.bias)
                seq[i + 1] = nn.Identity()
    return m


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
