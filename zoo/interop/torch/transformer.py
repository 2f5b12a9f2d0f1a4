"""torch's Transformer layers, stacks and ``nn.Transformer`` <-> zoo.transformer params.

Glossary: D model width, F feed-forward width.

    torch layer                  zoo layer (zoo/transformer/layers.py)
    self_attn.*                  self_attention/*        (attention.py)
    multihead_attn.*             cross_attention/*       (decoder layers)
    linear1.weight [F, D], bias  ffn/wi [D, F], ffn/bi
    linear2.weight [D, F], bias  ffn/wo [F, D], ffn/bo
    norm1, norm2 (, norm3)       self_attention_norm, (cross_attention_norm,) ffn_norm
      .weight, .bias               /scale, /bias

    torch stack                  zoo stack (Encoder / Decoder of encoder_decoder.py)
    layers.{i}.*                 layers_{i}/*  (scanned 'layers' are unstacked first)
    norm.*                       final_norm/*  (TransformerConfig.final_norm=True)

    nn.Transformer               EncoderDecoder: encoder.* -> encoder/*, decoder.* -> decoder/*

The norms' placement (torch ``norm_first`` = zoo ``norm_placement='pre'``) and
epsilon live in the configs, not in the weights; ``config_fields`` reads them
off a torch module. A zoo decoder-only stack (DecoderLM) has the param names of
an encoder layer, so a causal ``nn.TransformerEncoder`` loads into it too.
"""

from __future__ import annotations

import re

from zoo.interop.torch.attention import attention_links
from zoo.interop.torch.links import (
    Link,
    Shapes,
    below,
    bias_form,
    check_covered,
    children,
    kernel_form,
    one,
    place,
    prefixed,
    require,
    zeros,
)

# zoo norm name -> torch norm name, per layer kind (cross-attention or not).
_NORMS = {
    False: {"self_attention_norm": "norm1", "ffn_norm": "norm2"},
    True: {"self_attention_norm": "norm1", "cross_attention_norm": "norm2", "ffn_norm": "norm3"},
}
_LAYER = re.compile(r"layers[._](\d+)")


def norm_links(zoo: Shapes, torch: Shapes, where: str) -> list[Link]:
    """A torch ``LayerNorm`` (weight, bias) <-> a zoo LayerNorm (scale, bias)."""
    require(zoo, ["scale"], where, "a norm")
    if "bias" not in zoo:  # zoo's LayerNorm always has a bias; its RMSNorm never does
        raise ValueError(f"the zoo norm at {place(where)} is an RMSNorm (no bias); torch's "
                         "Transformer layers use LayerNorm (TransformerConfig(norm='layernorm'))")
    links = [one("weight", "scale", bias_form(zoo["scale"]))]
    # torch's bias=False also drops the norms' biases: zero biases do the same in zoo.
    links.append(one("bias", "bias", bias_form(zoo["bias"])) if "bias" in torch
                 else zeros(("bias",), zoo, where))
    return links


def _ffn_links(zoo: Shapes) -> list[Link]:
    links = [one("linear1.weight", "wi", kernel_form(zoo["wi"])),
             one("linear2.weight", "wo", kernel_form(zoo["wo"]))]
    if "bi" in zoo:
        links += [one("linear1.bias", "bi", bias_form(zoo["bi"])),
                  one("linear2.bias", "bo", bias_form(zoo["bo"]))]
    return links


def layer_links(zoo: Shapes, torch: Shapes, where: str, *, cross: bool) -> list[Link]:
    """One TransformerEncoderLayer (``cross=False``) or DecoderLayer (``cross=True``)."""
    require(zoo, ["self_attention/query/kernel", "ffn/wi"], where, "a Transformer layer")
    if cross != ("cross_attention" in children(zoo)):
        torch_kind, zoo_has = (("TransformerDecoderLayer", "none") if cross
                               else ("TransformerEncoderLayer", "one"))
        raise ValueError(f"torch's nn.{torch_kind} {'has' if cross else 'has no'} "
                         f"encoder-decoder attention; the zoo layer at {place(where)} "
                         f"has {zoo_has}")
    attention = {"self_attention": "self_attn.", "cross_attention": "multihead_attn."}
    links = []
    for name, key in attention.items():
        if name in children(zoo):
            links += prefixed(attention_links(below(zoo, f"{name}/"), below(torch, key),
                                              f"{where}{name}/"), f"{name}/", key)
    links += prefixed(_ffn_links(below(zoo, "ffn/")), "ffn/", "")
    for name, key in _NORMS[cross].items():
        links += prefixed(norm_links(below(zoo, f"{name}/"), below(torch, f"{key}."),
                                     f"{where}{name}/"), f"{name}/", f"{key}.")
    check_covered(zoo, links, where, "a torch Transformer layer")
    return links


def _count(names, pattern: re.Pattern) -> int:
    return len({m.group(1) for name in names if (m := pattern.match(name))})


def stack_links(zoo: Shapes, torch: Shapes, where: str, *, cross: bool) -> list[Link]:
    """A TransformerEncoder / TransformerDecoder <-> a zoo Encoder / Decoder's params.

    Other params of the zoo stack (a learned position table) have no torch counterpart
    and are left alone.
    """
    zoo_layers, torch_layers = _count(children(zoo), _LAYER), _count(torch, _LAYER)
    if not zoo_layers:
        require(zoo, ["layers_0"], where, "a stack of Transformer layers")
    if zoo_layers != torch_layers:
        raise ValueError(f"the torch stack has {torch_layers} layers, the zoo stack at "
                         f"{place(where)} has {zoo_layers}")
    zoo_norm, torch_norm = "final_norm" in children(zoo), "norm.weight" in torch
    if zoo_norm != torch_norm:
        raise ValueError(
            f"the torch stack {'ends' if torch_norm else 'does not end'} with a LayerNorm "
            f"('norm'), the zoo stack at {place(where)} {'does' if zoo_norm else 'does not'}; "
            f"build the zoo model with TransformerConfig(final_norm={torch_norm})")
    links = []
    for i in range(zoo_layers):
        links += prefixed(layer_links(below(zoo, f"layers_{i}/"), below(torch, f"layers.{i}."),
                                      f"{where}layers_{i}/", cross=cross),
                          f"layers_{i}/", f"layers.{i}.")
    if zoo_norm:
        links += prefixed(norm_links(below(zoo, "final_norm/"), below(torch, "norm."),
                                     f"{where}final_norm/"), "final_norm/", "norm.")
    return links


def transformer_links(zoo: Shapes, torch: Shapes, where: str) -> list[Link]:
    """``nn.Transformer`` <-> an EncoderDecoder's params; embeddings and position tables,
    which torch's module does not have, are left alone."""
    missing = sorted({"encoder", "decoder"} - children(zoo))
    if missing:  # (the names are subtrees, never leaves, so require always raises here)
        require(zoo, missing, where, "an EncoderDecoder")
    links = []
    for name, cross in (("encoder", False), ("decoder", True)):
        links += prefixed(stack_links(below(zoo, f"{name}/"), below(torch, f"{name}."),
                                      f"{where}{name}/", cross=cross), f"{name}/", f"{name}.")
    return links
