"""The position-wise feed-forward network of the Transformer, plain and gated.

Glossary: B batch, T length, D model width, F feed-forward width (d_ff).

Plain ("Attention Is All You Need" §3.3):  FFN(x) = act(x W1 + b1) W2 + b2.
Gated (Shazeer 2020, "GLU Variants Improve Transformer"):
    FFN(x) = (act(x W1 + b1) * (x V + c)) W2 + b2,
with act = swish for SwiGLU and GELU for GEGLU. The gated variants add a second
input projection V; to keep the parameter count of a plain FFN, the paper
shrinks F to 2/3 of it -- that choice is left to the config.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any
Initializer = nn.initializers.Initializer


class Activation(NamedTuple):
    fn: Callable[[Array], Array]
    gated: bool  # gated activations multiply by a second (linear) projection


def _gelu(x: Array) -> Array:
    # The exact (erf) form of Hendrycks & Gimpel, which is also torch's default,
    # so ported checkpoints reproduce their outputs.
    return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x: Array) -> Array:
    # The tanh approximation GPT-2 was trained with (Hugging Face's 'gelu_new').
    return jax.nn.gelu(x, approximate=True)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(jax.nn.relu, gated=False),
    "gelu": Activation(_gelu, gated=False),
    "gelu_tanh": Activation(_gelu_tanh, gated=False),
    "silu": Activation(jax.nn.silu, gated=False),
    "swiglu": Activation(jax.nn.silu, gated=True),
    "geglu": Activation(_gelu, gated=True),
}


class FeedForward(nn.Module):
    """Position-wise feed-forward block: [B, T, D] -> [B, T, D].

    Attributes:
      d_ff: hidden width F.
      activation: a name in ``ACTIVATIONS``.
      dropout_rate: dropout on the hidden activations, between the two
        projections (as in tensor2tensor); needs a 'dropout' rng when active.
      use_bias: add biases b1 (and c) and b2.
      dtype: compute dtype.
      param_dtype: parameter dtype.
      kernel_init: initializer of W1, V, W2; Xavier-uniform as in the flax
        lm1b Transformer.
      bias_init: initializer of the biases.

    Parameters: ``wi`` [D, F] = W1 (through the activation), ``wi_lin``
    [D, F] = V (gated variants only), ``wo`` [F, D] = W2, and biases ``bi``,
    ``bi_lin``, ``bo`` when ``use_bias``.
    """

    d_ff: int
    activation: str = "relu"
    dropout_rate: float = 0.0
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    kernel_init: Initializer = nn.initializers.xavier_uniform()
    bias_init: Initializer = nn.initializers.zeros_init()

    def __post_init__(self):
        if self.d_ff <= 0:
            raise ValueError(f"d_ff must be a positive width, got {self.d_ff}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        super().__post_init__()

    def _kernel(self, name: str, shape: tuple[int, int], names: tuple[str, str]) -> Array:
        """A [In, Out] kernel param, cast to the compute dtype."""
        init = nn.with_logical_partitioning(self.kernel_init, names)
        return jnp.asarray(self.param(name, init, shape, self.param_dtype), self.dtype)

    def _add_bias(self, y: Array, name: str, axis_name: str) -> Array:
        """y: [B, T, F or D] plus a learned [F or D] bias when ``use_bias``; else unchanged."""
        if not self.use_bias:
            return y
        init = nn.with_logical_partitioning(self.bias_init, (axis_name,))
        bias = self.param(name, init, (y.shape[-1],), self.param_dtype)  # [F or D]
        return y + jnp.asarray(bias, self.dtype)[None, None, :]  # [B, T, F or D]

    @nn.compact
    def __call__(self, x: Array, *, deterministic: bool = True) -> Array:
        """x: [B, T, D] -> [B, T, D] in ``dtype``."""
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D [B, T, D], got shape {x.shape}")
        d = x.shape[-1]
        act = ACTIVATIONS[self.activation]
        x = jnp.asarray(x, self.dtype)  # [B, T, D]
        f = self.d_ff
        h = jnp.einsum("BTD,DF->BTF", x, self._kernel("wi", (d, f), ("embed", "mlp")))
        h = act.fn(self._add_bias(h, "bi", "mlp"))  # [B, T, F]
        if act.gated:
            g = jnp.einsum("BTD,DF->BTF", x, self._kernel("wi_lin", (d, f), ("embed", "mlp")))
            h = h * self._add_bias(g, "bi_lin", "mlp")  # [B, T, F]
        h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
        if self.dropout_rate > 0.0:
            h = nn.Dropout(rate=self.dropout_rate)(h, deterministic=deterministic)
        y = jnp.einsum("BTF,FD->BTD", h, self._kernel("wo", (f, d), ("mlp", "embed")))
        y = self._add_bias(y, "bo", "embed")  # [B, T, D]
        return nn.with_logical_constraint(y, ("batch", "length", "embed"))
