"""zoo.seq2seq.generate on the RNN Seq2Seq, through the shared decoding module."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.rnn import Seq2Seq, Seq2SeqConfig
from zoo.seq2seq import generate

B, S, V = 4, 6, 12
BOS, EOS = 1, 2


@pytest.fixture(scope="module")
def model_and_params():
    # An untrained model with a strong prior for EOS would end at once; random init
    # gives varied sequences, which is what these tests need.
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=V, tgt_vocab_size=V, embed_dim=8,
                                  hidden_dim=16, cell="gru", attention="additive",
                                  style="bahdanau"))
    src = jnp.asarray(np.random.default_rng(0).integers(4, V, size=(B, S)), jnp.int32)
    lengths = jnp.array([6, 3, 1, 5], jnp.int32)
    params = jax.jit(model.init)(jax.random.key(1), src, src, src_lengths=lengths)["params"]
    return model, params, src, lengths


def test_greedy_is_the_argmax_of_its_own_teacher_forced_pass(model_and_params):
    model, params, src, lengths = model_and_params
    out = generate(model, params, src, lengths, max_len=7)
    assert out.tokens.shape == (B, 7) and out.tokens.dtype == jnp.int32
    tgt_in = jnp.concatenate([jnp.full((B, 1), BOS, jnp.int32), out.tokens[:, :-1]], axis=1)
    logits = model.apply({"params": params}, src, tgt_in, src_lengths=lengths).logits
    argmax = np.asarray(jnp.argmax(logits, -1))  # [B, 7]
    for b in range(B):
        n = int(out.lengths[b])
        np.testing.assert_array_equal(argmax[b, :n], out.tokens[b, :n])


def test_beam_one_equals_greedy_and_wider_beams_score_no_worse(model_and_params):
    model, params, src, lengths = model_and_params
    greedy = generate(model, params, src, lengths, max_len=7)
    beam1 = generate(model, params, src, lengths, method="beam", max_len=7, beam_size=1,
                     length_penalty=0.0).best()
    np.testing.assert_array_equal(beam1.tokens, greedy.tokens)
    beam4 = generate(model, params, src, lengths, method="beam", max_len=7, beam_size=4,
                     length_penalty=0.0)
    assert beam4.tokens.shape == (B, 4, 7)
    assert np.all(np.asarray(beam4.scores[:, 0]) >= np.asarray(beam1.scores) - 1e-5)


def test_sampling_needs_a_key_and_top_k_one_is_greedy(model_and_params):
    model, params, src, lengths = model_and_params
    greedy = generate(model, params, src, lengths, max_len=7)
    sampled = generate(model, params, src, lengths, method="sample", max_len=7,
                       key=jax.random.key(0), top_k=1)
    np.testing.assert_array_equal(sampled.tokens, greedy.tokens)
    with pytest.raises(ValueError, match="key"):
        generate(model, params, src, lengths, method="sample", max_len=7)
    with pytest.raises(ValueError, match="method"):
        generate(model, params, src, lengths, method="nucleus", max_len=7)


def test_params_must_be_the_bare_collection(model_and_params):
    model, params, src, lengths = model_and_params
    with pytest.raises(ValueError, match="variables\\['params'\\]"):
        generate(model, {"params": params}, src, lengths, max_len=7)


def test_missing_lengths_mean_whole_rows(model_and_params):
    model, params, src, _ = model_and_params
    whole = jnp.full((B,), S, jnp.int32)
    np.testing.assert_array_equal(generate(model, params, src, max_len=7).tokens,
                                  generate(model, params, src, whole, max_len=7).tokens)
