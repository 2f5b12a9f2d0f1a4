"""`Seq2SeqConfig`: the hyperparameters of every RNN encoder-decoder, validated once.

Field names and defaults are the model's whole surface: `Seq2Seq(config)` reads
nothing else. Invalid combinations raise ValueError at construction, naming
the field, its value and what is allowed, so a bad sweep fails before tracing.

Widths (glossary letters used in the model files):
    E  embed_dim            token embedding width (encoder and decoder)
    R  hidden_dim           decoder state width; also the attentional vector width
    M  memory_dim           encoder state width = encoder_hidden_dim x (2 if bidirectional)
    A  attention_hidden     hidden width of the concat/additive scores (None: R)

Which decoder is built (`decoder_kind`):
    attention=None                         'plain'          Sutskever et al. (2014)
    attention=score, style='luong'         'luong'          Luong et al. (2015), global
    ... and input_feeding=True             'luong_feeding'  Luong et al. (2015), sec. 3.3
    attention=score, style='bahdanau'      'bahdanau'       Bahdanau et al. (2015)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from zoo.attention.scores import SCORES
from zoo.rnn.bridge import BRIDGES
from zoo.rnn.cells import CELLS

STYLES = ("luong", "bahdanau")
# Scores that compare decoder state and encoder state directly, so widths must agree.
SAME_WIDTH_SCORES = frozenset({"dot", "scaled_dot"})
FLOAT_DTYPES = ("float32", "bfloat16", "float16")
# (style, input_feeding) -> decoder kind, for configs with attention; validation
# rules out input feeding with Bahdanau's style.
_ATTENTION_DECODERS = {
    ("luong", False): "luong",
    ("luong", True): "luong_feeding",
    ("bahdanau", False): "bahdanau",
}


def _positive_int(name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive int" + (" or None" if optional else "")
        raise ValueError(f"Seq2SeqConfig.{name} must be {allowed}, got {value!r}")


def _one_of(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"Seq2SeqConfig.{name} must be one of {list(allowed)}, got {value!r}")


def _float_dtype(name: str, value: Any) -> None:
    try:
        dtype_name = jnp.dtype(value).name
    except TypeError:
        dtype_name = None
    if dtype_name not in FLOAT_DTYPES:
        raise ValueError(f"Seq2SeqConfig.{name} must be one of {list(FLOAT_DTYPES)}, "
                         f"got {value!r}")


@dataclasses.dataclass(frozen=True)
class Seq2SeqConfig:
    """Hyperparameters of `zoo.rnn.Seq2Seq`; see the module docstring for the widths."""

    src_vocab_size: int = 128
    tgt_vocab_size: int = 128
    cell: str = "lstm"  # a key of zoo.rnn.cells.CELLS: 'rnn' (vanilla), 'lstm', 'gru'
    num_layers: int = 1  # stacked layers, the same in the encoder and the decoder
    embed_dim: int = 32
    hidden_dim: int = 64
    # Encoder width per direction; None = whatever makes M == hidden_dim.
    encoder_hidden_dim: int | None = None
    bidirectional: bool = False
    attention: str | None = None  # None (plain seq2seq) or a key of zoo.attention.SCORES
    attention_hidden: int | None = None  # tanh-layer width A; None = R
    style: str = "luong"  # 'luong' | 'bahdanau'; used only with attention
    input_feeding: bool = False  # Luong's s~_{t-1} fed to the next step's input
    bridge: str = "copy"  # how the encoder state starts the decoder: zoo.rnn.bridge.BRIDGES
    dropout_rate: float = 0.0  # on every non-recurrent connection (Zaremba et al., 2014)
    dtype: Any = jnp.float32  # compute dtype; logits and attention weights are float32
    param_dtype: Any = jnp.float32

    def __post_init__(self):
        for name in ("src_vocab_size", "tgt_vocab_size", "num_layers", "embed_dim",
                     "hidden_dim"):
            _positive_int(name, getattr(self, name))
        _positive_int("encoder_hidden_dim", self.encoder_hidden_dim, optional=True)
        _positive_int("attention_hidden", self.attention_hidden, optional=True)
        _one_of("cell", self.cell, sorted(CELLS))
        _one_of("attention", self.attention, [None, *SCORES])
        _one_of("style", self.style, STYLES)
        _one_of("bridge", self.bridge, list(BRIDGES))
        for name in ("bidirectional", "input_feeding"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Seq2SeqConfig.{name} must be a bool, "
                                 f"got {getattr(self, name)!r}")
        if isinstance(self.dropout_rate, bool) or not isinstance(self.dropout_rate, int | float) \
                or not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"Seq2SeqConfig.dropout_rate must be a float in [0, 1), "
                             f"got {self.dropout_rate!r}")
        _float_dtype("dtype", self.dtype)
        _float_dtype("param_dtype", self.param_dtype)
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.bidirectional and self.encoder_hidden_dim is None and self.hidden_dim % 2:
            raise ValueError(
                f"Seq2SeqConfig.hidden_dim={self.hidden_dim} must be even when bidirectional=True "
                "and encoder_hidden_dim=None (each direction gets hidden_dim // 2); "
                "or set encoder_hidden_dim"
            )
        if self.input_feeding and (self.attention is None or self.style != "luong"):
            raise ValueError(
                f"Seq2SeqConfig.input_feeding=True needs attention (a score) and style='luong', "
                f"got attention={self.attention!r}, style={self.style!r}; Bahdanau's decoder "
                "already feeds its context into the RNN input"
            )
        widths = (f"memory width M = encoder_hidden_dim x directions = {self.memory_dim}, "
                  f"hidden_dim = {self.hidden_dim}")
        if self.attention in SAME_WIDTH_SCORES and self.memory_dim != self.hidden_dim:
            raise ValueError(
                f"Seq2SeqConfig.attention={self.attention!r} compares decoder and encoder states "
                f"directly, so their widths must match; got {widths}. Use attention='general', "
                "'concat' or 'additive', or change encoder_hidden_dim"
            )
        if self.bridge == "copy" and self.memory_dim != self.hidden_dim:
            raise ValueError(
                f"Seq2SeqConfig.bridge='copy' starts the decoder from the encoder's final state, "
                f"so widths must match; got {widths}. Use bridge='dense' or change "
                "encoder_hidden_dim"
            )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def encoder_features(self) -> int:
        """Encoder width per direction."""
        if self.encoder_hidden_dim is not None:
            return self.encoder_hidden_dim
        return self.hidden_dim // self.directions

    @property
    def memory_dim(self) -> int:
        """M: width of the encoder states the decoder attends to."""
        return self.encoder_features * self.directions

    @property
    def score_hidden(self) -> int:
        return self.attention_hidden or self.hidden_dim

    @property
    def decoder_kind(self) -> str:
        """A key of zoo.rnn.seq2seq.DECODERS; see the module docstring."""
        if self.attention is None:
            return "plain"
        return _ATTENTION_DECODERS[(self.style, self.input_feeding)]
