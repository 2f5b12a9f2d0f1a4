"""The Transformer: encoder-decoder and decoder-only LM, scanned or unrolled layers.

Presets (``zoo.registry``): transformer_base, transformer_big, transformer_small,
transformer_tiny (``EncoderDecoder``); lm_small, lm_tiny (``DecoderLM``).
"""

from zoo import registry
from zoo.transformer.config import REMAT_POLICIES, TransformerConfig
from zoo.transformer.encoder_decoder import (
    Decoder,
    Encoder,
    EncoderDecoder,
    EncoderMemory,
    cross_attention_weights,
)
from zoo.transformer.layers import DecoderLayer, EncoderLayer, LayerContext
from zoo.transformer.lm import DecoderLM, LMOutput
from zoo.transformer.presets import PRESETS
from zoo.transformer.stack import stack_layer_params, unstack_layer_params

for _name, _config in PRESETS.items():
    registry.register(_name, _config,
                      DecoderLM if _config.num_encoder_layers == 0 else EncoderDecoder)

__all__ = [
    "PRESETS",
    "REMAT_POLICIES",
    "Decoder",
    "DecoderLM",
    "DecoderLayer",
    "Encoder",
    "EncoderDecoder",
    "EncoderLayer",
    "LMOutput",
    "LayerContext",
    "EncoderMemory",
    "TransformerConfig",
    "cross_attention_weights",
    "stack_layer_params",
    "unstack_layer_params",
]
