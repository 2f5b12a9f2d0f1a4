"""Generative models: the VAE (MLP / conv, Bernoulli / Gaussian, beta) and the (DC)GAN.

Presets (``zoo.registry``, registered on importing ``zoo.generative``):
vae_conv_fashion_mnist, vae_mlp_fashion_mnist, vae_tiny (``VAE``);
gan_dcgan_fashion_mnist, gan_dcgan_tiny, gan_mlp_toy (``GAN``).
Models and their losses only: training goes through ``zoo.train`` (the
families 'vae' and 'gan' in ``zoo/train/families/generative.py``, one
``TrainState`` and train step for every model) with configs/vae_fashion_mnist.py,
configs/gan_fashion_mnist.py and configs/gan_toy.py.
"""

from zoo import registry
from zoo.generative.config import GANConfig, VAEConfig
from zoo.generative.distributions import LIKELIHOODS, Normal, kl_to_standard_normal, reparameterize
from zoo.generative.gan import GAN, LOSSES, GANLoss, GANOutput
from zoo.generative.presets import GAN_PRESETS, VAE_PRESETS
from zoo.generative.vae import VAE, VAEOutput

for _name, _config in VAE_PRESETS.items():
    registry.register(_name, _config, VAE)
for _name, _config in GAN_PRESETS.items():
    registry.register(_name, _config, GAN)

__all__ = [
    "GAN",
    "GAN_PRESETS",
    "LIKELIHOODS",
    "LOSSES",
    "VAE",
    "VAE_PRESETS",
    "GANConfig",
    "GANLoss",
    "GANOutput",
    "Normal",
    "VAEConfig",
    "VAEOutput",
    "kl_to_standard_normal",
    "reparameterize",
]
