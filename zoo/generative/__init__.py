"""Generative models: the VAE (MLP / conv, Bernoulli / Gaussian, beta) and the (DC)GAN.

Presets (``zoo.registry``, registered on importing ``zoo.generative``):
vae_conv_fashion_mnist, vae_mlp_fashion_mnist, vae_tiny (``VAE``);
gan_dcgan_fashion_mnist, gan_dcgan_tiny, gan_mlp_toy (``GAN``);
ebm_mlp_toy, ebm_tiny (``EBM``, an energy over points; ``langevin`` samples it);
flow_realnvp_fashion_mnist, flow_tiny (``RealNVP``, a normalizing flow);
ddpm_fashion_mnist, ddpm_tiny (``DDPM``, denoising diffusion);
pixelcnn_fashion_mnist, pixelcnn_tiny (``PixelCNN``, gated, autoregressive).
Models and their losses only: training goes through ``zoo.train`` (the
families 'vae' and 'gan' in ``zoo/train/families/generative.py``, one
``TrainState`` and train step for every model) with configs/vae_fashion_mnist.py,
configs/gan_fashion_mnist.py and configs/gan_toy.py.
"""

from zoo import registry
from zoo.generative.classifier import Classifier, ClassifierConfig
from zoo.generative.config import GANConfig, VAEConfig
from zoo.generative.diffusion import DDPM, DIFFUSION_PRESETS, DiffusionConfig
from zoo.generative.distributions import LIKELIHOODS, Normal, kl_to_standard_normal, reparameterize
from zoo.generative.ebm import EBM, EBM_PRESETS, EBMConfig, contrastive_divergence_loss, langevin
from zoo.generative.flow import FLOW_PRESETS, FlowConfig, RealNVP
from zoo.generative.gan import GAN, LOSSES, GANLoss, GANOutput
from zoo.generative.pixelcnn import PIXELCNN_PRESETS, PixelCNN, PixelCNNConfig
from zoo.generative.presets import CLASSIFIER_PRESETS, GAN_PRESETS, VAE_PRESETS
from zoo.generative.vae import VAE, VAEOutput, iwae_log_likelihood

for _name, _config in VAE_PRESETS.items():
    registry.register(_name, _config, VAE)
for _name, _config in GAN_PRESETS.items():
    registry.register(_name, _config, GAN)
for _name, _config in DIFFUSION_PRESETS.items():
    registry.register(_name, _config, DDPM)
for _name, _config in FLOW_PRESETS.items():
    registry.register(_name, _config, RealNVP)
for _name, _config in EBM_PRESETS.items():
    registry.register(_name, _config, EBM)
for _name, _config in PIXELCNN_PRESETS.items():
    registry.register(_name, _config, PixelCNN)
for _name, _config in CLASSIFIER_PRESETS.items():
    registry.register(_name, _config, Classifier)

__all__ = [
    "DDPM",
    "DIFFUSION_PRESETS",
    "DiffusionConfig",
    "CLASSIFIER_PRESETS",
    "Classifier",
    "ClassifierConfig",
    "EBM",
    "EBM_PRESETS",
    "FLOW_PRESETS",
    "GAN",
    "GAN_PRESETS",
    "LIKELIHOODS",
    "LOSSES",
    "PIXELCNN_PRESETS",
    "PixelCNN",
    "PixelCNNConfig",
    "RealNVP",
    "VAE",
    "VAE_PRESETS",
    "EBMConfig",
    "FlowConfig",
    "GANConfig",
    "GANLoss",
    "GANOutput",
    "Normal",
    "VAEConfig",
    "VAEOutput",
    "contrastive_divergence_loss",
    "iwae_log_likelihood",
    "kl_to_standard_normal",
    "langevin",
    "reparameterize",
]
