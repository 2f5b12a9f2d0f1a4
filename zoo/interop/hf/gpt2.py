"""Hugging Face ``GPT2LMHeadModel`` <-> zoo ``DecoderLM``.

Glossary: D model width, N heads, H head dim, F feed-forward width, V vocabulary.

What GPT-2 is, in zoo's terms: a pre-LN decoder with a final LayerNorm
(``ln_f``), learned positions (``wpe``) added to unscaled token vectors
(``wte``, also the output projection), 'gelu_new' (zoo's 'gelu_tanh') and no
logits bias. Its linear layers are ``Conv1D`` modules, which store weights as
[in, out] (zoo's own order, the transpose of ``nn.Linear``), and the query,
key and value projections are one fused [D, 3D] ``c_attn``.

zoo has one dropout rate for the embeddings and the residual branches: it
takes ``resid_pdrop`` (``embd_pdrop`` only matters when training). Variants
zoo does not reproduce raise: unscaled attention (``scale_attn_weights=False``),
attention scaled by the inverse layer index, and cross-attention.
"""

from __future__ import annotations

import re

import jax.numpy as jnp

from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID
from zoo.interop.hf import rules as R
from zoo.interop.hf.architecture import (
    TO_HF_ACTIVATION,
    Architecture,
    activation_from_hf,
    require,
    single_id,
)
from zoo.transformer import DecoderLM, TransformerConfig

# Causal-mask buffers that older checkpoints saved with the weights; zoo builds its own mask.
_MASK_BUFFER = re.compile(r"transformer\.h\.\d+\.attn\.(bias|masked_bias)$")

# GPT2Config's defaults, for a config.json that leaves a field out.
DEFAULTS = {
    "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12,
    "n_inner": None, "activation_function": "gelu_new", "resid_pdrop": 0.1, "embd_pdrop": 0.1,
    "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False,
    "tie_word_embeddings": True, "eos_token_id": 50256, "pad_token_id": None,
}
# Variants zoo does not compute: field -> the one value zoo supports.
_UNSUPPORTED = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                "add_cross_attention": False}


def config_from_hf(hf: dict) -> TransformerConfig:
    def get(key):
        return hf.get(key, DEFAULTS[key])

    for key, supported in _UNSUPPORTED.items():
        if get(key) != supported:
            raise ValueError(f"GPT-2 config.json has {key}={get(key)!r}; zoo supports only "
                             f"{key}={supported!r}")
    d = get("n_embd")
    return TransformerConfig(
        vocab_size=get("vocab_size"), d_model=d, num_encoder_layers=0,
        num_decoder_layers=get("n_layer"), num_heads=get("n_head"),
        d_ff=get("n_inner") or 4 * d, dropout_rate=float(get("resid_pdrop")),
        attention_dropout_rate=float(get("attn_pdrop")), ffn_dropout_rate=0.0,
        max_len=get("n_positions"), positional="learned", norm_placement="pre",
        norm="layernorm", norm_epsilon=float(get("layer_norm_epsilon")), final_norm=True,
        scale_embedding=False, output_bias=False,
        activation=activation_from_hf(get("activation_function"), "GPT-2 config.json"),
        use_bias=True, tie_output_embedding=bool(get("tie_word_embeddings")))


def config_to_hf(c: TransformerConfig) -> dict:
    require(c, "GPT2LMHeadModel", num_encoder_layers=(0,), positional=("learned",),
            norm_placement=("pre",), norm=("layernorm",), has_final_norm=(True,),
            scale_embedding=(False,), output_bias=(False,), num_kv_heads=(None, c.num_heads),
            use_bias=(True,), activation=tuple(TO_HF_ACTIVATION))
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
        "n_embd": c.d_model, "n_layer": c.num_decoder_layers, "n_head": c.num_heads,
        "n_inner": c.d_ff, "n_positions": c.max_len,
        "activation_function": TO_HF_ACTIVATION[c.activation], "resid_pdrop": c.dropout_rate,
        "embd_pdrop": c.dropout_rate, "attn_pdrop": c.attention_dropout_rate,
        "layer_norm_epsilon": c.norm_epsilon, "tie_word_embeddings": c.tie_output_embedding,
        **_UNSUPPORTED,
    }


def _out_projection(hf: str, zoo: str, n: int, h: int) -> R.Rule:
    """Conv1D [N*H, D] <-> zoo attention output kernel [N, H, D]."""
    return R.Rule(hf, (zoo,), lambda w: (w.reshape(n, h, w.shape[1]),),
                  lambda k: k.reshape(n * h, k.shape[-1]))


def _layer(hf: str, zoo: str, c: TransformerConfig) -> list[R.Rule]:
    n, h = c.num_heads, c.head_dim
    qkv = tuple(f"{zoo}self_attention/{p}/" for p in ("query", "key", "value"))
    return [
        R.same(f"{hf}ln_1.weight", f"{zoo}self_attention_norm/scale"),
        R.same(f"{hf}ln_1.bias", f"{zoo}self_attention_norm/bias"),
        R.fused_heads_in(f"{hf}attn.c_attn.weight", tuple(p + "kernel" for p in qkv), n, h),
        R.fused_heads_in(f"{hf}attn.c_attn.bias", tuple(p + "bias" for p in qkv), n, h),
        _out_projection(f"{hf}attn.c_proj.weight", f"{zoo}self_attention/out/kernel", n, h),
        R.same(f"{hf}attn.c_proj.bias", f"{zoo}self_attention/out/bias"),
        R.same(f"{hf}ln_2.weight", f"{zoo}ffn_norm/scale"),
        R.same(f"{hf}ln_2.bias", f"{zoo}ffn_norm/bias"),
        R.same(f"{hf}mlp.c_fc.weight", f"{zoo}ffn/wi"),  # [D, F]
        R.same(f"{hf}mlp.c_fc.bias", f"{zoo}ffn/bi"),
        R.same(f"{hf}mlp.c_proj.weight", f"{zoo}ffn/wo"),  # [F, D]
        R.same(f"{hf}mlp.c_proj.bias", f"{zoo}ffn/bo"),
    ]


def rules(c: TransformerConfig) -> list[R.Rule]:
    tied = ("lm_head.weight",) if c.tie_output_embedding else ()
    out = [R.same("transformer.wte.weight", "embed/embedding", aliases=tied),  # [V, D]
           R.same("transformer.wpe.weight", "decoder/positional/embedding")]  # [max_len, D]
    if not c.tie_output_embedding:
        out.append(R.linear("lm_head.weight", "decoder/output_kernel"))  # [V, D] <-> [D, V]
    for i in range(c.num_decoder_layers):
        out += _layer(f"transformer.h.{i}.", f"decoder/layers_{i}/", c)
    return out + [R.same("transformer.ln_f.weight", "decoder/final_norm/scale"),
                  R.same("transformer.ln_f.bias", "decoder/final_norm/bias")]


def rename(name: str) -> str:
    """Checkpoints saved from ``GPT2Model`` (the original 'gpt2' upload) lack the prefix."""
    return name if name.startswith(("transformer.", "lm_head.")) else f"transformer.{name}"


def known_extra(c: TransformerConfig):
    return lambda name, tensor: bool(_MASK_BUFFER.match(name))


def decode_ids(hf: dict) -> dict:
    """Keyword ids of ``zoo.transformer.generate.generate_lm``: GPT-2 pads with </s>."""
    eos = single_id(hf.get("eos_token_id", DEFAULTS["eos_token_id"]), "eos_token_id")
    pad = hf.get("pad_token_id")
    return {"eos_id": eos, "pad_id": eos if pad is None else single_id(pad, "pad_token_id")}


GPT2 = Architecture(
    model_type="gpt2", class_name="GPT2LMHeadModel", module=DecoderLM,
    example_inputs=lambda: (jnp.zeros((1, 1), jnp.int32),),
    config_from_hf=config_from_hf, config_to_hf=config_to_hf, rules=rules,
    known_extra=known_extra, rename=rename, decode_ids=decode_ids,
    default_ids={"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID},
)
