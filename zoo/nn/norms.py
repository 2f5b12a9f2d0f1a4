"""Normalisation layers by name: flax's LayerNorm and RMSNorm with logical axis names.

Glossary: D model width.

The math is flax's; this file only attaches the logical name 'embed' to the
[D] scale (and bias) so they shard like the activations they multiply, and
lets a config choose the kind by name: 'layernorm' (Ba et al. 2016, the
original Transformer) or 'rmsnorm' (Zhang & Sennrich 2019, T5 / LLaMA).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Dtype = Any

_SCALE_INIT = nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",))
_BIAS_INIT = nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",))


def _layernorm(**kwargs: Any) -> nn.Module:
    return nn.LayerNorm(scale_init=_SCALE_INIT, bias_init=_BIAS_INIT, **kwargs)


def _rmsnorm(**kwargs: Any) -> nn.Module:
    return nn.RMSNorm(scale_init=_SCALE_INIT, **kwargs)


NORMS: dict[str, Callable[..., nn.Module]] = {
    "layernorm": _layernorm,
    "rmsnorm": _rmsnorm,
}


def make_norm(
    kind: str,
    *,
    dtype: Dtype,
    param_dtype: Dtype = jnp.float32,
    epsilon: float = 1e-6,
    name: str | None = None,
) -> nn.Module:
    """A norm module over the last axis: [..., D] -> [..., D] in ``dtype``.

    Statistics are reduced in float32 even for bfloat16 inputs (flax's
    ``force_float32_reductions`` default). Call inside a parent's ``setup`` or
    ``nn.compact`` method, like any submodule.

    Args:
      kind: a name in ``NORMS``: 'layernorm' or 'rmsnorm'.
      dtype: compute / output dtype.
      param_dtype: dtype of the scale (and bias).
      epsilon: added to the variance; 1e-6 as in tensor2tensor and T5.
      name: submodule name; None lets flax number it.
    """
    if kind not in NORMS:
        raise ValueError(f"kind must be one of {sorted(NORMS)}, got {kind!r}")
    return NORMS[kind](dtype=dtype, param_dtype=param_dtype, epsilon=epsilon, name=name)
