"""KV-cache decoding: cached == full forward, greedy/beam/sample through zoo.decoding
(DecoderLM by zoo.transformer.generate, EncoderDecoder by zoo.seq2seq.generate)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import registry, seq2seq
from zoo.transformer import generate as gen

B, T, V = 2, 7, 64
EOS = 2


def _ids(shape, seed):
    return jax.random.randint(jax.random.key(seed), shape, 3, V)


def _lm(**overrides):
    model = registry.build("lm_tiny", **overrides)
    params = model.init(jax.random.key(0), _ids((B, T), 1))["params"]
    return model, params


def _seq2seq(**overrides):
    model = registry.build("transformer_tiny", dropout_rate=0.0, **overrides)
    src, tgt = _ids((B, 6), 1), _ids((B, T), 2)
    params = model.init(jax.random.key(0), src, tgt)["params"]
    return model, params, src


@pytest.mark.parametrize("prompt,overrides", [
    (1, {}),
    (3, {}),
    (1, dict(scan_layers=True, positional="learned")),
    (4, dict(scan_layers=True, positional="sinusoidal")),
])
def test_cached_lm_decoding_equals_full_forward(prompt, overrides):
    model, params = _lm(**overrides)
    tokens = _ids((B, T), 5)
    full = jax.jit(model.apply)({"params": params}, tokens).logits  # [B, T, V]
    cache = gen.init_cache(model, B, T)
    logits, cache = jax.jit(gen.prefill, static_argnums=0)(
        model, params, cache, tokens[:, :prompt])
    np.testing.assert_allclose(logits, full[:, :prompt], atol=2e-5)
    step = jax.jit(gen.lm_step_fn(model, params))
    for t in range(prompt, T):
        logits, cache = step(tokens[:, t], cache, jnp.int32(t))  # [B, V]
        np.testing.assert_allclose(logits, full[:, t], atol=2e-5)


def test_ragged_prompts_continue_each_row_after_its_own_length():
    model, params = _lm(scan_layers=True)
    tokens = _ids((B, T), 6)
    full = model.apply({"params": params}, tokens).logits
    lengths = jnp.array([2, 4])
    cache = gen.init_cache(model, B, T)
    _, cache = gen.prefill(model, params, cache, tokens[:, :4], lengths)
    nxt = jnp.stack([tokens[0, 2], tokens[1, 4]])  # [B]
    logits, _ = gen.lm_step_fn(model, params)(nxt, cache, jnp.int32(0))
    np.testing.assert_allclose(logits[0], full[0, 2], atol=2e-5)
    np.testing.assert_allclose(logits[1], full[1, 4], atol=2e-5)


def test_cached_translation_decoding_equals_full_forward():
    model, params, src = _seq2seq(scan_layers=True)
    src_lengths = jnp.array([6, 3])
    tgt = _ids((B, T), 7)
    full = model.apply({"params": params}, src, tgt, src_lengths=src_lengths)
    state = seq2seq.initial_state(model, params, src, src_lengths, T)
    # The encoder output's keys and values were projected once, into every layer's cache
    # (scanned: [B, L, S, K, H]); the steps read them there, never the memory again, so a
    # memory of zeros decodes the same.
    cross = jax.tree_util.tree_flatten_with_path(state.cache)[0]
    assert {jax.tree_util.keystr(p).split("'")[-2] for p, _ in cross} >= {
        "cached_cross_key", "cached_cross_value", "cached_key", "cache_index"}
    state = state._replace(memory=state.memory._replace(
        states=jnp.zeros_like(state.memory.states)))
    step = jax.jit(seq2seq.step_fn_for(model, params))
    for t in range(T):
        logits, state = step(tgt[:, t], state, jnp.int32(t))
        np.testing.assert_allclose(logits, full.logits[:, t], atol=2e-5)


def _naive_greedy(logits_fn, buffer, lengths, steps):
    """Greedy without a cache: re-run the full model on the growing rows of ``buffer``.

    buffer: [B, N] with each row's prefix in its first ``lengths[b]`` slots and room for
    ``steps`` more. Causality makes the slots after a row's end irrelevant, so one
    fixed-shape (one compile) forward per step serves every row.
    """
    buffer, pos = np.array(buffer), np.array(lengths)
    rows = np.arange(buffer.shape[0])
    done = np.zeros(buffer.shape[0], bool)
    out = np.zeros((buffer.shape[0], steps), np.int32)
    for i in range(steps):
        logits = np.asarray(logits_fn(jnp.asarray(buffer)))  # [B, N, V]
        token = np.where(done, 0, logits[rows, pos - 1].argmax(-1))  # [B]
        out[:, i], done = token, done | (token == EOS)
        buffer[rows, np.minimum(pos, buffer.shape[1] - 1)] = token
        pos += 1
    return out


def test_generate_lm_greedy_equals_uncached_greedy_for_ragged_prompts():
    model, params = _lm()
    prompt, lengths = _ids((B, 4), 8), jnp.array([1, 4])
    out = gen.generate_lm(model, params, prompt, lengths, max_new_tokens=5, eos_id=EOS)
    assert out.tokens.shape == (B, 5)
    buffer = jnp.pad(prompt, ((0, 0), (0, 5)))  # [B, 4 + 5]
    apply = jax.jit(lambda x: model.apply({"params": params}, x).logits)
    np.testing.assert_array_equal(out.tokens, _naive_greedy(apply, buffer, lengths, 5))


def test_translate_greedy_equals_uncached_greedy():
    model, params, src = _seq2seq()
    src_lengths = jnp.array([6, 4])
    out = seq2seq.generate(model, params, src, src_lengths, max_len=5, bos_id=1, eos_id=EOS)
    buffer = jnp.ones((B, 6), jnp.int32)  # <bos> = 1, then room for 5 tokens
    apply = jax.jit(lambda tgt: model.apply({"params": params}, src, tgt,
                                            src_lengths=src_lengths).logits)
    np.testing.assert_array_equal(out.tokens, _naive_greedy(apply, buffer, np.ones(B, int), 5))


def test_beam_of_one_equals_greedy():
    model, params = _lm()
    prompt = _ids((B, 3), 9)
    greedy = gen.generate_lm(model, params, prompt, max_new_tokens=6, eos_id=EOS)
    beam = gen.generate_lm(model, params, prompt, max_new_tokens=6, eos_id=EOS, method="beam",
                           beam_size=1, length_penalty=0.0).best()
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_allclose(beam.scores, greedy.scores, atol=1e-5)
    s2s, s2s_params, src = _seq2seq()
    greedy = seq2seq.generate(s2s, s2s_params, src, max_len=6, bos_id=1, eos_id=EOS)
    beam = seq2seq.generate(s2s, s2s_params, src, max_len=6, bos_id=1, eos_id=EOS,
                            method="beam", beam_size=1, length_penalty=0.0).best()
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)


def test_beam_scores_are_the_full_models_log_probabilities():
    model, params = _lm()
    prompt = _ids((B, 3), 10)
    out = gen.generate_lm(model, params, prompt, max_new_tokens=4, eos_id=EOS, method="beam",
                          beam_size=3, length_penalty=0.0)
    assert out.tokens.shape == (B, 3, 4)
    assert np.all(np.diff(np.asarray(out.scores), axis=1) <= 1e-6)  # best first
    # Rescore all B * K hypotheses in one forward pass; tokens after a row's EOS are masked.
    seqs = jnp.concatenate([jnp.repeat(prompt[:, None], 3, axis=1), out.tokens], axis=-1)
    seqs = seqs.reshape(B * 3, 7)  # [B*K, P + 4]
    logp = jax.nn.log_softmax(model.apply({"params": params}, seqs).logits)  # [B*K, 7, V]
    token_logp = jnp.take_along_axis(logp[:, 2:-1], seqs[:, 3:, None], axis=-1)[..., 0]
    real = jnp.arange(4)[None, :] < out.lengths.reshape(-1, 1)  # [B*K, 4]
    want = jnp.sum(jnp.where(real, token_logp, 0.0), axis=-1).reshape(B, 3)
    np.testing.assert_allclose(out.scores, want, atol=1e-4)


def test_sampling_is_reproducible_and_top_k_1_is_greedy():
    model, params = _lm(scan_layers=True)
    prompt = _ids((B, 2), 11)
    kwargs = dict(max_new_tokens=6, eos_id=EOS, method="sample", temperature=2.0)
    a = gen.generate_lm(model, params, prompt, key=jax.random.key(1), **kwargs)
    again = gen.generate_lm(model, params, prompt, key=jax.random.key(1), **kwargs)
    other = gen.generate_lm(model, params, prompt, key=jax.random.key(2), **kwargs)
    np.testing.assert_array_equal(a.tokens, again.tokens)
    assert not np.array_equal(a.tokens, other.tokens)
    greedy = gen.generate_lm(model, params, prompt, max_new_tokens=6, eos_id=EOS)
    top1 = gen.generate_lm(model, params, prompt, key=jax.random.key(3),
                           **{**kwargs, "top_k": 1})
    np.testing.assert_array_equal(top1.tokens, greedy.tokens)


def test_generation_errors_name_the_argument():
    model, params = _lm(positional="learned")
    prompt = _ids((B, 3), 12)
    with pytest.raises(ValueError, match="method"):
        gen.generate_lm(model, params, prompt, max_new_tokens=2, eos_id=EOS, method="topk")
    with pytest.raises(ValueError, match="key"):
        gen.generate_lm(model, params, prompt, max_new_tokens=2, eos_id=EOS, method="sample")
    with pytest.raises(ValueError, match="prompt_lengths"):
        gen.generate_lm(model, params, prompt, jnp.array([0, 3]), max_new_tokens=2, eos_id=EOS)
    with pytest.raises(ValueError, match="max_len"):
        gen.generate_lm(model, params, prompt, max_new_tokens=64, eos_id=EOS)
    with pytest.raises(ValueError, match="variables\\['params'\\]"):
        gen.generate_lm(model, {"params": params}, prompt, max_new_tokens=2, eos_id=EOS)


def test_translation_errors_name_the_argument():
    model, params, src = _seq2seq(positional="learned")
    with pytest.raises(ValueError, match="method"):
        seq2seq.generate(model, params, src, max_len=2, method="topk")
    with pytest.raises(ValueError, match="key"):
        seq2seq.generate(model, params, src, max_len=2, method="sample")
    with pytest.raises(ValueError, match="max_len"):
        seq2seq.generate(model, params, src, max_len=model.config.max_len + 1)
    with pytest.raises(ValueError, match="variables\\['params'\\]"):
        seq2seq.generate(model, {"params": params}, src, max_len=2)
