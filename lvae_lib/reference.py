"""A plain implementation of the (L)VAE and its training loop, written the way a newcomer would.

It is the baseline of ``python -m lvae_lib bench`` and an independent check of
:mod:`lvae_lib.model`: ``nn.Module`` s, ``torch.distributions``, a ``DataLoader``
and the default Adam, no tricks.  Module names match :class:`~lvae_lib.model.LadderVAE`
so that one model's ``state_dict`` loads into the other, and random draws happen in
the same order, so from the same seed both compute the same loss and gradients
(``tests/test_bench.py``).  Bernoulli likelihood and shared top-down path only.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence
from torch.utils.data import DataLoader, TensorDataset

from .config import ModelConfig


def two_layer_mlp(n_in: int, n_out: int, batch_norm: bool) -> nn.Sequential:
    layers = []
    for d in (n_in, n_out):
        layers += [nn.Linear(d, n_out)] + ([nn.BatchNorm1d(n_out)] if batch_norm else []) + [nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


class Head(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.mu = nn.Linear(n_in, n_out)
        self.var = nn.Sequential(nn.Linear(n_in, n_out), nn.Softplus())


class GaussianNet(nn.Module):
    def __init__(self, n_in: int, width: int, n_out: int, batch_norm: bool):
        super().__init__()
        self.mlp = two_layer_mlp(n_in, width, batch_norm)
        self.head = Head(width, n_out)


class ReferenceVAE(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.likelihood != "bernoulli" or not cfg.share_top_down:
            raise ValueError("the reference implementation covers Bernoulli data and a shared top-down path only")
        self.cfg = cfg
        lat, hid, bn = cfg.latents, cfg.hidden, cfg.batch_norm
        L = cfg.n_layers
        self.prior = nn.ModuleList(GaussianNet(lat[i + 1], hid[i + 1], lat[i], bn) for i in range(L - 1))
        self.decoder_mlp = two_layer_mlp(lat[0], hid[0], bn)
        self.decoder_head = nn.Linear(hid[0], cfg.x_dim)
        if cfg.inference == "bottom_up":
            ins = (cfg.x_dim,) + lat[:-1]
            self.encoder = nn.ModuleList(GaussianNet(ins[i], hid[i], lat[i], bn) for i in range(L))
        else:
            ins = (cfg.x_dim,) + hid[:-1]
            self.up_mlp = nn.ModuleList(two_layer_mlp(ins[i], hid[i], bn) for i in range(L))
            self.up_head = nn.ModuleList(Head(hid[i], lat[i]) for i in range(L))

    def gaussian(self, head: Head, h: torch.Tensor) -> Normal:
        return Normal(head.mu(h), (head.var(h) + self.cfg.min_var).sqrt())

    def elbo(self, x: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """log p(x|z) - beta * KL for each row of x, one posterior sample."""
        L = self.cfg.n_layers
        std_normal = Normal(torch.zeros((), device=x.device), torch.ones((), device=x.device))
        kl = 0.0
        if self.cfg.inference == "bottom_up":
            zs, qs, h = [], [], x
            for i in range(L):
                q = self.gaussian(self.encoder[i].head, self.encoder[i].mlp(h))
                h = q.rsample()
                qs.append(q)
                zs.append(h)
            kl = kl_divergence(qs[-1], std_normal).sum(1)
            for i in range(L - 1):  # p's parent was sampled from q: one-sample Monte Carlo KL
                p = self.gaussian(self.prior[i].head, self.prior[i].mlp(zs[i + 1]))
                kl = kl + (qs[i].log_prob(zs[i]) - p.log_prob(zs[i])).sum(1)
            z1 = zs[0]
        else:
            ups, d = [], x
            for i in range(L):
                d = self.up_mlp[i](d)
                ups.append(self.gaussian(self.up_head[i], d))
            z = None
            for i in reversed(range(L)):
                if i == L - 1:
                    q, p = ups[i], std_normal
                else:
                    p = self.gaussian(self.prior[i].head, self.prior[i].mlp(z))
                    prec_hat, prec_p = 1 / ups[i].variance, 1 / p.variance
                    var_q = 1 / (prec_hat + prec_p)
                    q = Normal((ups[i].mean * prec_hat + p.mean * prec_p) * var_q, var_q.sqrt())
                z = q.rsample()
                kl = kl + kl_divergence(q, p).sum(1)
            z1 = z
        logits = self.decoder_head(self.decoder_mlp(z1))
        return Bernoulli(logits=logits).log_prob(x).sum(1) - beta * kl


def reference_loader(x_train: torch.Tensor, batch_size: int = 256) -> DataLoader:
    return DataLoader(TensorDataset(x_train), batch_size=batch_size, shuffle=True)


def reference_epoch(model: ReferenceVAE, opt: torch.optim.Optimizer, loader: DataLoader, beta: float = 1.0,
                    max_steps: int | None = None) -> int:
    """One epoch (or ``max_steps`` steps) of plain training with dynamic binarization; returns the steps run."""
    model.train()
    steps = 0
    for (xb,) in loader:
        xb = torch.bernoulli(xb)
        loss = -model.elbo(xb, beta).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if max_steps is not None and steps >= max_steps:
            break
    return steps
