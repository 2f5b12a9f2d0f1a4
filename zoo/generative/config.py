"""Frozen, validated configs of the generative models: ``VAEConfig`` and ``GANConfig``.

A bad value fails when the config is made, naming the field, the value and
what is allowed, not as a shape error deep inside ``init``. Named presets are
in ``zoo/generative/presets.py``.

Shapes: ``data_shape`` is one example without the batch axis: ``(Y, X, C)``
for images (the 'conv' / 'dcgan' architectures need that), any shape for 'mlp'
(``(2,)`` for points in the plane).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

Dtype = Any

VAE_ARCHITECTURES = ("mlp", "conv")
GAN_ARCHITECTURES = ("mlp", "dcgan")
LIKELIHOODS = ("bernoulli", "gaussian")
GAN_LOSSES = ("non_saturating", "hinge")
UPSAMPLINGS = ("transpose", "resize")
OUTPUT_ACTIVATIONS = ("tanh", "linear")


def _one_of(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _positive_ints(name: str, values: Any, *, allow_empty: bool = False) -> None:
    if not isinstance(values, tuple) or (not values and not allow_empty) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    ):
        what = "a tuple of positive ints" + ("" if allow_empty else " (non-empty)")
        raise ValueError(f"{name} must be {what}, got {values!r}")


def _image_shape(name: str, shape: tuple, downsamplings: int, architecture: str) -> None:
    """(Y, X, C) with Y and X divisible by 2**downsamplings (each stride-2 conv halves them)."""
    factor = 2**downsamplings
    if len(shape) != 3 or shape[0] % factor or shape[1] % factor:
        raise ValueError(
            f"{name} must be (H, W, C) with H and W divisible by {factor} for "
            f"architecture={architecture!r} with {downsamplings} stride-2 layers, got {shape!r}"
        )


def _dtype(name: str, value: Any) -> None:
    if jnp.dtype(value) not in (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16)):
        raise ValueError(f"{name} must be float32 or bfloat16, got {value!r}")


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Variational autoencoder hyperparameters (Kingma & Welling 2014; beta-VAE, Higgins 2017).

    Attributes:
      data_shape: one example, ``(Y, X, C)`` for 'conv'.
      latent_dim: Z, the size of the Gaussian latent.
      architecture: 'mlp' (dense layers over the flattened example) or 'conv'
        (stride-2 convolutions down, transposed convolutions up).
      hidden_dims: 'mlp': dense widths of the encoder (the decoder mirrors them);
        'conv': channels of each stride-2 layer.
      likelihood: p(x|z): 'bernoulli' (the decoder gives logits; x in {0, 1}) or
        'gaussian' (the decoder gives the mean; fixed ``observation_std``).
      observation_std: sigma of the Gaussian likelihood (unused by 'bernoulli').
      beta: weight of the KL term in the training loss (1 = the ELBO).
      dtype: compute dtype; params and losses stay float32.
    """

    data_shape: tuple[int, ...] = (28, 28, 1)
    latent_dim: int = 16
    architecture: str = "conv"
    hidden_dims: tuple[int, ...] = (32, 64)
    likelihood: str = "bernoulli"
    observation_std: float = 0.1
    beta: float = 1.0
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        _positive_int("latent_dim", self.latent_dim)
        _one_of("architecture", self.architecture, VAE_ARCHITECTURES)
        _positive_ints("hidden_dims", self.hidden_dims, allow_empty=self.architecture == "mlp")
        if self.architecture == "conv":
            _image_shape("data_shape", self.data_shape, len(self.hidden_dims), self.architecture)
        _one_of("likelihood", self.likelihood, LIKELIHOODS)
        if not self.observation_std > 0:
            raise ValueError(f"observation_std must be > 0, got {self.observation_std!r}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta!r}")
        _dtype("dtype", self.dtype)


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """GAN hyperparameters (Goodfellow et al. 2014; DCGAN, Radford et al. 2016).

    Attributes:
      data_shape: one example, ``(Y, X, C)`` with Y, X divisible by 4 for 'dcgan'.
      latent_dim: Z, the size of the standard-normal noise.
      architecture: 'mlp' or 'dcgan' (two stride-2 transposed convolutions up in
        the generator, two stride-2 convolutions down in the discriminator).
      generator_dims: 'mlp': hidden widths; 'dcgan': channels of the 1/4- and
        1/2-resolution feature maps.
      discriminator_dims: 'mlp': hidden widths; 'dcgan': channels of the two
        stride-2 convolutions.
      loss: 'non_saturating' (the generator maximises log D(G(z))) or 'hinge'.
      output_activation: 'tanh' (data scaled to [-1, 1]) or 'linear'.
      upsample: 'dcgan' generator's upsampling: 'transpose' (stride-2 transposed
        convolutions, DCGAN's) or 'resize' (nearest resizing + a 3x3 convolution).
      spectral_norm: 'dcgan' discriminator's kernels divided by their spectral norm.
      dtype: compute dtype; params and losses stay float32.
    """

    data_shape: tuple[int, ...] = (28, 28, 1)
    latent_dim: int = 64
    architecture: str = "dcgan"
    generator_dims: tuple[int, ...] = (64, 32)
    discriminator_dims: tuple[int, ...] = (32, 64)
    loss: str = "non_saturating"
    output_activation: str = "tanh"
    upsample: str = "transpose"
    spectral_norm: bool = False
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        _positive_int("latent_dim", self.latent_dim)
        _one_of("architecture", self.architecture, GAN_ARCHITECTURES)
        _one_of("upsample", self.upsample, UPSAMPLINGS)
        if not isinstance(self.spectral_norm, bool):
            raise ValueError(f"spectral_norm must be a bool, got {self.spectral_norm!r}")
        _positive_ints("generator_dims", self.generator_dims)
        _positive_ints("discriminator_dims", self.discriminator_dims)
        if self.architecture == "dcgan":
            for name in ("generator_dims", "discriminator_dims"):
                if len(getattr(self, name)) != 2:
                    raise ValueError(f"{name} must have 2 entries for architecture='dcgan' "
                                     f"(one per stride-2 layer), got {getattr(self, name)!r}")
            _image_shape("data_shape", self.data_shape, 2, self.architecture)
        _one_of("loss", self.loss, GAN_LOSSES)
        _one_of("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        _dtype("dtype", self.dtype)
