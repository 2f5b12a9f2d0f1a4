"""Which torch module a source is, whether zoo can represent it, and the zoo config
fields that reproduce it.

A module's kind is its class (or the supported class it subclasses); a bare
state_dict's kind is read from its keys. Hyperparameters that change the
function but not the weights -- norm placement and epsilon, the activation,
RNN nonlinearities -- exist only on a module, so only a module can be checked
for them (``config_fields``); a state_dict is trusted to match the zoo config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn
from torch.nn import functional

from zoo.interop.torch.attention import attention_links
from zoo.interop.torch.links import Link, Shapes
from zoo.interop.torch.rnn import cell_of_state_dict, rnn_links
from zoo.interop.torch.transformer import layer_links, stack_links, transformer_links

Converter = Callable[[Shapes, Shapes, str], list[Link]]

# torch class name -> the converter of its state_dict to and from zoo params.
CONVERTERS: dict[str, Converter] = {
    "MultiheadAttention": attention_links,
    "TransformerEncoderLayer": partial(layer_links, cross=False),
    "TransformerDecoderLayer": partial(layer_links, cross=True),
    "TransformerEncoder": partial(stack_links, cross=False),
    "TransformerDecoder": partial(stack_links, cross=True),
    "Transformer": transformer_links,
    "LSTM": partial(rnn_links, cell="lstm"),
    "GRU": partial(rnn_links, cell="gru"),
    "RNN": partial(rnn_links, cell="rnn"),
}
SUPPORTED = ", ".join(f"nn.{name}" for name in CONVERTERS)
_CLASSES = {getattr(nn, name): name for name in CONVERTERS}

# A key only a state_dict of that kind has; most specific first (a Transformer's keys
# contain an encoder stack's keys, which contain a layer's, which contain attention's).
_KEY_KINDS = (
    ("encoder.layers.0.self_attn.out_proj.weight", "Transformer"),
    ("layers.0.multihead_attn.out_proj.weight", "TransformerDecoder"),
    ("layers.0.self_attn.out_proj.weight", "TransformerEncoder"),
    ("multihead_attn.out_proj.weight", "TransformerDecoderLayer"),
    ("self_attn.out_proj.weight", "TransformerEncoderLayer"),
    ("out_proj.weight", "MultiheadAttention"),
)
_RNN_KINDS = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


def kind_of_module(module: nn.Module) -> str:
    for cls in type(module).__mro__:
        if cls in _CLASSES:
            return _CLASSES[cls]
    raise TypeError(f"torch module type {type(module).__name__} is not supported; "
                    f"supported: {SUPPORTED}")


def kind_of_keys(shapes: Shapes) -> str:
    for key, kind in _KEY_KINDS:
        if key in shapes:
            return kind
    if "weight_ih_l0" in shapes and "weight_hh_l0" in shapes:
        return _RNN_KINDS[cell_of_state_dict(shapes)]
    sample = sorted(shapes)[:6]
    raise ValueError(f"cannot tell which torch module a state_dict with keys {sample} "
                     f"({len(shapes)} in all) comes from; supported: {SUPPORTED}")


# ---------------------------------------------------------------- hyperparameters


def _unsupported(module: nn.Module, what: str) -> ValueError:
    return ValueError(f"unsupported torch nn.{type(module).__name__}: {what}")


_ACTIVATION_FUNCTIONS = {functional.relu: "relu", functional.gelu: "gelu",
                         functional.silu: "silu"}


def _activation(layer: nn.Module) -> str:
    fn = layer.activation
    if fn in _ACTIVATION_FUNCTIONS:
        return _ACTIVATION_FUNCTIONS[fn]
    if isinstance(fn, nn.GELU):
        return {"none": "gelu", "tanh": "gelu_tanh"}[fn.approximate]
    modules = {nn.ReLU: "relu", nn.SiLU: "silu"}
    if type(fn) in modules:
        return modules[type(fn)]
    raise _unsupported(layer, f"activation {fn!r}; zoo's FFN takes relu, gelu (exact or "
                              "tanh) or silu")


def _attention_fields(m: nn.MultiheadAttention) -> dict[str, Any]:
    if m.bias_k is not None:
        raise _unsupported(m, "add_bias_kv=True (a learned extra key and value)")
    if m.add_zero_attn:
        raise _unsupported(m, "add_zero_attn=True (an extra zero key and value)")
    if m.kdim != m.vdim:
        raise _unsupported(m, f"kdim={m.kdim} != vdim={m.vdim}; zoo reads keys and values "
                              "from one input")
    return {"num_heads": m.num_heads, "use_bias": m.in_proj_bias is not None}


def _layer_fields(m: nn.Module) -> dict[str, Any]:
    return {"d_model": m.linear1.in_features, "d_ff": m.linear1.out_features,
            "num_heads": _attention_fields(m.self_attn)["num_heads"],
            "norm_placement": "pre" if m.norm_first else "post",
            "norm_epsilon": m.norm1.eps, "activation": _activation(m),
            "use_bias": m.linear1.bias is not None}


def _stack_fields(m: nn.Module, count: str) -> dict[str, Any]:
    fields = _layer_fields(m.layers[0])
    if m.norm is not None and getattr(m.norm, "eps", None) != fields["norm_epsilon"]:
        raise _unsupported(m, f"final norm {m.norm!r} differs from the layers' LayerNorm "
                              f"(eps={fields['norm_epsilon']}); zoo has one norm kind")
    return {**fields, count: len(m.layers), "final_norm": m.norm is not None}


def _transformer_fields(m: nn.Transformer) -> dict[str, Any]:
    encoder = _stack_fields(m.encoder, "num_encoder_layers")
    decoder = _stack_fields(m.decoder, "num_decoder_layers")
    differ = sorted(k for k in encoder.keys() & decoder.keys() if encoder[k] != decoder[k])
    if differ:
        raise _unsupported(m, f"its encoder and decoder differ in {differ}; one "
                              "TransformerConfig sets both")
    return {**encoder, **decoder}


def _rnn_fields(m: nn.RNNBase) -> dict[str, Any]:
    if m.proj_size:
        raise _unsupported(m, f"proj_size={m.proj_size} (a projected LSTM state)")
    if m.mode == "RNN_RELU":
        raise _unsupported(m, "nonlinearity='relu'; zoo's RNN cell (flax SimpleCell) is tanh")
    return {"cell": m.mode.lower().replace("rnn_tanh", "rnn"), "num_layers": m.num_layers,
            "features": m.hidden_size, "bidirectional": m.bidirectional}


_FIELDS: dict[str, Callable[[nn.Module], dict[str, Any]]] = {
    "MultiheadAttention": _attention_fields,
    "TransformerEncoderLayer": _layer_fields,
    "TransformerDecoderLayer": _layer_fields,
    "TransformerEncoder": partial(_stack_fields, count="num_encoder_layers"),
    "TransformerDecoder": partial(_stack_fields, count="num_decoder_layers"),
    "Transformer": _transformer_fields,
    "LSTM": _rnn_fields,
    "GRU": _rnn_fields,
    "RNN": _rnn_fields,
}


def config_fields(module: nn.Module) -> dict[str, Any]:
    """The zoo fields that make a zoo module compute what ``module`` computes.

    For the Transformer kinds: ``TransformerConfig`` fields (d_model, num_heads, d_ff,
    norm_placement, norm_epsilon, activation, use_bias, and for stacks the layer count and
    final_norm). For MultiheadAttention: ``MultiHeadAttention`` attributes (num_heads,
    use_bias). For LSTM / GRU / RNN: ``RNNStack`` attributes (cell, num_layers, features,
    bidirectional). Dropout is left out: it does not change an evaluation.

    Raises:
      TypeError: the module's type is not supported.
      ValueError: the module uses something zoo cannot represent (naming it).
    """
    return _FIELDS[kind_of_module(module)](module)


def state_shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(tensor.shape) for key, tensor in state.items()}
