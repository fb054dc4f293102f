"""lvae_lib: Ladder Variational Autoencoders (Sønderby et al., NIPS 2016) in PyTorch.

Modules: ``config`` (dataclasses, presets), ``distributions`` (closed forms),
``model`` (VAE / LVAE), ``objectives`` (ELBO, L_K), ``train``, ``analysis``,
``data``, ``plots``, ``cli``.
"""
from .config import ModelConfig, TrainConfig, preset
from .model import LadderVAE

__all__ = ["ModelConfig", "TrainConfig", "preset", "LadderVAE"]
__version__ = "0.1.0"
