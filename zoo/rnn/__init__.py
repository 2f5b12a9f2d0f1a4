"""RNN encoder-decoders: plain (Sutskever), Luong and Bahdanau attention, on flax cells.

Importing this package registers the `seq2seq_*` presets in `zoo.registry`.
"""

from zoo.rnn.bahdanau import BahdanauDecoder, BahdanauStep
from zoo.rnn.bridge import BRIDGES, CopyBridge, DenseBridge
from zoo.rnn.cells import CELLS, CellStack, RNNStack, hidden_of, make_cell, zero_carry
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.decoder import DecoderCarry, DecoderOutput, PlainDecoder
from zoo.rnn.encoder import Encoder, EncoderOutput
from zoo.rnn.luong import LuongAttention, LuongDecoder, LuongFeedingDecoder, LuongFeedingStep
from zoo.rnn.presets import PAPER_CONFIGS, PRESETS
from zoo.rnn.seq2seq import DECODERS, Seq2Seq

__all__ = [
    "BRIDGES",
    "BahdanauDecoder",
    "BahdanauStep",
    "CELLS",
    "CellStack",
    "CopyBridge",
    "DECODERS",
    "DecoderCarry",
    "DecoderOutput",
    "DenseBridge",
    "Encoder",
    "EncoderOutput",
    "LuongAttention",
    "LuongDecoder",
    "LuongFeedingDecoder",
    "LuongFeedingStep",
    "PAPER_CONFIGS",
    "PRESETS",
    "PlainDecoder",
    "RNNStack",
    "Seq2Seq",
    "Seq2SeqConfig",
    "hidden_of",
    "make_cell",
    "zero_carry",
]
