"""RNN encoder-decoders: plain (Sutskever), Luong and Bahdanau attention, on flax cells.

Importing this package registers the `seq2seq_*` presets in `zoo.registry`.
"""

from zoo.rnn.bahdanau import BahdanauDecoder, BahdanauStep
from zoo.rnn.bridge import BRIDGES, CopyBridge, DenseBridge
from zoo.rnn.cells import CELLS, CellStack, RNNStack, hidden_of, make_cell, zero_carry
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.decoder import DecoderCarry, DecoderOutput, PlainDecoder
from zoo.rnn.encoder import Encoder, EncoderOutput
from zoo.rnn.generate import METHODS, generate, initial_state, step_fn_for
from zoo.rnn.luong import LuongAttention, LuongDecoder, LuongFeedingDecoder, LuongFeedingStep
from zoo.rnn.presets import PAPER_CONFIGS, PRESETS
from zoo.rnn.seq2seq import DECODERS, Seq2Seq, Seq2SeqOutput
from zoo.rnn.training import Metrics, exact_match, make_train_step, token_loss

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
    "METHODS",
    "Metrics",
    "PAPER_CONFIGS",
    "PRESETS",
    "PlainDecoder",
    "RNNStack",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqOutput",
    "exact_match",
    "generate",
    "hidden_of",
    "initial_state",
    "make_cell",
    "make_train_step",
    "step_fn_for",
    "token_loss",
    "zero_carry",
]
