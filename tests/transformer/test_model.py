"""EncoderDecoder and DecoderLM: causality, source padding, packing, scan vs unrolled, remat."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import registry
from zoo.transformer import cross_attention_weights, stack_layer_params, unstack_layer_params

B, S, T = 2, 9, 7


def _ids(shape, vocab, seed):
    return jax.random.randint(jax.random.key(seed), shape, 1, vocab)


def _seq2seq(**overrides):
    model = registry.build("transformer_tiny", dropout_rate=0.0, **overrides)
    src, tgt = _ids((B, S), 64, 1), _ids((B, T), 64, 2)
    params = model.init(jax.random.key(0), src, tgt)["params"]
    return model, params, src, tgt


def _lm(**overrides):
    model = registry.build("lm_tiny", **overrides)
    tokens = _ids((B, T), 64, 3)
    params = model.init(jax.random.key(0), tokens)["params"]
    return model, params, tokens


@pytest.mark.parametrize("positional", ["rotary", "learned"])
def test_lm_future_tokens_never_change_earlier_logits(positional):
    model, params, tokens = _lm(positional=positional)
    logits = model.apply({"params": params}, tokens).logits  # [B, T, V]
    for k in (1, 4):
        changed = tokens.at[:, k:].set(_ids((B, T - k), 64, 10 + k))
        other = model.apply({"params": params}, changed).logits
        np.testing.assert_allclose(other[:, :k], logits[:, :k], atol=1e-5)
        assert not np.allclose(other[:, k:], logits[:, k:], atol=1e-3)


def test_seq2seq_future_target_tokens_never_change_earlier_logits():
    model, params, src, tgt = _seq2seq()
    logits = model.apply({"params": params}, src, tgt).logits
    changed = tgt.at[:, 3:].set(_ids((B, T - 3), 64, 7))
    other = model.apply({"params": params}, src, changed).logits
    np.testing.assert_allclose(other[:, :3], logits[:, :3], atol=1e-5)
    assert not np.allclose(other[:, 3:], logits[:, 3:], atol=1e-3)


@pytest.mark.parametrize("placement", [pytest.param("post", marks=pytest.mark.slow), "pre"])
def test_source_padding_does_not_change_outputs(placement):
    model, params, src, tgt = _seq2seq(norm_placement=placement)
    lengths = jnp.array([S, 5])
    out = model.apply({"params": params}, src, tgt, src_lengths=lengths)
    assert out.attention is None  # zoo.seq2seq.Seq2SeqOutput: no single alignment
    garbage = src.at[1, 5:].set(_ids((S - 5,), 64, 9))
    again = model.apply({"params": params}, garbage, tgt, src_lengths=lengths)
    np.testing.assert_allclose(again.logits, out.logits, atol=1e-5)
    encoded = model.apply({"params": params}, src, lengths, method="encode")
    encoded_again = model.apply({"params": params}, garbage, lengths, method="encode")
    np.testing.assert_array_equal(encoded.lengths, lengths)
    np.testing.assert_allclose(encoded_again.states[1, :5], encoded.states[1, :5], atol=1e-5)
    # And the padded sequence matches the same sequence run alone without padding.
    alone = model.apply({"params": params}, src[1:, :5], tgt[1:])
    np.testing.assert_allclose(alone.logits[0], out.logits[1], atol=1e-5)


@pytest.mark.parametrize("positional", [pytest.param("rotary", marks=pytest.mark.slow),
                                        "sinusoidal"])
def test_packed_sequences_equal_separate_runs(positional):
    model, params, _ = _lm(positional=positional)
    a, b = _ids((1, 3), 64, 4), _ids((1, 4), 64, 5)
    packed = jnp.concatenate([a, b], axis=1)  # [1, 7]
    segments = jnp.array([[1, 1, 1, 2, 2, 2, 2]])
    logits = model.apply({"params": params}, packed, segment_ids=segments).logits
    np.testing.assert_allclose(logits[:, :3], model.apply({"params": params}, a).logits,
                               atol=1e-5)
    np.testing.assert_allclose(logits[:, 3:], model.apply({"params": params}, b).logits,
                               atol=1e-5)


@pytest.mark.parametrize("family", [pytest.param("seq2seq", marks=pytest.mark.slow), "lm"])
def test_scan_and_unrolled_agree_with_converted_params(family):
    if family == "seq2seq":
        model, params, src, tgt = _seq2seq()
        inputs, kwargs = (src, tgt), dict(src_lengths=jnp.array([S, 4]))
    else:
        model, params, tokens = _lm()
        inputs, kwargs = (tokens,), {}
    scanned = model.clone(config=dataclasses.replace(model.config, scan_layers=True))
    stacked = stack_layer_params(params)
    # Converted params have exactly the shapes (and axis names) scan's own init makes.
    own = scanned.init(jax.random.key(0), *inputs)["params"]
    assert jax.tree.map(jnp.shape, stacked) == jax.tree.map(jnp.shape, own)
    assert nn.get_partition_spec(stacked) == nn.get_partition_spec(own)
    want = model.apply({"params": params}, *inputs, **kwargs).logits
    got = scanned.apply({"params": stacked}, *inputs, **kwargs).logits
    np.testing.assert_allclose(got, want, atol=1e-5)
    # And back: scan's own params run unrolled.
    np.testing.assert_allclose(
        model.apply({"params": unstack_layer_params(own)}, *inputs, **kwargs).logits,
        scanned.apply({"params": own}, *inputs, **kwargs).logits, atol=1e-5)
    round_trip = unstack_layer_params(stacked)
    jax.tree.map(np.testing.assert_array_equal, nn.unbox(round_trip), nn.unbox(params))


@pytest.mark.parametrize("scan_layers,remat", [(False, "full"), (True, "dots")])
def test_remat_gives_the_same_gradients(scan_layers, remat):
    model, params, tokens = _lm(scan_layers=scan_layers)
    rematted = registry.build("lm_tiny", scan_layers=scan_layers, remat=remat)

    def loss(module):
        def f(p):
            logits = module.apply({"params": p}, tokens).logits
            return jnp.mean(jax.nn.log_softmax(logits)[..., 0])
        return jax.jit(jax.grad(f))(params)

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                 nn.unbox(loss(rematted)), nn.unbox(loss(model)))


def test_dropout_only_in_training_and_under_scan():
    model, params, tokens = _lm(scan_layers=True, dropout_rate=0.2,
                                attention_dropout_rate=0.1, ffn_dropout_rate=0.1)
    apply = jax.jit(model.apply, static_argnames="deterministic")
    evaluated = apply({"params": params}, tokens).logits
    trained = apply({"params": params}, tokens, deterministic=False,
                    rngs={"dropout": jax.random.key(1)}).logits
    assert np.all(np.isfinite(trained)) and not np.allclose(trained, evaluated)


def test_bfloat16_compute_keeps_float32_params_and_logits():
    model, params, tokens = _lm(dtype=jnp.bfloat16)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nn.unbox(params)))
    out = model.apply({"params": params}, tokens)
    assert out.logits.dtype == jnp.float32 and out.hidden.dtype == jnp.bfloat16


def test_separate_vocabularies_and_untied_output():
    model = registry.build("transformer_tiny", src_vocab_size=40, share_embeddings=False,
                           tie_output_embedding=False)
    src, tgt = _ids((B, S), 40, 1), _ids((B, T), 64, 2)
    params = model.init(jax.random.key(0), src, tgt)["params"]
    assert params["src_embed"]["embedding"].value.shape == (40, 32)
    assert params["embed"]["embedding"].value.shape == (64, 32)
    assert params["decoder"]["output_kernel"].value.shape == (32, 64)
    assert model.apply({"params": params}, src, tgt).logits.shape == (B, T, 64)


def test_cross_attention_weights_of_every_layer_and_head():
    model, params, src, tgt = _seq2seq()
    lengths = jnp.array([S, 5])
    weights = cross_attention_weights(model, params, src, tgt, src_lengths=lengths)
    c = model.config
    assert weights.shape == (c.num_decoder_layers, B, c.num_heads, T, S)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)  # over the real sources
    np.testing.assert_array_equal(weights[:, 1, :, :, 5:], 0.0)  # padding is never looked at
    garbage = src.at[1, 5:].set(_ids((S - 5,), 64, 9))
    np.testing.assert_allclose(
        cross_attention_weights(model, params, garbage, tgt, src_lengths=lengths), weights,
        atol=1e-6)
    # Row t depends on target tokens up to t only (the decoder is causal).
    later = tgt.at[:, 4:].set(_ids((B, T - 4), 64, 8))
    np.testing.assert_allclose(
        cross_attention_weights(model, params, src, later, src_lengths=lengths)[:, :, :, :4],
        weights[:, :, :, :4], atol=1e-6)
    # Collecting the weights changes nothing else, and a scanned stack gives the same ones.
    out, _ = model.apply({"params": params}, src, tgt, src_lengths=lengths,
                         mutable=["intermediates"])
    np.testing.assert_allclose(
        out.logits, model.apply({"params": params}, src, tgt, src_lengths=lengths).logits,
        atol=1e-6)
    scanned = model.clone(config=dataclasses.replace(c, scan_layers=True))
    np.testing.assert_allclose(
        cross_attention_weights(scanned, stack_layer_params(params), src, tgt,
                                src_lengths=lengths), weights, atol=1e-5)
