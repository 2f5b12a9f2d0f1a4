"""Bridges: the decoder's initial state from the encoder's final state.

Glossary: B batch, M encoder width (memory), R decoder width, L layers.

    copy   s_0 = h_final, layer by layer (Sutskever et al., 2014); needs M == R
    dense  s_0 = tanh(W h_final), one W per layer and per carry component
           (Bahdanau et al., 2015, appendix A.2.2: s_0 = tanh(W_s h_1), here on the
           concatenated forward/backward state of each layer)

Departure from the paper (README, "Where zoo departs from the papers"): the
paper's W_s sees only the backward state h<-_1; ours sees both directions.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.rnn.cells import Carry
from zoo.rnn.layers import dense


class CopyBridge(nn.Module):
    """The encoder's final carries, unchanged."""

    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def __call__(self, final: tuple[Carry, ...]) -> tuple[Carry, ...]:
        return final  # leaves [B, M] with M == R (checked by the config)


class DenseBridge(nn.Module):
    """tanh(W h) for every leaf of every layer's final carry: [B, M] -> [B, R]."""

    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, final: tuple[Carry, ...]) -> tuple[Carry, ...]:
        out = []
        for layer, carry in enumerate(final):
            leaves, treedef = jax.tree.flatten(carry)  # (c, h) for an LSTM, h otherwise
            mapped = [
                jnp.tanh(dense(self.features, dtype=self.dtype, param_dtype=self.param_dtype,
                               name=f"layer{layer}_{k}")(leaf)).astype(self.dtype)  # [B, R]
                for k, leaf in enumerate(leaves)
            ]
            out.append(jax.tree.unflatten(treedef, mapped))
        return tuple(out)


BRIDGES: dict[str, type[nn.Module]] = {"copy": CopyBridge, "dense": DenseBridge}
