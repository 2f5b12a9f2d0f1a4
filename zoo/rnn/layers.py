"""Dense layers of the seq2seq models, with logical axis names.

Glossary: B batch, T time, E input width, R hidden (state) width, V vocabulary.

    dense(R)            kernel [E, R] ('embed', 'mlp'), bias [R] ('mlp',)
    OutputProjection    kernel [R, V] ('mlp', 'vocab'), bias [V] ('vocab',)

`OutputProjection` returns float32 logits whatever the compute dtype: the
matmul accumulates in float32 (`preferred_element_type`) because the logits
feed a softmax and a loss. Its bias departs from Luong et al. (2015) eq. 6
(README, "Where zoo departs from the papers").
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def dense(features: int, *, dtype, param_dtype, use_bias: bool = True,
          name: str | None = None) -> nn.Dense:
    """nn.Dense to a hidden width, parameters named ('embed', 'mlp') / ('mlp',)."""
    return nn.Dense(
        features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                 ("embed", "mlp")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
        name=name,
    )


class OutputProjection(nn.Module):
    """Vocabulary logits W_y x + b, float32."""

    vocab_size: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        # x [B, T, R] -> logits [B, T, V] float32
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("mlp", "vocab")),
            (x.shape[-1], self.vocab_size),
            self.param_dtype,
        )  # [R, V]
        bias = self.param(
            "bias",
            nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
            (self.vocab_size,),
            self.param_dtype,
        )  # [V]
        x, kernel = nn.dtypes.promote_dtype(x, kernel, dtype=self.dtype)
        logits = jnp.einsum("BTR,RV->BTV", x, kernel,
                            preferred_element_type=jnp.float32)  # [B, T, V]
        logits = logits + bias.astype(jnp.float32).reshape(1, 1, -1)  # [B, T, V]
        return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))
