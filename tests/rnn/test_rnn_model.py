"""Seq2Seq: shapes for every cell x attention, attention masking, padding invariance,
step-by-step decoding == teacher forcing, logical axis names, dropout."""

import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention.scores import SCORES
from zoo.rnn import CELLS, Seq2Seq, Seq2SeqConfig

B, S, T, V_SRC, V_TGT = 3, 7, 5, 13, 11
SRC_LENGTHS = np.array([7, 4, 1], np.int32)

# One config per decoder kind; small widths, two layers where it matters, dropout
# configured (apply is deterministic unless asked) so every test also checks it is off.
KINDS = {
    "plain": dict(cell="lstm", num_layers=2),
    "luong": dict(cell="gru", attention="general", num_layers=2),
    "luong_feeding": dict(cell="lstm", attention="concat", input_feeding=True, num_layers=2),
    "bahdanau": dict(cell="gru", attention="additive", style="bahdanau", bidirectional=True,
                     encoder_hidden_dim=16, bridge="dense"),
    "luong_bidirectional_dot": dict(cell="rnn", attention="dot", bidirectional=True),
}


def _config(**overrides):
    base = dict(src_vocab_size=V_SRC, tgt_vocab_size=V_TGT, embed_dim=8, hidden_dim=16,
                dropout_rate=0.2)
    return Seq2SeqConfig(**{**base, **overrides})


def _batch(seed=0, src_lengths=SRC_LENGTHS, src_len=S, tgt_len=T):
    rng = np.random.default_rng(seed)
    src = rng.integers(4, V_SRC, size=(len(src_lengths), src_len)).astype(np.int32)
    src[np.arange(src_len)[None, :] >= src_lengths[:, None]] = 0  # pad
    tgt = rng.integers(4, V_TGT, size=(len(src_lengths), tgt_len)).astype(np.int32)
    tgt[:, 0] = 1  # <bos>
    return jnp.asarray(src), jnp.asarray(src_lengths), jnp.asarray(tgt)


def _init(config, seed=0):
    model = Seq2Seq(config)
    src, lengths, tgt = _batch()
    return model, jax.jit(model.init)(jax.random.key(seed), src, tgt, src_lengths=lengths)


@functools.cache
def _kind(kind):
    """(model, params, jitted apply) for KINDS[kind], shared by the tests of one worker."""
    model, params = _init(_config(**KINDS[kind]))
    return model, params, jax.jit(model.apply, static_argnames="deterministic")


# ---------------------------------------------------------------- shapes and dtypes

STYLE_VARIANTS = {
    "luong": dict(style="luong"),
    "luong_feeding": dict(style="luong", input_feeding=True),
    "bahdanau": dict(style="bahdanau"),
}
COMBOS = [(cell, None, "plain") for cell in sorted(CELLS)] + list(
    itertools.product(sorted(CELLS), sorted(SCORES), sorted(STYLE_VARIANTS)))


@pytest.mark.parametrize("cell, attention, variant", COMBOS)
def test_shapes_and_dtypes(cell, attention, variant):
    extra = {} if attention is None else STYLE_VARIANTS[variant]
    model = Seq2Seq(_config(cell=cell, attention=attention, **extra))
    src, lengths, tgt = _batch()

    def init_and_apply():
        params = model.init(jax.random.key(0), src, tgt, src_lengths=lengths)
        return params, model.apply(params, src, tgt, src_lengths=lengths)

    params, out = jax.eval_shape(init_and_apply)  # traces only: cheap for 48 combos
    assert out.logits.shape == (B, T, V_TGT) and out.logits.dtype == jnp.float32
    if attention is None:
        assert out.attention is None
    else:
        assert out.attention.shape == (B, T, S) and out.attention.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))


@pytest.mark.parametrize("cell, extra", [
    ("rnn", dict(attention="general", input_feeding=True)),
    ("lstm", dict(attention="additive", style="bahdanau")),
    ("gru", dict(attention="scaled_dot")),
])
def test_bfloat16_compute_keeps_float32_outputs(cell, extra):
    # Runs (not just traces) every decoder path in bfloat16: carries stay in the
    # compute dtype, params, logits and attention weights in float32.
    model, params = _init(_config(cell=cell, dtype=jnp.bfloat16, **extra))
    src, lengths, tgt = _batch()
    out = jax.jit(model.apply)(params, src, tgt, src_lengths=lengths)
    assert out.logits.dtype == jnp.float32 and out.attention.dtype == jnp.float32
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert np.all(np.isfinite(np.asarray(out.logits)))
    np.testing.assert_allclose(np.asarray(out.attention).sum(-1), 1.0, atol=1e-2)


# ---------------------------------------------------------------- masking and padding


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_attention_masking_and_padding_invariance(kind):
    _, params, apply = _kind(kind)
    src, lengths, tgt = _batch()
    padded = apply(params, src, tgt, src_lengths=lengths)
    if padded.attention is not None:
        # Weights sum to 1 over the real source tokens and are exactly 0 on padding.
        weights = np.asarray(padded.attention)  # [B, T, S]
        real = np.arange(S)[None, None, :] < SRC_LENGTHS[:, None, None]  # [B, 1, S]
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        assert np.all(weights[np.broadcast_to(~real, weights.shape)] == 0.0)
        assert np.all(weights[SRC_LENGTHS == 1, :, 0] == 1.0)  # one real token gets it all

    # A 4-token sentence inside the 7-wide padded batch == the same sentence alone.
    row, n = 1, int(SRC_LENGTHS[1])
    alone = apply(params, src[row:row + 1, :n], tgt[row:row + 1], src_lengths=lengths[row:row + 1])
    np.testing.assert_allclose(padded.logits[row], alone.logits[0], atol=1e-5, rtol=1e-5)
    if padded.attention is not None:
        np.testing.assert_allclose(padded.attention[row, :, :n], alone.attention[0],
                                   atol=1e-6)
    # And different junk in the padding changes nothing either.
    junk = src.at[row, n:].set(5)
    np.testing.assert_allclose(apply(params, junk, tgt, src_lengths=lengths).logits, padded.logits,
                               atol=1e-6)


# ---------------------------------------------------------------- stepping == teacher forcing


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_step_by_step_gold_prefix_matches_teacher_forcing(kind):
    model, params, apply = _kind(kind)
    src, lengths, tgt = _batch()
    forced = apply(params, src, tgt, src_lengths=lengths)

    memory = model.apply(params, src, lengths, method=Seq2Seq.encode)
    carry = model.apply(params, memory, method=Seq2Seq.init_carry)
    step = jax.jit(lambda m, c, tok: model.apply(params, m, c, tok,
                                                 method=Seq2Seq.decode_step))
    logits = []
    for t in range(T):
        step_logits, carry = step(memory, carry, tgt[:, t])  # [B, V]
        assert step_logits.shape == (B, V_TGT) and step_logits.dtype == jnp.float32
        logits.append(step_logits)
    np.testing.assert_allclose(np.stack(logits, 1), forced.logits, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- sharding names, dropout, inputs


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_parameter_has_logical_axis_names(kind):
    _, params, _ = _kind(kind)
    boxed = jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert boxed and all(isinstance(p, nn.LogicallyPartitioned) for p in boxed)
    for p in boxed:
        assert len(p.names) == p.value.ndim and len(set(p.names)) == len(p.names), p.names
    rules = [("embed", "data"), ("mlp", "model"), ("vocab", "model"), ("recurrent", None),
             ("kv_embed", None)]
    specs = nn.logical_to_mesh_sharding(
        nn.get_partition_spec(params), jax.make_mesh((2, 4), ("data", "model")), rules)
    assert len(jax.tree.leaves(specs)) == len(boxed)


def test_dropout_is_keyed():
    model, params, _ = _kind("luong_feeding")
    src, lengths, tgt = _batch()

    @jax.jit
    def run(key):
        return model.apply(params, src, tgt, src_lengths=lengths, deterministic=False,
                           rngs={"dropout": key}).logits

    a, b, c = run(jax.random.key(1)), run(jax.random.key(1)), run(jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_inputs_raise():
    model, params, _ = _kind("plain")
    src, lengths, tgt = _batch()
    with pytest.raises(ValueError, match="src_lengths"):
        model.apply(params, src, tgt, src_lengths=lengths.at[0].set(0))
    with pytest.raises(ValueError, match="src_lengths"):
        model.apply(params, src, tgt, src_lengths=lengths.at[0].set(S + 1))
    with pytest.raises(ValueError, match="src_lengths"):
        model.apply(params, src, tgt, src_lengths=lengths[:2])
    with pytest.raises(ValueError, match="src must be 2-D"):
        model.apply(params, src[0], tgt, src_lengths=lengths)
    with pytest.raises(ValueError, match="tokens must be 1-D"):
        memory = model.apply(params, src, lengths, method=Seq2Seq.encode)
        carry = model.apply(params, memory, method=Seq2Seq.init_carry)
        model.apply(params, memory, carry, tgt, method=Seq2Seq.decode_step)
