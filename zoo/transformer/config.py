"""``TransformerConfig``: the hyperparameters of every Transformer in this package.

One frozen dataclass serves the encoder-decoder ("Attention Is All You Need",
Vaswani et al. 2017) and the decoder-only LM (``num_encoder_layers=0``). It is
validated on construction, so a bad combination fails when the config is made,
naming the fields, rather than as a shape error deep inside ``init``.

Named presets live in ``zoo/transformer/presets.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from zoo.attention import IMPLEMENTATIONS
from zoo.nn import ACTIVATIONS, NORMS, SINUSOID_LAYOUTS

Dtype = Any

POSITIONAL_KINDS = ("sinusoidal", "learned", "rotary")
NORM_PLACEMENTS = ("post", "pre")

# What the backward pass may keep from the forward pass of a layer; everything
# else is recomputed. 'none' means no remat at all (keep everything).
REMAT_POLICIES: dict[str, Any] = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
}


def _one_of(name: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Transformer hyperparameters.

    Attributes:
      vocab_size: target vocabulary V (the only one when shared, and the LM's).
      src_vocab_size: source vocabulary; None means the same as ``vocab_size``.
      d_model: model width D.
      num_encoder_layers: encoder depth; 0 for a decoder-only LM.
      num_decoder_layers: decoder depth L.
      num_heads: query heads N.
      num_kv_heads: key/value heads K (None = N; 1 = multi-query). Must divide N.
      d_ff: feed-forward width F.
      dropout_rate: residual dropout on every sublayer output and on the
        embeddings + positions sum (the paper's P_drop).
      attention_dropout_rate: dropout on attention weights.
      ffn_dropout_rate: dropout between the two FFN projections (t2t's relu_dropout).
      max_len: longest sequence (positional table rows; the LM's decoding budget).
      positional: 'sinusoidal' (paper), 'learned' (GPT-2) or 'rotary' (RoFormer).
      norm_placement: 'post' (paper: x = norm(x + f(x))) or 'pre' (x = x + f(norm(x)),
        with a final norm after the stack), which trains stably without warmup tricks.
      norm: 'layernorm' or 'rmsnorm'.
      norm_epsilon: added to the variance in every norm; 1e-6 as in tensor2tensor and
        T5 (torch and Hugging Face models use 1e-5).
      final_norm: a norm after each stack. None decides by ``norm_placement``: pre-LN
        stacks need one (their residual stream is never normalised), post-LN stacks
        already end with one. ``torch.nn.Transformer`` adds one to post-LN stacks too.
      sinusoid_layout: column order of the sinusoidal table: 'interleaved' (the paper)
        or 'concat' ([sin | cos], Hugging Face's Marian).
      scale_embedding: multiply token vectors by sqrt(D) before adding positions (the
        paper, Marian); GPT-2 does not.
      output_bias: a learned [V] bias on the logits (Marian's ``final_logits_bias``).
      activation: FFN activation, a name in ``zoo.nn.ACTIVATIONS``.
      use_bias: biases in the attention and FFN projections (the paper has them).
      tie_output_embedding: logits = x @ E^T with the target embedding E (paper §3.4).
      share_embeddings: one table for source and target (needs equal vocabularies).
      dtype: compute dtype; params stay in ``param_dtype``.
      attention_implementation: kernel name for ``dot_product_attention`` (None = auto).
      scan_layers: run the layers with ``nn.scan`` over stacked params (compile time
        independent of depth) instead of unrolling them.
      remat: what a layer keeps for the backward pass, a key of ``REMAT_POLICIES``.
    """

    vocab_size: int
    src_vocab_size: int | None = None
    d_model: int = 512
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int | None = None
    d_ff: int = 2048
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.0
    ffn_dropout_rate: float = 0.0
    max_len: int = 512
    positional: str = "sinusoidal"
    norm_placement: str = "post"
    norm: str = "layernorm"
    norm_epsilon: float = 1e-6
    final_norm: bool | None = None
    sinusoid_layout: str = "interleaved"
    scale_embedding: bool = True
    output_bias: bool = False
    activation: str = "relu"
    use_bias: bool = True
    tie_output_embedding: bool = True
    share_embeddings: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    attention_implementation: str | None = None
    scan_layers: bool = False
    remat: str = "none"

    def __post_init__(self):
        _positive(vocab_size=self.vocab_size, d_model=self.d_model,
                  num_decoder_layers=self.num_decoder_layers, num_heads=self.num_heads,
                  d_ff=self.d_ff, max_len=self.max_len)
        if self.src_vocab_size is not None:
            _positive(src_vocab_size=self.src_vocab_size)
        if not isinstance(self.num_encoder_layers, int) or self.num_encoder_layers < 0:
            raise ValueError(f"num_encoder_layers must be an int >= 0 (0 = decoder-only), "
                             f"got {self.num_encoder_layers!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by num_heads "
                             f"({self.num_heads})")
        kv_heads = self.num_kv_heads or self.num_heads
        _positive(num_kv_heads=kv_heads)
        if self.num_heads % kv_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must be divisible by num_kv_heads "
                             f"({kv_heads})")
        for name in ("dropout_rate", "attention_dropout_rate", "ffn_dropout_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
        _one_of("positional", self.positional, POSITIONAL_KINDS)
        if self.positional == "rotary" and (self.d_model // self.num_heads) % 2:
            raise ValueError(f"positional='rotary' needs an even head dim d_model / num_heads, "
                             f"got {self.d_model} / {self.num_heads}")
        _one_of("norm_placement", self.norm_placement, NORM_PLACEMENTS)
        _one_of("norm", self.norm, NORMS)
        if not isinstance(self.norm_epsilon, int | float) or not self.norm_epsilon > 0:
            raise ValueError(f"norm_epsilon must be a positive number, got {self.norm_epsilon!r}")
        if self.final_norm not in (None, True, False):
            raise ValueError(f"final_norm must be None (by norm_placement), True or False, "
                             f"got {self.final_norm!r}")
        _one_of("sinusoid_layout", self.sinusoid_layout, SINUSOID_LAYOUTS)
        _one_of("activation", self.activation, ACTIVATIONS)
        _one_of("remat", self.remat, REMAT_POLICIES)
        if self.attention_implementation not in (None, "auto"):
            _one_of("attention_implementation", self.attention_implementation,
                    IMPLEMENTATIONS)
        if self.share_embeddings and self.src_vocab_size not in (None, self.vocab_size):
            raise ValueError(f"share_embeddings=True needs src_vocab_size == vocab_size, got "
                             f"src_vocab_size={self.src_vocab_size}, "
                             f"vocab_size={self.vocab_size}")

    @property
    def source_vocab_size(self) -> int:
        return self.vocab_size if self.src_vocab_size is None else self.src_vocab_size

    @property
    def has_final_norm(self) -> bool:
        """Whether each stack ends with a norm (``final_norm``, or by placement)."""
        return self.norm_placement == "pre" if self.final_norm is None else self.final_norm

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads
