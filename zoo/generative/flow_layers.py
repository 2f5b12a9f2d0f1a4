"""The invertible layers of a normalizing flow (RealNVP, Dinh et al. 2017; Glow, Kingma &
Dhariwal 2018), each with its exact log-determinant.

Every layer is a linen module with two methods over images [B, Y, X, C]:

    y, logdet = layer.apply(params, x, method=layer.forward)   # y [B, ...], logdet [B]
    x = layer.apply(params, y, method=layer.inverse)

``logdet`` is log |det dy/dx| of one example's flattened map, so a flow's
log-density is the prior's log-density of its output plus the sum of its
layers' logdets. Parameters are made in ``setup`` so both directions share
them. Parameterless layers (the logit preprocessing, the squeeze) are modules
too, so a flow is one list of layers.

Glossary: B batch, Y height, X width, C channels, F hidden channels of a
coupling's network.

Initialisation: every layer starts as (nearly) the identity -- the couplings'
last convolutions are zero, ActNorm's shift and log-scale are zero, the 1x1
convolution is a random rotation -- so a fresh flow is the logit
preprocessing, and training starts from a well-conditioned map.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


def _sum_per_example(x: jax.Array) -> jax.Array:
    """[B, ...] -> [B]: the sum over everything but the batch axis."""
    return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


class LogitTransform(nn.Module):
    """y = logit(alpha + (1 - 2 alpha) x) for x in [0, 1]: the unbounded space the couplings
    work in. alpha keeps the logit finite at x = 0 and x = 1 (RealNVP used 0.05)."""

    alpha: float = 0.05

    def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B, ...] -> [B, ...], [B]
        p = self.alpha + (1 - 2 * self.alpha) * x  # [B, ...] in [alpha, 1 - alpha]
        y = jnp.log(p) - jnp.log1p(-p)
        # dy/dx = (1 - 2 alpha) / (p (1 - p)), one factor per dimension (the map is elementwise)
        log_dy = jnp.log(1 - 2 * self.alpha) - jnp.log(p) - jnp.log1p(-p)  # [B, ...]
        return y, _sum_per_example(log_dy)

    def inverse(self, y: jax.Array) -> jax.Array:  # [B, ...] -> [B, ...]
        return (jax.nn.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)


class Squeeze(nn.Module):
    """Space to depth: each 2x2 patch becomes 4C channels, [B, Y, X, C] -> [B, Y/2, X/2, 4C]
    (a permutation: logdet 0). The channel order is (row in patch, column in patch, c)."""

    def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, y, x_, c = x.shape
        if y % 2 or x_ % 2:
            raise ValueError(f"Squeeze needs even Y and X, got input shape {x.shape}")
        h = x.reshape(b, y // 2, 2, x_ // 2, 2, c)  # [B, Y/2, 2, X/2, 2, C]
        h = h.transpose(0, 1, 3, 2, 4, 5)  # [B, Y/2, X/2, 2, 2, C]
        return h.reshape(b, y // 2, x_ // 2, 4 * c), jnp.zeros((b,), x.dtype)

    def inverse(self, y: jax.Array) -> jax.Array:  # [B, Y/2, X/2, 4C] -> [B, Y, X, C]
        b, h, w, c4 = y.shape
        x = y.reshape(b, h, w, 2, 2, c4 // 4)  # [B, Y/2, X/2, 2, 2, C]
        x = x.transpose(0, 1, 3, 2, 4, 5)  # [B, Y/2, 2, X/2, 2, C]
        return x.reshape(b, 2 * h, 2 * w, c4 // 4)


class ActNorm(nn.Module):
    """y = (x + shift) exp(log_scale), one shift and log-scale per channel (Glow's
    activation normalisation, here without the data-dependent initialisation: both start
    at zero). logdet = Y X sum(log_scale)."""

    channels: int

    def setup(self):
        self.shift = self.param("shift", nn.initializers.zeros, (self.channels,))  # [C]
        self.log_scale = self.param("log_scale", nn.initializers.zeros, (self.channels,))  # [C]

    def _per_channel(self, dtype) -> tuple[jax.Array, jax.Array]:
        """(shift, log_scale) as [1, 1, 1, C], to broadcast over [B, Y, X, C]."""
        return (self.shift.astype(dtype).reshape(1, 1, 1, -1),
                self.log_scale.astype(dtype).reshape(1, 1, 1, -1))

    def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B, Y, X, C]
        shift, log_scale = self._per_channel(x.dtype)
        y = (x + shift) * jnp.exp(log_scale)
        logdet = x.shape[1] * x.shape[2] * jnp.sum(self.log_scale.astype(x.dtype))  # []
        return y, jnp.broadcast_to(logdet, (x.shape[0],))

    def inverse(self, y: jax.Array) -> jax.Array:  # [B, Y, X, C]
        shift, log_scale = self._per_channel(y.dtype)
        return y * jnp.exp(-log_scale) - shift


class InvertibleConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution: y = x W at every pixel, W [C, C] a learned
    (not merely permuted) mixing of the channels; logdet = Y X log|det W|.

    W is a plain matrix (no LU factors): with C <= 16 here its slogdet and inverse cost
    nothing beside the couplings. It starts as a random rotation (|det| = 1)."""

    channels: int

    def setup(self):
        self.kernel = self.param("kernel", nn.initializers.orthogonal(),
                                 (self.channels, self.channels))  # [C, C]

    def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B, Y, X, C]
        w = self.kernel.astype(x.dtype)
        y = jnp.einsum("BYXC,CD->BYXD", x, w)
        logdet = x.shape[1] * x.shape[2] * jnp.linalg.slogdet(w)[1]  # []
        return y, jnp.broadcast_to(logdet, (x.shape[0],))

    def inverse(self, y: jax.Array) -> jax.Array:  # [B, Y, X, C]
        return jnp.einsum("BYXD,DC->BYXC", y, jnp.linalg.inv(self.kernel.astype(y.dtype)))


class CouplingNet(nn.Module):
    """The s/t network of a coupling: a 3x3 convolution to F channels, residual blocks of
    two 3x3 convolutions, and a zero-initialised 3x3 convolution to 2 ``out_channels``
    (log-scale and shift), so the coupling starts as the identity."""

    out_channels: int
    hidden_channels: int
    num_blocks: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B, Y, X, C_in]
        conv = lambda c, **kw: nn.Conv(c, (3, 3), dtype=self.dtype, **kw)  # noqa: E731
        h = conv(self.hidden_channels)(h.astype(self.dtype))  # [B, Y, X, F]
        for _ in range(self.num_blocks):
            r = conv(self.hidden_channels)(nn.relu(h))  # [B, Y, X, F]
            h = h + conv(self.hidden_channels)(nn.relu(r))
        out = conv(2 * self.out_channels, kernel_init=nn.initializers.zeros)(nn.relu(h))
        raw_log_scale, shift = jnp.split(out, 2, axis=-1)  # [B, Y, X, C_out] each
        return raw_log_scale, shift


def checkerboard(height: int, width: int, parity: int) -> jax.Array:
    """[1, Y, X, 1] float: 1 where (y + x + parity) is even -- the pixels a checkerboard
    coupling keeps and conditions on -- and 0 on the pixels it transforms."""
    yy, xx = jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij")  # [Y, X] each
    return ((yy + xx + parity) % 2 == 0).astype(jnp.float32)[None, :, :, None]


class AffineCoupling(nn.Module):
    """An affine coupling: the kept part of x passes through; the rest becomes
    x exp(s) + t, with s and t computed from the kept part, so the Jacobian is triangular
    and logdet = sum(s) over the transformed dimensions.

    ``mask``: 'checkerboard' (keep the pixels of one colour, transform the other) or
    'channel' (keep one half of the channels). ``parity`` (0 or 1) swaps the two parts,
    so consecutive couplings with alternating parity transform everything.
    s = scale tanh(raw): bounded at any step of training (an unbounded exp(s) is what
    makes flows blow up), with a learned per-channel ``scale`` (RealNVP's choice)."""

    channels: int
    mask: str
    parity: int
    hidden_channels: int
    num_blocks: int
    dtype: Dtype = jnp.float32

    def setup(self):
        if self.mask not in ("checkerboard", "channel"):
            raise ValueError(f"mask must be 'checkerboard' or 'channel', got {self.mask!r}")
        if self.parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1, got {self.parity!r}")
        if self.mask == "channel" and self.channels % 2:
            raise ValueError(f"a 'channel' coupling needs an even number of channels, got "
                             f"channels={self.channels}")
        out = self.channels if self.mask == "checkerboard" else self.channels // 2
        self.net = CouplingNet(out, self.hidden_channels, self.num_blocks, self.dtype)
        self.scale = self.param("scale", nn.initializers.ones, (out,))  # [C_out]

    def _log_scale_shift(self, kept: jax.Array, dtype) -> tuple[jax.Array, jax.Array]:
        raw, shift = self.net(kept)  # [B, Y, X, C_out] each
        scale = self.scale.astype(dtype).reshape(1, 1, 1, -1)  # [1, 1, 1, C_out]
        log_scale = scale * jnp.tanh(raw.astype(dtype))
        return log_scale, shift.astype(dtype)

    def _split(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """'channel': (kept, transformed) halves [B, Y, X, C/2] each."""
        a, b = jnp.split(x, 2, axis=-1)
        return (a, b) if self.parity == 0 else (b, a)

    def _join(self, kept: jax.Array, changed: jax.Array) -> jax.Array:
        return jnp.concatenate((kept, changed) if self.parity == 0 else (changed, kept), axis=-1)

    def _board_input(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(mask [1, Y, X, 1], the network's input [B, Y, X, C + 1]: the kept pixels and the
        mask itself, so the network knows which zeros are masked-out pixels)."""
        b = checkerboard(x.shape[1], x.shape[2], self.parity).astype(x.dtype)
        mask_channel = jnp.broadcast_to(b, (*x.shape[:-1], 1))  # [B, Y, X, 1]
        return b, jnp.concatenate([x * b, mask_channel], axis=-1)

    def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:  # [B, Y, X, C]
        if self.mask == "channel":
            kept, changed = self._split(x)  # [B, Y, X, C/2] each
            log_scale, shift = self._log_scale_shift(kept, x.dtype)
            y = self._join(kept, changed * jnp.exp(log_scale) + shift)
            return y, _sum_per_example(log_scale)
        b, inputs = self._board_input(x)
        log_scale, shift = self._log_scale_shift(inputs, x.dtype)  # [B, Y, X, C] each
        log_scale, shift = log_scale * (1 - b), shift * (1 - b)  # 0 on the kept pixels
        return x * jnp.exp(log_scale) + shift, _sum_per_example(log_scale)

    def inverse(self, y: jax.Array) -> jax.Array:  # [B, Y, X, C]
        if self.mask == "channel":
            kept, changed = self._split(y)
            log_scale, shift = self._log_scale_shift(kept, y.dtype)
            return self._join(kept, (changed - shift) * jnp.exp(-log_scale))
        b, inputs = self._board_input(y)  # the kept pixels of y are those of x
        log_scale, shift = self._log_scale_shift(inputs, y.dtype)
        log_scale, shift = log_scale * (1 - b), shift * (1 - b)
        return (y - shift) * jnp.exp(-log_scale)
