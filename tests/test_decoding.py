"""zoo.decoding on hand-made step functions: EOS and padding, beam search vs greedy and vs
brute force, sampling filters and keys, jit, argument errors, methods by name."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.decoding import (
    METHODS,
    beam_search,
    check_method,
    greedy_decode,
    length_penalty_gnmt,
    sample,
    top_k_filter,
    top_p_filter,
)

BOS, EOS, A, Bt = 1, 2, 3, 4  # token ids of the hand-made models (0 is pad)


def bigram_step(table):
    """step_fn of a bigram model: p(next | last) = table[last]; state = a step counter row."""
    log_table = jnp.log(jnp.asarray(table, jnp.float32))  # [V, V]

    def step_fn(tokens, state, step):
        # The state is unused by the model but must survive tiling and reordering.
        return log_table[tokens], {"count": state["count"] + 1, "shared": state["shared"]}

    return step_fn


def bigram_state(batch):
    return {"count": jnp.zeros((batch, 2), jnp.int32), "shared": jnp.float32(3.0)}


def _table(rows, vocab=5):
    """A [V, V] transition table from {last: {next: p}}; unspecified rows are uniform."""
    table = np.full((vocab, vocab), 1.0 / vocab)
    for last, probs in rows.items():
        table[last] = 1e-9
        for nxt, p in probs.items():
            table[last, nxt] = p
    return table / table.sum(-1, keepdims=True)


# The garden path: A looks best first, but only B leads to a confident EOS.
GARDEN = _table({BOS: {A: 0.6, Bt: 0.4}, A: {A: 0.36, Bt: 0.34, EOS: 0.3},
                 Bt: {EOS: 0.99, A: 0.01}})
# A straight line BOS -> A -> B -> EOS.
LINE = _table({BOS: {A: 0.9, Bt: 0.1}, A: {Bt: 0.8, EOS: 0.2}, Bt: {EOS: 0.7, A: 0.3}})


def _first(batch=2):
    return jnp.full((batch,), BOS, jnp.int32)


# ---------------------------------------------------------------------------------- greedy


def test_greedy_stops_at_eos_and_pads_after_it():
    out = greedy_decode(bigram_step(LINE), bigram_state(2), _first(), max_len=6, eos_id=EOS)
    np.testing.assert_array_equal(out.tokens, [[A, Bt, EOS, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(out.lengths, [3, 3])
    np.testing.assert_allclose(out.scores, np.log([0.9 * 0.8 * 0.7] * 2), rtol=1e-5)
    out = greedy_decode(bigram_step(LINE), bigram_state(2), _first(), max_len=6, eos_id=EOS,
                        pad_id=9)
    np.testing.assert_array_equal(out.tokens[0], [A, Bt, EOS, 9, 9, 9])


def test_greedy_without_eos_runs_to_max_len():
    out = greedy_decode(bigram_step(GARDEN), bigram_state(1), _first(1), max_len=4, eos_id=EOS)
    np.testing.assert_array_equal(out.tokens, [[A, A, A, A]])
    np.testing.assert_array_equal(out.lengths, [4])


def test_rows_finish_independently():
    first = jnp.array([BOS, Bt], jnp.int32)  # row 1 starts at B, so it ends at once
    out = greedy_decode(bigram_step(LINE), bigram_state(2), first, max_len=4, eos_id=EOS)
    np.testing.assert_array_equal(out.tokens, [[A, Bt, EOS, 0], [EOS, 0, 0, 0]])
    np.testing.assert_array_equal(out.lengths, [3, 1])


def test_decoding_jits_with_static_arguments():
    step_fn = bigram_step(LINE)
    greedy = jax.jit(functools.partial(greedy_decode, step_fn, max_len=5, eos_id=EOS))
    beam = jax.jit(functools.partial(beam_search, step_fn, beam_size=3, max_len=5, eos_id=EOS))
    samp = jax.jit(functools.partial(sample, step_fn, max_len=5, eos_id=EOS, top_k=2))
    np.testing.assert_array_equal(greedy(bigram_state(2), _first()).tokens,
                                  greedy_decode(step_fn, bigram_state(2), _first(), max_len=5,
                                                eos_id=EOS).tokens)
    assert beam(bigram_state(2), _first()).tokens.shape == (2, 3, 5)
    assert samp(bigram_state(2), _first(), jax.random.key(0)).tokens.shape == (2, 5)


# ---------------------------------------------------------------------------------- beam search


def test_beam_finds_the_best_sequence_where_greedy_does_not():
    step_fn = bigram_step(GARDEN)
    greedy = greedy_decode(step_fn, bigram_state(2), _first(), max_len=5, eos_id=EOS)
    assert greedy.tokens[0, 0] == A and greedy.lengths[0] == 5  # wanders on A, never ends
    beam = beam_search(step_fn, bigram_state(2), _first(), beam_size=2, max_len=5, eos_id=EOS)
    np.testing.assert_array_equal(beam.tokens[:, 0], [[Bt, EOS, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(beam.lengths[:, 0], [2, 2])
    expected = np.log(0.4 * 0.99) / ((5 + 2) / 6) ** 0.6
    np.testing.assert_allclose(beam.scores[:, 0], expected, rtol=1e-5)
    assert np.all(np.diff(np.asarray(beam.scores), axis=1) <= 0)  # best first
    np.testing.assert_array_equal(beam.best().tokens, beam.tokens[:, 0])


@pytest.mark.parametrize("seed", range(4))
def test_beam_size_one_equals_greedy(seed):
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(6, 0.5), size=6)  # random bigram model over 6 tokens
    first = jnp.asarray(rng.integers(0, 6, size=5), jnp.int32)
    step_fn = bigram_step(table)
    greedy = greedy_decode(step_fn, bigram_state(5), first, max_len=8, eos_id=EOS)
    beam = beam_search(step_fn, bigram_state(5), first, beam_size=1, max_len=8, eos_id=EOS,
                       length_penalty=0.0).best()
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_array_equal(beam.lengths, greedy.lengths)
    np.testing.assert_allclose(beam.scores, greedy.scores, rtol=1e-5)


def _trigram_step(log_table):
    """p(next | previous two tokens); the state carries the older one, so a wrong
    reordering of the state across beams changes the answer."""

    def step_fn(tokens, state, step):
        return log_table[state["older"], tokens], {"older": tokens, "shared": state["shared"]}

    return step_fn


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_beam_equals_brute_force(alpha):
    vocab, max_len, batch = 4, 3, 3
    log_table = jnp.log(jnp.asarray(
        np.random.default_rng(7).dirichlet(np.ones(vocab), size=(vocab, vocab)), jnp.float32))
    first = jnp.array([BOS, 0, 3], jnp.int32)
    state = {"older": jnp.zeros((batch,), jnp.int32), "shared": jnp.int32(1)}
    out = beam_search(_trigram_step(log_table), state, first, beam_size=64, max_len=max_len,
                      eos_id=EOS, length_penalty=alpha)
    table = np.asarray(log_table, np.float64)
    for b in range(batch):
        best = -np.inf
        for n in range(1, max_len + 1):
            for seq in itertools.product(range(vocab), repeat=n):
                if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                    continue  # finished exactly at its EOS, or cut off at max_len
                older, last, logp = 0, int(first[b]), 0.0
                for tok in seq:
                    logp += table[older, last, tok]
                    older, last = last, tok
                best = max(best, logp / ((5 + n) / 6) ** alpha)
        np.testing.assert_allclose(out.scores[b, 0], best, rtol=1e-5)


def test_beam_invariant_leaves_are_never_reordered_and_change_nothing():
    """A per-example leaf the step only reads (like an encoder's output) decodes the same
    whether or not it is declared beam-invariant; the reordered leaves still are."""
    vocab, batch = 5, 3
    rng = np.random.default_rng(3)
    log_table = jnp.log(jnp.asarray(rng.dirichlet(np.ones(vocab), size=(vocab, vocab)),
                                    jnp.float32))
    bias = jnp.asarray(rng.normal(size=(batch, vocab)), jnp.float32)  # per example

    def step_fn(tokens, state, step):
        logits = log_table[state["older"], tokens] + state["memory"]  # [B*W, V]
        return logits, {"older": tokens, "memory": state["memory"]}

    first = jnp.array([BOS, 0, 3], jnp.int32)
    state = {"older": jnp.zeros((batch,), jnp.int32), "memory": bias}
    options = dict(beam_size=3, max_len=5, eos_id=EOS, length_penalty=0.6)
    plain = beam_search(step_fn, state, first, **options)
    kept = beam_search(step_fn, state, first, **options,
                       beam_invariant=lambda path: path[0].key == "memory")
    for a, b in zip(plain, kept, strict=True):
        np.testing.assert_array_equal(a, b)
    # Declaring the reordered leaf invariant too must change the answer: it is honoured.
    wrong = beam_search(step_fn, state, first, **options, beam_invariant=lambda path: True)
    assert not np.array_equal(wrong.scores, plain.scores)


def test_beam_lengths_and_padding_follow_eos():
    out = beam_search(bigram_step(LINE), bigram_state(2), _first(), beam_size=3, max_len=6,
                      eos_id=EOS, pad_id=7)
    tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
    for b, k in itertools.product(range(2), range(3)):
        n = lengths[b, k]
        assert tokens[b, k, n - 1] == EOS and EOS not in tokens[b, k, : n - 1]
        assert np.all(tokens[b, k, n:] == 7)


def test_length_penalty_formula():
    np.testing.assert_allclose(length_penalty_gnmt(7, 0.6), (12 / 6) ** 0.6, rtol=1e-6)
    assert float(length_penalty_gnmt(3, 0.0)) == 1.0


# ---------------------------------------------------------------------------------- sampling


def _random_step(vocab=7, seed=0):
    table = np.random.default_rng(seed).dirichlet(np.ones(vocab), size=vocab)
    return bigram_step(table)


@pytest.mark.parametrize("options", [dict(top_k=1), dict(temperature=1e-6), dict(top_p=1e-6)])
def test_sampling_that_cannot_vary_is_greedy(options):
    step_fn, first = _random_step(), jnp.arange(6, dtype=jnp.int32) % 7
    greedy = greedy_decode(step_fn, bigram_state(6), first, max_len=8, eos_id=EOS)
    sampled = sample(step_fn, bigram_state(6), first, jax.random.key(3), max_len=8, eos_id=EOS,
                     **options)
    np.testing.assert_array_equal(sampled.tokens, greedy.tokens)
    np.testing.assert_allclose(sampled.scores, greedy.scores, rtol=1e-5)


def test_sampling_is_deterministic_by_key():
    step_fn, first = _random_step(), jnp.full((16,), BOS, jnp.int32)

    def draw(seed):
        return sample(step_fn, bigram_state(16), first, jax.random.key(seed), max_len=10,
                      eos_id=EOS, temperature=1.5).tokens

    np.testing.assert_array_equal(draw(0), draw(0))
    assert not np.array_equal(draw(0), draw(1))


def test_sampling_follows_the_filtered_distribution():
    probs = np.array([0.05, 0.1, 0.15, 0.3, 0.4])  # next-token distribution after any token
    step_fn = bigram_step(np.tile(probs, (5, 1)))
    first = jnp.full((4000,), BOS, jnp.int32)

    def first_tokens(**options):
        out = sample(step_fn, bigram_state(4000), first, jax.random.key(0), max_len=1,
                     eos_id=EOS, **options)
        return np.bincount(np.asarray(out.tokens[:, 0]), minlength=5) / 4000

    np.testing.assert_allclose(first_tokens(), probs, atol=0.03)
    top2 = first_tokens(top_k=2)
    np.testing.assert_allclose(top2, [0, 0, 0, 3 / 7, 4 / 7], atol=0.03)
    assert top2[:3].sum() == 0
    nucleus = first_tokens(top_p=0.6)  # 0.4 + 0.3 reaches 0.6: two tokens
    assert nucleus[:3].sum() == 0
    hot = first_tokens(temperature=100.0)  # nearly uniform
    np.testing.assert_allclose(hot, 0.2, atol=0.03)


def test_filters_directly():
    logits = jnp.log(jnp.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]))
    kept = np.isfinite(np.asarray(top_k_filter(logits, 2)))
    np.testing.assert_array_equal(kept, [[0, 0, 1, 1], [1, 1, 0, 0]])
    kept = np.isfinite(np.asarray(top_p_filter(logits, 0.75)))  # 0.4 + 0.3 < 0.75 -> three
    np.testing.assert_array_equal(kept, [[0, 1, 1, 1], [1, 1, 1, 0]])
    assert np.isfinite(np.asarray(top_p_filter(logits, 1.0))).all()


# ---------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "fn, options, name",
    [
        (beam_search, dict(beam_size=0), "beam_size"),
        (beam_search, dict(beam_size=2.0), "beam_size"),
        (beam_search, dict(beam_size=2, length_penalty=-1.0), "length_penalty"),
        (greedy_decode, dict(max_len=0), "max_len"),
        (greedy_decode, dict(eos_id=-1), "eos_id"),
        (sample, dict(temperature=0.0), "temperature"),
        (sample, dict(temperature=-1.0), "temperature"),
        (sample, dict(top_k=0), "top_k"),
        (sample, dict(top_k=6), "top_k"),  # > V = 5, caught at trace time
        (sample, dict(top_p=0.0), "top_p"),
        (sample, dict(top_p=1.5), "top_p"),
    ],
)
def test_bad_arguments_name_themselves(fn, options, name):
    options = {"max_len": 3, "eos_id": EOS, **options}
    args = (jax.random.key(0),) if fn is sample else ()
    with pytest.raises(ValueError, match=name):
        fn(bigram_step(LINE), bigram_state(2), _first(), *args, **options)


def test_bad_first_tokens_and_state():
    with pytest.raises(ValueError, match="first_tokens"):
        greedy_decode(bigram_step(LINE), bigram_state(2), jnp.ones((2, 1), jnp.int32),
                      max_len=3, eos_id=EOS)
    with pytest.raises(ValueError, match="leading dim B"):
        beam_search(bigram_step(LINE), bigram_state(3), _first(2), beam_size=2, max_len=3,
                    eos_id=EOS)


# ---------------------------------------------------------------------------------- by name


def test_methods_by_name():
    assert METHODS == {"greedy": greedy_decode, "beam": beam_search, "sample": sample}
    for name, fn in METHODS.items():  # one calling convention: (step_fn, state, first, ...)
        options = {"key": jax.random.key(0)} if name == "sample" else {}
        options |= {"beam_size": 2} if name == "beam" else {}
        out = fn(bigram_step(LINE), bigram_state(2), _first(), max_len=4, eos_id=EOS, **options)
        tokens = out.best().tokens if name == "beam" else out.tokens
        assert tokens.shape == (2, 4)


def test_check_method():
    check_method("greedy", None)
    check_method("beam", None)
    check_method("sample", jax.random.key(0))
    with pytest.raises(ValueError, match="method must be one of"):
        check_method("topk", None)
    with pytest.raises(ValueError, match="key is required"):
        check_method("sample", None)
    with pytest.raises(ValueError, match="key is required"):
        check_method("greedy", jax.random.key(0))
