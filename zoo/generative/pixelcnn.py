"""The gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
Decoders"): an autoregressive model of 8-bit images, one 256-way softmax per pixel.

    p(x) = prod over pixels i in raster order of p(x_i | x_<i)

Two stacks of causal convolutions keep the conditioning exact without the
original PixelCNN's blind spot (the pixels up and to the right that masked
3x3 convolutions never reach):

- the *vertical* stack sees every pixel of the rows strictly above, over the
  kernel's full width; its first layer shifts its input one row down, so row y
  of every vertical feature depends on rows < y only;
- the *horizontal* stack sees the pixels strictly left in its own row (type A,
  the first layer: input shifted one column right) or up to and including its
  own position (type B, the later layers, whose features at x already exclude
  input pixel x), plus a 1x1 projection of the vertical stack at the same place.

Each layer gates its features, tanh(a) * sigmoid(b), and the horizontal stack
adds a residual connection. A 1x1 head (ReLU, 1x1, ReLU, 1x1) gives 256 logits
per pixel. Causal convolutions are cut-down kernels with one-sided padding
(not full kernels times a mask), so no weight is spent on the half that a mask
would zero, and dependence on later pixels is absent by construction.

Glossary: B batch, Y height, X width, C image channels (1 here), P feature
channels (``config.channels``), L grey levels (``config.num_levels``, 256).

    model = PixelCNN(PixelCNNConfig())
    params = model.init(key, x)                                    # x [B, Y, X, C] in 0..255
    logits = model.apply(params, x)                                # [B, Y, X, C, L] float32
    bpd = model.apply(params, x, method=PixelCNN.nll_bits_per_dim)  # [B]
    images = jax.jit(lambda p, k: model.apply(p, k, 16, method=PixelCNN.sample))(params, key)
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.generative.config import Dtype, _dtype, _positive_int, _positive_ints


def _odd_kernel(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 3 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd int >= 3 (a centred kernel that reaches "
                         f"past its own pixel), got {value!r}")


@dataclasses.dataclass(frozen=True)
class PixelCNNConfig:
    """Gated PixelCNN hyperparameters.

    Attributes:
      data_shape: one image, ``(Y, X, C)``; C must be 1 (grey images: no masking
        between the colour channels of one pixel is implemented).
      channels: P, the feature channels of both stacks.
      num_layers: gated layers; the first is type A (excludes its own pixel).
      kernel_size: k of the type-B layers: the vertical stack reads k // 2 + 1
        rows of k columns, the horizontal stack k // 2 + 1 columns.
      first_kernel_size: the same for the first (type-A) layer; a wide first layer
        grows the receptive field cheaply.
      num_levels: L grey levels per pixel (256 for 8-bit images): the softmax size.
      dtype: compute dtype; params and logits stay float32.
    """

    data_shape: tuple[int, ...] = (28, 28, 1)
    channels: int = 64
    num_layers: int = 8
    kernel_size: int = 3
    first_kernel_size: int = 7
    num_levels: int = 256
    dtype: Dtype = jnp.float32

    def __post_init__(self):
        _positive_ints("data_shape", self.data_shape)
        if len(self.data_shape) != 3 or self.data_shape[2] != 1:
            raise ValueError(f"data_shape must be (Y, X, 1): the PixelCNN models grey images "
                             f"only (C = 1), got {self.data_shape!r}")
        _positive_int("channels", self.channels)
        _positive_int("num_layers", self.num_layers)
        _odd_kernel("kernel_size", self.kernel_size)
        _odd_kernel("first_kernel_size", self.first_kernel_size)
        if not isinstance(self.num_levels, int) or isinstance(self.num_levels, bool) or not (
                2 <= self.num_levels <= 65536):
            raise ValueError(f"num_levels must be an int in [2, 65536], got {self.num_levels!r}")
        _dtype("dtype", self.dtype)


def _gate(a: jax.Array) -> jax.Array:
    """[..., 2P] -> [..., P]: tanh of one half times sigmoid of the other."""
    content, gate = jnp.split(a, 2, axis=-1)
    return jnp.tanh(content) * jax.nn.sigmoid(gate)


def _shift_down(x: jax.Array) -> jax.Array:
    """[B, Y, X, D] -> [B, Y, X, D]: row y holds row y - 1 (zeros in row 0)."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def _shift_right(x: jax.Array) -> jax.Array:
    """[B, Y, X, D] -> [B, Y, X, D]: column x holds column x - 1 (zeros in column 0)."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class GatedLayer(nn.Module):
    """One layer of both stacks: (v, h) [B, Y, X, D] -> (v, h) [B, Y, X, P]."""

    channels: int
    kernel_size: int
    first: bool  # type A: the input pixel itself is excluded (shifts before the convolutions)
    dtype: Dtype

    @nn.compact
    def __call__(self, v: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
        p, half = self.channels, self.kernel_size // 2
        if self.first:
            v_in, h_in = _shift_down(v), _shift_right(h)  # [B, Y, X, D] each
        else:
            v_in, h_in = v, h
        # Vertical: rows y - half .. y and columns x - half .. x + half of v_in.
        v_pre = nn.Conv(2 * p, (half + 1, self.kernel_size), padding=((half, 0), (half, half)),
                        dtype=self.dtype, name="vertical")(v_in)  # [B, Y, X, 2P]
        # Horizontal: columns x - half .. x of h_in, in its own row.
        h_pre = nn.Conv(2 * p, (1, half + 1), padding=((0, 0), (half, 0)), dtype=self.dtype,
                        name="horizontal")(h_in)  # [B, Y, X, 2P]
        # Row y of v_pre depends on input rows < y only, so the horizontal stack may read it.
        h_pre = h_pre + nn.Dense(2 * p, dtype=self.dtype, name="vertical_to_horizontal")(v_pre)
        h_out = nn.Dense(p, dtype=self.dtype, name="horizontal_out")(_gate(h_pre))  # [B,Y,X,P]
        if not self.first:  # the first layer's input has C channels, not P
            h_out = h_out + h
        return _gate(v_pre), h_out


def bits_per_dim(logits: jax.Array, x: jax.Array) -> jax.Array:
    """Mean over an image's values of -log2 p(x): logits [B, Y, X, C, L], levels x
    [B, Y, X, C] -> [B] float32."""
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [B, Y, X, C, L]
    target = jnp.round(x).astype(jnp.int32)[..., None]  # [B, Y, X, C, 1]
    nll = -jnp.take_along_axis(log_p, target, axis=-1)[..., 0]  # [B, Y, X, C] nats
    return jnp.mean(nll.reshape(nll.shape[0], -1), axis=-1) / math.log(2.0)  # [B]


class PixelCNN(nn.Module):
    config: PixelCNNConfig

    def _check(self, x: jax.Array) -> None:
        if tuple(x.shape[1:]) != tuple(self.config.data_shape):
            raise ValueError(f"x must be [B, {', '.join(map(str, self.config.data_shape))}] "
                             f"(config.data_shape), got shape {tuple(x.shape)}")

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Grey levels x [B, Y, X, C] (ints or floats in 0 .. L - 1) -> logits of each value
        given the values before it in raster order, [B, Y, X, C, L] float32."""
        cfg = self.config
        self._check(x)
        scaled = x.astype(jnp.float32) * (2.0 / (cfg.num_levels - 1)) - 1.0  # [B, Y, X, C]
        v = h = scaled.astype(cfg.dtype)
        for i in range(cfg.num_layers):
            v, h = GatedLayer(cfg.channels, cfg.first_kernel_size if i == 0 else cfg.kernel_size,
                              first=i == 0, dtype=cfg.dtype, name=f"layer_{i}")(v, h)
        out = nn.relu(nn.Dense(cfg.channels, dtype=cfg.dtype, name="head_hidden")(nn.relu(h)))
        logits = nn.Dense(cfg.data_shape[2] * cfg.num_levels, dtype=cfg.dtype,
                          name="head_logits")(out)  # [B, Y, X, C L]
        return logits.reshape(*x.shape, cfg.num_levels).astype(jnp.float32)  # [B,Y,X,C,L]

    def nll_bits_per_dim(self, x: jax.Array) -> jax.Array:
        """-log2 p(x) / (Y X C) of each image x [B, Y, X, C]: [B] float32."""
        return bits_per_dim(self(x), x)

    def sample(self, key: jax.Array, num: int, temperature: float = 1.0) -> jax.Array:
        """``num`` images drawn one pixel at a time in raster order: [num, Y, X, C] int32.

        Each of the Y X steps runs the whole network on the partial images and
        draws one pixel from its softmax(logits / temperature); later pixels are
        still 0 then, which the causal convolutions never read. Jit the caller.
        """
        if not isinstance(temperature, jax.Array) and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        height, width, channels = self.config.data_shape

        def draw(i, images):  # images [num, Y, X, C] int32
            y, x = i // width, i % width
            logits = self(images)  # [num, Y, X, C, L]
            pixel = jax.lax.dynamic_index_in_dim(logits, y, axis=1, keepdims=False)
            pixel = jax.lax.dynamic_index_in_dim(pixel, x, axis=1, keepdims=False)  # [num,C,L]
            value = jax.random.categorical(jax.random.fold_in(key, i),
                                           pixel / temperature)  # [num, C]
            return jax.lax.dynamic_update_slice(images, value[:, None, None].astype(jnp.int32),
                                                (0, y, x, 0))

        images = jnp.zeros((num, height, width, channels), jnp.int32)  # [num, Y, X, C]
        return jax.lax.fori_loop(0, height * width, draw, images)


PIXELCNN_PRESETS: dict[str, PixelCNNConfig] = {
    # Fashion-MNIST at the size 20 minutes of 2 CPU cores train well (the paper's models are
    # far wider): a 7-wide type-A layer, then five 3x3 gated layers; each pixel sees 9 rows
    # above and 9 pixels to its left.
    "pixelcnn_fashion_mnist": PixelCNNConfig(channels=32, num_layers=6),
    "pixelcnn_tiny": PixelCNNConfig(channels=8, num_layers=2, first_kernel_size=3),
}
