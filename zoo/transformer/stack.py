"""A stack of identical layers, scanned or unrolled, optionally rematerialised.

Glossary: B batch, T length, D model width, L layers.

``scan_layers=True`` runs one layer module under ``nn.scan``: its params are
stacked along a leading 'layers' axis ([L, ...] under the name ``layers``), so
the traced program -- and the compile time -- does not grow with depth.
``False`` unrolls the stack into ``layers_0 .. layers_{L-1}``. The same
numbers come out of both for converted params: ``stack_layer_params`` and
``unstack_layer_params`` convert either way.

The KV cache of a scanned stack is stacked along axis 1, not 0, so every cache
leaf keeps the batch axis first ([B, L, ...]): the decoding loop in
``zoo.decoding`` reorders and tiles its state along axis 0 (beam search),
which then needs no knowledge of how a model lays out its layers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.transformer.config import REMAT_POLICIES, TransformerConfig
from zoo.transformer.layers import LayerContext

Array = jax.Array
_UNROLLED = re.compile(r"layers_(\d+)$")
_SCANNED = "layers"


def run_layers(layer_cls: type[nn.Module], num_layers: int, config: TransformerConfig,
               x: Array, ctx: LayerContext, **attributes: Any) -> Array:
    """Applies ``num_layers`` layers to x: [B, T, D] -> [B, T, D].

    Call from inside a compact method: the layers become children of the caller.
    ``attributes`` are passed to every layer (``deterministic``, ``decode``, ...).
    """
    policy = REMAT_POLICIES[config.remat]
    if config.remat != "none":
        # Under scan there is no common subexpression across iterations to protect,
        # and prevent_cse's optimisation barriers would only slow the loop down.
        layer_cls = nn.remat(layer_cls, policy=policy, prevent_cse=not config.scan_layers)
    if config.scan_layers:
        scanned = nn.scan(
            layer_cls,
            variable_axes={"params": 0, "cache": 1, "intermediates": 0},
            split_rngs={"params": True, "dropout": True},
            in_axes=nn.broadcast,
            length=num_layers,
            metadata_params={nn.PARTITION_NAME: "layers"},
        )
        x, _ = scanned(config=config, name=_SCANNED, **attributes)(x, ctx)
        return x
    for i in range(num_layers):
        x, _ = layer_cls(config=config, name=f"layers_{i}", **attributes)(x, ctx)
    return x


def _stack_leaves(*leaves: Any) -> Any:
    if isinstance(leaves[0], nn.Partitioned):
        value = jnp.stack([leaf.value for leaf in leaves])  # [L, ...]
        return leaves[0].replace(value=value, names=("layers", *leaves[0].names))
    return jnp.stack(leaves)  # [L, ...]


def _unstack_leaf(leaf: Any, i: int) -> Any:
    if isinstance(leaf, nn.Partitioned):
        return leaf.replace(value=leaf.value[i], names=leaf.names[1:])
    return leaf[i]


def _is_box(x: Any) -> bool:
    return isinstance(x, nn.Partitioned)


def stack_layer_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Unrolled params -> scanned params: ``layers_0 .. layers_{L-1}`` become ``layers``.

    Works on any subtree (a model's params or a whole variables dict), boxed
    (``nn.Partitioned``, which gain the 'layers' axis name) or plain arrays.
    """
    out: dict[str, Any] = {}
    indexed: dict[int, Any] = {}
    for key, value in params.items():
        match = _UNROLLED.match(key)
        if match:
            indexed[int(match.group(1))] = value
        elif isinstance(value, Mapping):
            out[key] = stack_layer_params(value)
        else:
            out[key] = value
    if indexed:
        if sorted(indexed) != list(range(len(indexed))):
            raise ValueError(f"layer indices must be 0..L-1, got {sorted(indexed)}")
        layers = [indexed[i] for i in range(len(indexed))]
        out[_SCANNED] = jax.tree.map(_stack_leaves, *layers, is_leaf=_is_box)
    return out


def unstack_layer_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Scanned params -> unrolled params: ``layers`` [L, ...] becomes ``layers_0 ..``."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == _SCANNED:
            leaves = jax.tree.leaves(value, is_leaf=_is_box)
            first = leaves[0].value if _is_box(leaves[0]) else leaves[0]
            for i in range(first.shape[0]):
                out[f"layers_{i}"] = jax.tree.map(lambda leaf, i=i: _unstack_leaf(leaf, i),
                                                  value, is_leaf=_is_box)
        elif isinstance(value, Mapping):
            out[key] = unstack_layer_params(value)
        else:
            out[key] = value
    return out
