"""lvae_lib: Ladder Variational Autoencoders (Sønderby et al., NIPS 2016) in PyTorch.

The README's "Layout" table lists the modules and what each owns.
"""
from .config import ModelConfig, TrainConfig, preset
from .model import LadderVAE

__all__ = ["ModelConfig", "TrainConfig", "preset", "LadderVAE"]
__version__ = "0.1.0"
