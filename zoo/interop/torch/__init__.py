"""Weights between torch modules and zoo params, both ways, exactly.

    from zoo.interop.torch import from_torch, to_torch, config_fields

    params = from_torch(torch_module, like=zoo_params)       # or its state_dict(), or a path
    torch_module.load_state_dict(to_torch(params, like=torch_module), strict=True)

Supported (``SUPPORTED``), with their zoo counterparts:

    nn.MultiheadAttention               zoo.attention.MultiHeadAttention
    nn.TransformerEncoderLayer / ...DecoderLayer
                                        zoo.transformer.layers.EncoderLayer / DecoderLayer
    nn.TransformerEncoder / ...Decoder  the encoder / decoder of EncoderDecoder (its
                                        'encoder' / 'decoder' params, at='encoder')
    nn.Transformer                      zoo.transformer.EncoderDecoder (embeddings kept)
    nn.LSTM / nn.GRU / nn.RNN           zoo.rnn.RNNStack (stacked, bidirectional; the
                                        'stack' of zoo.rnn.Encoder, at='encoder/stack'
                                        in a Seq2Seq)

Weights carry no hyperparameters: build the zoo model from ``config_fields(module)``
(norm placement and epsilon, activation, final norm, sizes) so that it computes
what the torch module computes; ``batch_first`` and dropout do not matter.
Everything torch-specific is imported here only: ``import zoo`` never imports torch.
"""

from zoo.interop.torch.api import from_torch, to_torch
from zoo.interop.torch.kinds import SUPPORTED, config_fields

__all__ = ["SUPPORTED", "config_fields", "from_torch", "to_torch"]
