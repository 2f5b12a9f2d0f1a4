"""Hugging Face ``MarianMTModel`` (Opus-MT) <-> zoo ``EncoderDecoder``.

Glossary: D model width, N heads, H head dim, F feed-forward width, V vocabulary, L layers.

What Marian is, in zoo's terms: a post-LN Transformer with no norm after
either stack and none on the embeddings; LayerNorm epsilon 1e-5 (torch's
default, which Marian does not change); sinusoidal positions from 0 with the
[sin | cos] column order ('concat'); token vectors scaled by sqrt(D) when
``scale_embedding`` (Opus-MT: yes); attention scaled by 1/sqrt(H); one table
shared by source, target and output (``share_encoder_decoder_embeddings``,
``tie_word_embeddings``); and ``final_logits_bias`` [1, V] added to the
logits (zoo's ``output_bias``). Opus-MT uses swish (zoo's 'silu').

Decoding starts from ``decoder_start_token_id``, which is the pad id, and
stops at ``eos_token_id``. ``encoder_layerdrop``/``decoder_layerdrop`` only
act while training; zoo has no layer drop, so they are not carried over.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID
from zoo.interop.hf import rules as R
from zoo.interop.hf.architecture import (
    TO_HF_ACTIVATION,
    Architecture,
    activation_from_hf,
    require,
    single_id,
)
from zoo.nn import sinusoidal_table
from zoo.transformer import EncoderDecoder, TransformerConfig

EPSILON = 1e-5  # Marian's LayerNorms are torch's defaults
POSITION_TABLES = ("model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight")

# MarianConfig's defaults, for a config.json that leaves a field out.
DEFAULTS = {
    "vocab_size": 58101, "decoder_vocab_size": None, "max_position_embeddings": 1024,
    "encoder_layers": 12, "decoder_layers": 12, "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096, "encoder_attention_heads": 16, "decoder_attention_heads": 16,
    "d_model": 1024, "activation_function": "gelu", "dropout": 0.1, "attention_dropout": 0.0,
    "activation_dropout": 0.0, "scale_embedding": False,
    "share_encoder_decoder_embeddings": True, "tie_word_embeddings": True,
    "pad_token_id": 58100, "eos_token_id": 0, "decoder_start_token_id": 58100,
}


def config_from_hf(hf: dict) -> TransformerConfig:
    def get(key):
        value = hf.get(key, DEFAULTS[key])
        return DEFAULTS[key] if value is None else value

    for enc, dec in (("encoder_attention_heads", "decoder_attention_heads"),
                     ("encoder_ffn_dim", "decoder_ffn_dim")):
        if get(enc) != get(dec):
            raise ValueError(f"Marian config.json has {enc}={get(enc)} but {dec}={get(dec)}; zoo's "
                             "EncoderDecoder uses one value for both stacks")
    share = bool(get("share_encoder_decoder_embeddings"))
    source = get("vocab_size")
    target = hf.get("decoder_vocab_size") or source
    if share and target != source:
        raise ValueError(f"Marian config.json shares embeddings but has vocab_size={source} and "
                         f"decoder_vocab_size={target}")
    return TransformerConfig(
        vocab_size=target, src_vocab_size=None if share else source, share_embeddings=share,
        tie_output_embedding=bool(get("tie_word_embeddings")), d_model=get("d_model"),
        num_encoder_layers=get("encoder_layers"), num_decoder_layers=get("decoder_layers"),
        num_heads=get("encoder_attention_heads"), d_ff=get("encoder_ffn_dim"),
        dropout_rate=float(get("dropout")), attention_dropout_rate=float(get("attention_dropout")),
        ffn_dropout_rate=float(get("activation_dropout")), max_len=get("max_position_embeddings"),
        positional="sinusoidal", sinusoid_layout="concat", norm_placement="post",
        norm="layernorm", norm_epsilon=EPSILON, final_norm=False,
        scale_embedding=bool(get("scale_embedding")), output_bias=True,
        activation=activation_from_hf(get("activation_function"), "Marian config.json"),
        use_bias=True)


def config_to_hf(c: TransformerConfig) -> dict:
    require(c, "MarianMTModel", positional=("sinusoidal",), sinusoid_layout=("concat",),
            norm_placement=("post",), norm=("layernorm",), has_final_norm=(False,),
            norm_epsilon=(EPSILON,), num_kv_heads=(None, c.num_heads), use_bias=(True,),
            activation=tuple(TO_HF_ACTIVATION))
    return {
        "architectures": ["MarianMTModel"], "model_type": "marian", "is_encoder_decoder": True,
        "vocab_size": c.source_vocab_size, "decoder_vocab_size": c.vocab_size,
        "share_encoder_decoder_embeddings": c.share_embeddings,
        "tie_word_embeddings": c.tie_output_embedding, "d_model": c.d_model,
        "encoder_layers": c.num_encoder_layers, "decoder_layers": c.num_decoder_layers,
        "encoder_attention_heads": c.num_heads, "decoder_attention_heads": c.num_heads,
        "encoder_ffn_dim": c.d_ff, "decoder_ffn_dim": c.d_ff,
        "max_position_embeddings": c.max_len, "activation_function": TO_HF_ACTIVATION[c.activation],
        "dropout": c.dropout_rate, "attention_dropout": c.attention_dropout_rate,
        "activation_dropout": c.ffn_dropout_rate, "scale_embedding": c.scale_embedding,
    }


def _attention(hf: str, zoo: str, n: int, h: int) -> list[R.Rule]:
    out = []
    for theirs, ours in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
        out += [R.heads_in(f"{hf}{theirs}.weight", f"{zoo}{ours}/kernel", n, h),
                R.heads_bias(f"{hf}{theirs}.bias", f"{zoo}{ours}/bias", n, h)]
    return out + [R.heads_out(f"{hf}out_proj.weight", f"{zoo}out/kernel", n, h),
                  R.same(f"{hf}out_proj.bias", f"{zoo}out/bias")]


def _norm(hf: str, zoo: str) -> list[R.Rule]:
    return [R.same(f"{hf}weight", f"{zoo}scale"), R.same(f"{hf}bias", f"{zoo}bias")]


def _layer(hf: str, zoo: str, c: TransformerConfig, cross: bool) -> list[R.Rule]:
    n, h = c.num_heads, c.head_dim
    out = _attention(f"{hf}self_attn.", f"{zoo}self_attention/", n, h)
    out += _norm(f"{hf}self_attn_layer_norm.", f"{zoo}self_attention_norm/")
    if cross:
        out += _attention(f"{hf}encoder_attn.", f"{zoo}cross_attention/", n, h)
        out += _norm(f"{hf}encoder_attn_layer_norm.", f"{zoo}cross_attention_norm/")
    out += [R.linear(f"{hf}fc1.weight", f"{zoo}ffn/wi"), R.same(f"{hf}fc1.bias", f"{zoo}ffn/bi"),
            R.linear(f"{hf}fc2.weight", f"{zoo}ffn/wo"), R.same(f"{hf}fc2.bias", f"{zoo}ffn/bo")]
    return out + _norm(f"{hf}final_layer_norm.", f"{zoo}ffn_norm/")


def rules(c: TransformerConfig) -> list[R.Rule]:
    tied = ("lm_head.weight",) if c.tie_output_embedding else ()
    if c.share_embeddings:  # one [V, D] table; older checkpoints also store its tied copies
        out = [R.same("model.shared.weight", "embed/embedding", aliases=(
            "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", *tied))]
    else:
        out = [R.same("model.encoder.embed_tokens.weight", "src_embed/embedding"),
               R.same("model.decoder.embed_tokens.weight", "embed/embedding", aliases=tied)]
    if not c.tie_output_embedding:
        out.append(R.linear("lm_head.weight", "decoder/output_kernel"))  # [V, D] <-> [D, V]
    if c.output_bias:
        out.append(R.Rule("final_logits_bias", ("decoder/output_bias",),
                          lambda b: (b.reshape(-1),), lambda b: b.reshape(1, -1),  # [1, V]
                          zeros_if_missing=True))
    else:  # a zoo model without the bias: Marian's is then all zeros
        out.append(R.Rule("final_logits_bias", (), lambda b: (),
                          lambda: jnp.zeros((1, c.vocab_size), jnp.float32)))
    for i in range(c.num_encoder_layers):
        out += _layer(f"model.encoder.layers.{i}.", f"encoder/layers_{i}/", c, cross=False)
    for i in range(c.num_decoder_layers):
        out += _layer(f"model.decoder.layers.{i}.", f"decoder/layers_{i}/", c, cross=True)
    return out


def known_extra(c: TransformerConfig):
    """Older checkpoints store the fixed position tables; they must be the ones zoo builds."""

    def check(name: str, tensor: np.ndarray) -> bool:
        if name not in POSITION_TABLES:
            return False
        table = sinusoidal_table(c.max_len, c.d_model, layout="concat")  # [max_len, D]
        if tensor.shape != table.shape or not np.allclose(tensor, table, atol=1e-5):
            raise ValueError(f"tensor {name!r} is not Marian's [sin | cos] position table of "
                             f"shape {list(table.shape)}")
        return True

    return check


def decode_ids(hf: dict) -> dict:
    """Keyword ids of ``zoo.seq2seq.generate``: start from the pad id, stop at </s>."""
    pad = single_id(hf.get("pad_token_id", DEFAULTS["pad_token_id"]), "pad_token_id")
    start = hf.get("decoder_start_token_id")
    return {"bos_id": pad if start is None else single_id(start, "decoder_start_token_id"),
            "eos_id": single_id(hf.get("eos_token_id", DEFAULTS["eos_token_id"]), "eos_token_id"),
            "pad_id": pad}


MARIAN = Architecture(
    model_type="marian", class_name="MarianMTModel", module=EncoderDecoder,
    example_inputs=lambda: (jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1), jnp.int32)),
    config_from_hf=config_from_hf, config_to_hf=config_to_hf, rules=rules,
    known_extra=known_extra, rename=lambda name: name, decode_ids=decode_ids,
    # Marian has no <bos>: the decoder starts from decoder_start_token_id, zoo's <bos>.
    default_ids={"pad_token_id": PAD_ID, "decoder_start_token_id": BOS_ID,
                 "eos_token_id": EOS_ID, "bos_token_id": None, "forced_eos_token_id": None},
)
