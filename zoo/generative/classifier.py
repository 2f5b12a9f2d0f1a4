"""A small CNN image classifier: the judge of the generative models' samples.

It is trained here on the same data as the generative models (train.py's
'classifier' family, configs/classifier_fashion_mnist.py). Its penultimate
layer gives the features of the Fréchet distance between real and generated
images (``zoo.generative.frechet``) and its predictions give the class
histogram of a set of samples, which shows mode coverage. Features of a
classifier trained here are not Inception features: distances in them are not
FID and are comparable only with other distances in the same features.

Glossary: B batch, Y height, X width, C channels, D feature width, L classes.

    model = Classifier(ClassifierConfig())
    params = model.init(key, x)                              # x: [B, 28, 28, 1] in [0, 1]
    logits = model.apply(params, x)                          # [B, L]
    feats = model.apply(params, x, method=Classifier.features)  # [B, D]
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.generative.config import Dtype, _dtype, _positive_int, _positive_ints


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Attributes:
      data_shape: one image, (Y, X, C), Y and X divisible by 2 ** len(channels).
      num_classes: L.
      channels: the channels of each stage: two 3x3 convolutions, then a 2x2 max-pool.
      feature_dim: D, the width of the penultimate (feature) layer.
      dropout_rate: dropout on the features while training.
      dtype: compute dtype; params and logits stay float32.
    """

    data_shape: tuple[int, ...] = (28, 28, 1)
    num_classes: int = 10
    channels: tuple[int, ...] = (32, 64)
    feature_dim: int = 128
    dropout_rate: float = 0.3
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        _positive_int("num_classes", self.num_classes)
        _positive_ints("channels", self.channels)
        factor = 2 ** len(self.channels)
        if len(self.data_shape) != 3 or self.data_shape[0] % factor or self.data_shape[1] % factor:
            raise ValueError(f"data_shape must be (H, W, C) with H and W divisible by {factor} "
                             f"({len(self.channels)} 2x2 pools), got {self.data_shape!r}")
        _positive_int("feature_dim", self.feature_dim)
        if not 0 <= self.dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate!r}")
        _dtype("dtype", self.dtype)


class Classifier(nn.Module):
    config: ClassifierConfig

    def setup(self):
        cfg = self.config
        self.convs = [(nn.Conv(c, (3, 3), dtype=cfg.dtype), nn.Conv(c, (3, 3), dtype=cfg.dtype))
                      for c in cfg.channels]
        self.feature = nn.Dense(cfg.feature_dim, dtype=cfg.dtype)
        self.dropout = nn.Dropout(cfg.dropout_rate)
        self.head = nn.Dense(cfg.num_classes, dtype=cfg.dtype)

    def features(self, x: jax.Array) -> jax.Array:
        """[B, Y, X, C] grey levels in [0, 1] -> [B, D] float32 (after the ReLU)."""
        if tuple(x.shape[1:]) != tuple(self.config.data_shape):
            raise ValueError(f"x must be [B, {', '.join(map(str, self.config.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")
        h = (2 * x - 1).astype(self.config.dtype)  # centred, [B, Y, X, C]
        for first, second in self.convs:
            h = nn.relu(second(nn.relu(first(h))))  # [B, Y', X', channels]
            h = nn.max_pool(h, (2, 2), strides=(2, 2))  # [B, Y'/2, X'/2, channels]
        h = h.reshape(h.shape[0], -1)  # [B, Y' X' channels]
        return nn.relu(self.feature(h)).astype(jnp.float32)  # [B, D]

    def __call__(self, x: jax.Array, deterministic: bool = True) -> jax.Array:
        """[B, Y, X, C] -> logits [B, L] float32; dropout needs an rng 'dropout' when training."""
        h = self.dropout(self.features(x), deterministic=deterministic)  # [B, D]
        return self.head(h.astype(self.config.dtype)).astype(jnp.float32)  # [B, L]


__all__ = ["Classifier", "ClassifierConfig"]
