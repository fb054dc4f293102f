"""Training objective (eq. 20) and the importance-weighted bound L_K (eq. 6)."""
from __future__ import annotations

import math

import torch
from tqdm import tqdm

from .model import LadderVAE, fold_batchnorm, mode


def training_loss(model: LadderVAE, x: torch.Tensor, beta: float = 1.0, mc_samples: int = 1, iw_samples: int = 1):
    """Negative of the warm-up objective of eq. (20), averaged over the batch.

    With ``iw_samples == 1`` this is distortion + beta * rate with the analytic
    (or, where the paper's "when possible" fails, one-sample) KL per layer.
    With ``iw_samples = K > 1`` it is the importance-weighted bound L_K, with
    the latent terms of log w scaled by beta, averaged over ``mc_samples``
    independent draws (the paper's fine-tuning used 10 and 10).
    Returns ``(loss, out)`` where ``out`` is the model's dict.
    """
    out = model(x, n_samples=mc_samples * iw_samples, log_w=iw_samples > 1)
    return loss_of(out, beta, mc_samples, iw_samples), out


def loss_of(out: dict, beta, mc_samples: int = 1, iw_samples: int = 1) -> torch.Tensor:
    """The loss of :func:`training_loss` from the model's dict ``out`` (drawn with ``mc_samples * iw_samples``
    samples, and ``log_w`` when ``iw_samples > 1``)."""
    if iw_samples == 1:
        return (out["distortion"] + beta * out["rate"]).mean()
    latent = out["log_w"] - out["log_px"]  # log p(z) - log q(z|x)
    log_w = (out["log_px"] + beta * latent).view(mc_samples, iw_samples, -1)
    return -(torch.logsumexp(log_w, dim=1) - math.log(iw_samples)).mean()


@torch.no_grad()
def iw_bound(
    model: LadderVAE,
    x: torch.Tensor,
    k: int = 5000,
    batch_size: int = 100,
    max_rows: int | None = None,
    progress: bool = True,
    fold_bn: bool = True,
    nested: tuple[int, ...] = (),
):
    """Per-example importance-weighted bound L_K = E[log (1/K) sum_k w_k] (eq. 6).

    The upward (deterministic) pass runs once per image; the K samples are
    drawn in chunks of at most ``max_rows // batch_size`` (``max_rows``: 5,000 on a CPU, 500,000 on a
    GPU, unless given) and combined with a
    streaming log-sum-exp, so memory stays bounded for K = 5000.  Batch norm
    is in evaluation mode (running statistics), folded into the linear layers
    (``fold_bn``, see :func:`lvae_lib.model.fold_batchnorm`).
    With ``k = 1`` this is a one-sample estimate of the ELBO (the paper's L_1).

    ``nested`` (each < k): also return, as ``{k': per-example L_k'}``, the bound of the first k' of the
    same samples, at no extra cost; L_K itself is unchanged (the same draws, the same chunks, where every
    k' is a multiple of the chunk; otherwise a chunk is split at k').
    """
    if any(not 0 < m < k for m in nested):
        raise ValueError(f"nested sample counts must lie in (0, k={k}), got {nested}")
    net = fold_batchnorm(model) if fold_bn and model.cfg.batch_norm else model
    # rows per forward pass: about 5,000 keep a CPU's caches warm; a GPU wants hundreds of thousands
    max_rows = max_rows or (500_000 if x.device.type == "cuda" else 5_000)
    chunk = max(1, min(k, max_rows // max(1, min(batch_size, len(x)))))
    out = torch.empty(len(x), dtype=torch.float64)
    inner = {m: torch.empty(len(x), dtype=torch.float64) for m in nested}
    with mode(model, False), tqdm(total=len(x), desc=f"L_{k}", unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(x), batch_size):
            # [the bound] per image: the upward pass once, then K samples in chunks, a streaming log-sum-exp
            xb = x[start : start + batch_size]
            up = net.upward(xb)
            acc = torch.full((len(xb),), -math.inf, dtype=torch.float64, device=xb.device)
            done = 0
            while done < k:
                n = min([chunk, k - done] + [m - done for m in nested if m > done])
                r = net.infer(up, n)  # chunks of about 5,000 rows keep activations in cache: fastest on CPU
                log_w = (net.log_px(xb, r["z"][0]) + r["log_ratio"]).view(n, len(xb)).double()
                acc = torch.logaddexp(acc, torch.logsumexp(log_w, 0))
                done += n
                if done in inner:
                    inner[done][start : start + len(xb)] = (acc - math.log(done)).cpu()
            out[start : start + len(xb)] = (acc - math.log(k)).cpu()
            # [end of the bound]
            bar.update(len(xb))
    return (out, inner) if nested else out
