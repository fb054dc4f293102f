"""One dataclass describes a model, one a training run; one table (:data:`VARIANTS`) names the paper's
variants as the legends of its figures do (VAE, VAE+BN, VAE+BN+WU, LVAE+BN+WU, and LVAE+WU of the
appendix's Fig. 7): inference, batch norm, warm-up, and the colour and marker every figure gives them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

PAPER_LATENTS = (64, 32, 16, 8, 4)
PAPER_HIDDEN = (512, 256, 128, 64, 32)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a (L)VAE.  Defaults are the paper's 5-layer MNIST model.

    ``hidden_sizes[0]`` is the width of the two-layer MLPs between x and z_1
    (or d_1); ``hidden_sizes[i]`` the width of those between z_i and z_{i+1}.
    """

    inference: str = "ladder"  # "ladder" (LVAE, eqs. 13-19) or "bottom_up" (VAE, eqs. 7-12)
    n_layers: int = 5  # number of stochastic layers L, 1-5; shallower models drop top layers
    latent_sizes: tuple[int, ...] = PAPER_LATENTS
    hidden_sizes: tuple[int, ...] = PAPER_HIDDEN
    x_dim: int = 784
    likelihood: str = "bernoulli"  # "bernoulli" (MNIST, OMNIGLOT) or "gaussian" (NORB)
    activation: str = "leaky_relu"  # "leaky_relu" (slope 0.1) or "tanh" (NORB)
    batch_norm: bool = True
    # LVAE only: the paper shares the top-down MLPs p(z_i|z_{i+1}) between the
    # generative model and the inference path (Fig. 1b, "shared").  The
    # authors' released code ran with ``ladder_share_params False``, which gives
    # the inference path its own top-down MLPs of the same shape.
    share_top_down: bool = True
    min_var: float = 1e-6  # floor added to every Softplus variance, for numerical safety (the authors': 1e-5)
    # the authors' released code (casperkaae/LVAE) where it differs from the paper; off by default
    head_batch_norm: bool = False  # batch norm on the Linear of every latent mu and var head too
    only_mu_up: bool = False  # LVAE: each upward MLP reads the mu_hat below it instead of d_{i-1} (eq. 13)
    leaky_slope: float = 0.1  # the paper's; Lasagne's leaky_rectify, which their code uses: 0.01
    init: str = "torch"  # "torch" (PyTorch's defaults) or "glorot" (Glorot-normal weights, variance-head bias 1)
    # each layer's KL term: "analytic" (closed form wherever q_i and p_i share their parent: the top layer, and
    # every LVAE layer; one-sample Monte Carlo in the VAE's lower layers, which have none) or "mc" (one-sample
    # Monte Carlo log q(z_i|.) - log p(z_i|.) at every layer, as the authors' run_models.py does)
    kl: str = "analytic"

    def __post_init__(self):
        if self.inference not in ("ladder", "bottom_up"):
            raise ValueError(f"inference must be 'ladder' or 'bottom_up', got {self.inference!r}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.activation not in ("leaky_relu", "tanh"):
            raise ValueError(f"activation must be 'leaky_relu' or 'tanh', got {self.activation!r}")
        if self.kl not in ("analytic", "mc"):
            raise ValueError(f"kl must be 'analytic' or 'mc', got {self.kl!r}")
        if self.init not in ("torch", "glorot"):
            raise ValueError(f"init must be 'torch' or 'glorot', got {self.init!r}")
        if not 0 <= self.leaky_slope < 1:
            raise ValueError(f"leaky_slope must lie in [0, 1), got {self.leaky_slope}")
        if not 1 <= self.n_layers <= min(len(self.latent_sizes), len(self.hidden_sizes)):
            raise ValueError(
                f"n_layers={self.n_layers} needs 1 <= n_layers <= {min(len(self.latent_sizes), len(self.hidden_sizes))}"
                f" (latent_sizes={self.latent_sizes}, hidden_sizes={self.hidden_sizes})"
            )
        object.__setattr__(self, "latent_sizes", tuple(self.latent_sizes))
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))

    @property
    def latents(self) -> tuple[int, ...]:
        return self.latent_sizes[: self.n_layers]

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.hidden_sizes[: self.n_layers]


# The training step's precision policy (:mod:`lvae_lib.step`). Weights, Adam's state, the Gaussian heads,
# the precision-weighted merge, every log-probability and the loss stay fp32 in all of them.
PRECISIONS = {
    "fp32": "every operation in fp32 (every record before precision was a choice)",
    "bf16": "the matmuls inside the MLPs in bfloat16 (inputs and weights cast, fp32 output); CPU or GPU",
    "tf32": "fp32 matmuls on TF32 tensor cores (torch.backends.cuda.matmul.allow_tf32); GPUs only",
}

# fields added to a config after records were made with it: left out of its dict (its key, its checkpoints)
# while at these defaults, so that every earlier record and checkpoint keeps its key
ADDED_LATER = {"precision": "fp32", "head_batch_norm": False, "only_mu_up": False, "leaky_slope": 0.1, "init": "torch",
               "kl": "analytic", "adam_eps": 1e-8, "clip_norm": 0.0, "clip_value": 0.0}


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained and evaluated (nanoGPT style: one script, any budget)."""

    epochs: int = 2000
    warmup_epochs: int = 0  # N_t of eq. (20); 0 means beta = 1 from the start
    lr: float = 1e-3
    batch_size: int = 256
    mc_samples: int = 1  # Monte Carlo samples of the ELBO per example
    iw_samples: int = 1  # importance samples in the training objective (IW bound when > 1)
    lr_decay: float = 1.0  # multiply lr by this ...
    lr_decay_every: int = 0  # ... every this many epochs (0: never); fine-tuning uses 0.75 / 200
    eval_every: int = 10  # test L_1 and active units every this many epochs (and at the last)
    eval_k: int = 5000  # K of the final test L_K
    kl_snapshot_epochs: tuple[int, ...] = ()  # epochs at which per-unit KL is stored (Fig. 4)
    train_subset: int = 0  # use only the first N training images (0: all); for smoke runs
    test_subset: int = 0  # likewise for the test set
    seed: int = 0
    checkpoint_every: int = 10  # epochs between checkpoints
    # how the training step computes (:data:`PRECISIONS`); evaluation is always fp32
    precision: str = "fp32"
    # the authors' optimiser settings where they differ from PyTorch's; off by default
    adam_eps: float = 1e-8  # Adam's epsilon (the authors': 1e-4)
    clip_norm: float = 0.0  # scale each model's gradient to at most this total norm (0: off; the authors': 4)
    clip_value: float = 0.0  # then clip each element to +- this (0: off; the authors': 0.9)

    def __post_init__(self):
        object.__setattr__(self, "kl_snapshot_epochs", tuple(self.kl_snapshot_epochs))
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("epochs", "batch_size", "mc_samples", "iw_samples", "eval_k", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_epochs", "train_subset", "test_subset", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.lr < float("inf"):
            raise ValueError(f"TrainConfig.lr must be a finite number > 0, got {self.lr}")
        for name in ("adam_eps", "clip_norm", "clip_value"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {getattr(self, name)}")

    def beta(self, epoch: int) -> float:
        """Warm-up weight of eq. (20) during (0-based) ``epoch``: linear 0 -> 1 over N_t epochs."""
        if self.warmup_epochs <= 0:
            return 1.0
        return min(1.0, epoch / self.warmup_epochs)

    def lr_at(self, epoch: int) -> float:
        if self.lr_decay_every <= 0:
            return self.lr
        return self.lr * self.lr_decay ** (epoch // self.lr_decay_every)


@dataclass(frozen=True)
class Variant:
    """One model variant of the paper's figures: how it is built and trained, and how every figure
    draws it. :data:`VARIANTS` is the one table of them; config, registry, plots and report read it."""

    name: str
    inference: str  # "bottom_up" (VAE) or "ladder" (LVAE)
    batch_norm: bool
    warmup: bool
    color: str
    marker: str
    # any other ModelConfig / TrainConfig field this variant sets, as (name, value) pairs: a row can change
    # anything a config holds (the budget still fixes epochs, warm-up length, evaluation and the seed)
    model: tuple = ()
    train: tuple = ()
    paper: bool = True  # one of the paper's variants (its "best VAE" is chosen among these), not a study's

    def __post_init__(self):
        for field, cls in (("model", ModelConfig), ("train", TrainConfig)):
            names = {f.name for f in dataclasses.fields(cls)}
            bad = [k for k, _ in getattr(self, field) if k not in names]
            if bad:
                raise ValueError(f"variant {self.name!r}: {', '.join(bad)} is not a {cls.__name__} field")

    @property
    def ladder(self) -> bool:
        return self.inference == "ladder"


# the settings of the authors' released code (casperkaae/LVAE: run_models.py and its README's command)
# where they differ from the paper's text, which this package follows by default
AUTHORS_MODEL = (("head_batch_norm", True), ("leaky_slope", 0.01), ("init", "glorot"), ("min_var", 1e-5))
AUTHORS_LADDER = (("share_top_down", False), ("only_mu_up", True))
AUTHORS_TRAIN = (("lr", 2e-4), ("adam_eps", 1e-4), ("clip_norm", 4.0), ("clip_value", 0.9))
# one setting at a time, on VAE+BN+WU: name suffix -> (model overrides, train overrides)
AUTHORS_ABLATIONS = {
    "headBN": ((AUTHORS_MODEL[0],), ()), "slope0.01": ((AUTHORS_MODEL[1],), ()), "glorot": ((AUTHORS_MODEL[2],), ()),
    "var1e-5": ((AUTHORS_MODEL[3],), ()), "lr2e-4": ((), (AUTHORS_TRAIN[0],)), "eps1e-4": ((), (AUTHORS_TRAIN[1],)),
    "clip": ((), AUTHORS_TRAIN[2:]),
    "mcKL": ((("kl", "mc"),), ()),  # added after the study's others, so it is not in AUTHORS_MODEL (their keys stay)
}
# the single settings also measured on the LVAE (LVAE+BN+WU+<name>), where they change more than in the VAE
# (the Monte Carlo KL replaces every LVAE layer's closed form, but only the VAE's top layer's)
AUTHORS_LADDER_ABLATIONS = ("mcKL",)
# the single settings that the all-together variants below leave out (options added after those were trained)
AUTHORS_LEFT_OUT = tuple(k for k, (m, t) in AUTHORS_ABLATIONS.items()
                         if not set(m + t) <= set(AUTHORS_MODEL + AUTHORS_LADDER + AUTHORS_TRAIN))

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("VAE", "bottom_up", batch_norm=False, warmup=False, color="#7f7f7f", marker="o"),
    Variant("VAE+BN", "bottom_up", batch_norm=True, warmup=False, color="#1f77b4", marker="s"),
    Variant("VAE+BN+WU", "bottom_up", batch_norm=True, warmup=True, color="#2ca02c", marker="^"),
    Variant("LVAE+BN+WU", "ladder", batch_norm=True, warmup=True, color="#d62728", marker="D"),
    Variant("LVAE+WU", "ladder", batch_norm=False, warmup=True, color="#ff7f0e", marker="v"),  # appendix, Fig. 7
    # the authors'-settings study (not the paper's figures)
    Variant("VAE+BN+WU+authors", "bottom_up", batch_norm=True, warmup=True, color="#98df8a", marker="^",
            model=AUTHORS_MODEL, train=AUTHORS_TRAIN, paper=False),
    Variant("LVAE+BN+WU+authors", "ladder", batch_norm=True, warmup=True, color="#ff9896", marker="D",
            model=AUTHORS_MODEL + AUTHORS_LADDER, train=AUTHORS_TRAIN, paper=False),
    *(Variant(f"VAE+BN+WU+{k}", "bottom_up", batch_norm=True, warmup=True, color="#bcbd22", marker="^",
              model=m, train=t, paper=False) for k, (m, t) in AUTHORS_ABLATIONS.items()),
    *(Variant(f"LVAE+BN+WU+{k}", "ladder", batch_norm=True, warmup=True, color="#e377c2", marker="D",
              model=m, train=t, paper=False) for k, (m, t) in AUTHORS_ABLATIONS.items() if k in AUTHORS_LADDER_ABLATIONS),
)}

# name -> (ModelConfig overrides, uses warm-up), read from VARIANTS
PRESETS: dict[str, tuple[dict, bool]] = {
    v.name: (dict(inference=v.inference, batch_norm=v.batch_norm, **dict(v.model)), v.warmup) for v in VARIANTS.values()
}


def bottom_up(name: str) -> bool:
    """Whether the variant ``name`` is one of the paper's VAEs (bottom-up inference): its "best VAE" is chosen
    among these (a study's variants, such as the authors' settings, are not candidates)."""
    return not VARIANTS[name].ladder and VARIANTS[name].paper


@dataclass(frozen=True)
class Dataset:
    """One dataset of Section 3: what the model, the loaders and the figures need to know of it.
    :data:`DATASETS` is the one table of them."""

    name: str
    display_name: str
    image_shape: tuple[int, int]
    likelihood: str  # of the pixels given z_1: "bernoulli" or "gaussian"
    activation: str  # of the MLPs: the paper uses tanh for NORB
    binary: bool  # dynamically binarised during training, binarised once for testing
    paper_epochs: int  # of training in the paper (Section 3); the budgets scale it (experiments.BUDGETS)

    @property
    def x_dim(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("mnist", "MNIST", (28, 28), "bernoulli", "leaky_relu", binary=True, paper_epochs=2000),
    Dataset("omniglot", "OMNIGLOT (IWAE)", (28, 28), "bernoulli", "leaky_relu", binary=True, paper_epochs=1500),
    Dataset("omniglot28", "OMNIGLOT-28 stand-in", (28, 28), "bernoulli", "leaky_relu", binary=True, paper_epochs=1500),
    Dataset("norb", "NORB", (32, 32), "gaussian", "tanh", binary=False, paper_epochs=2000),
)}

# the ModelConfig fields each dataset fixes, read from DATASETS
DATASET_MODEL = {d.name: dict(x_dim=d.x_dim, likelihood=d.likelihood, activation=d.activation)
                 for d in DATASETS.values()}


def preset(name: str, n_layers: int = 5, dataset: str = "mnist", **overrides) -> tuple[ModelConfig, bool]:
    """Return ``(ModelConfig, uses_warmup)`` for a named paper variant.

    >>> cfg, wu = preset("LVAE+BN+WU", n_layers=3)
    >>> cfg.inference, cfg.latents, wu
    ('ladder', (64, 32, 16), True)
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    if dataset not in DATASET_MODEL:
        raise KeyError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASET_MODEL)}")
    kw, warm = PRESETS[name]
    cfg = ModelConfig(n_layers=n_layers, **{**DATASET_MODEL[dataset], **kw, **overrides})
    return cfg, warm


def to_dict(cfg) -> dict:
    """A config as a plain dict (tuples as lists), without the :data:`ADDED_LATER` fields at their defaults."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()
            if not (k in ADDED_LATER and v == ADDED_LATER[k])}


def config_hash(*parts) -> str:
    """A short stable hash of configs / dicts, used as a results-store key."""
    blob = json.dumps([to_dict(p) if dataclasses.is_dataclass(p) else p for p in parts], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
