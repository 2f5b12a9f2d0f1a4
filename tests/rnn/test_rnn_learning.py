"""Learning, not just running: attention seq2seq learns string reversal.

Held-out sources never appear in training. Lengths start at 3 so that the
held-out set cannot swallow a whole length class (there are only 10 strings of
length 1), which would leave the model untrained on it.
"""

import jax
import numpy as np
import optax
import pytest

from zoo import registry
from zoo.data import reverse_pairs, seq2seq_arrays, task_vocab
from zoo.rnn import exact_match, make_train_step

ALPHABET, LENGTHS, BATCH = "abcdefghij", (3, 10), 64


@pytest.mark.slow
def test_luong_attention_learns_reversal_to_99_percent():
    vocab = task_vocab("reverse", ALPHABET)
    held_out = reverse_pairs(500, seed=10_000, length_range=LENGTHS, alphabet=ALPHABET)
    held_sources = {s for s, _ in held_out}
    src_len, tgt_len = LENGTHS[1], LENGTHS[1] + 1

    def batch(i):
        pairs = reverse_pairs(BATCH + 8, seed=i, length_range=LENGTHS, alphabet=ALPHABET)
        pairs = [p for p in pairs if p[0] not in held_sources][:BATCH]
        return seq2seq_arrays(pairs, vocab, src_len=src_len, tgt_len=tgt_len)

    model = registry.build("seq2seq_luong_dot_lstm", src_vocab_size=vocab.size,
                           tgt_vocab_size=vocab.size)
    first = batch(0)
    params = jax.jit(model.init)(jax.random.key(0), first.src, first.src_lengths, first.tgt_in)
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)
    train_step = make_train_step(model, optimizer)
    test = seq2seq_arrays(held_out, vocab, src_len=src_len, tgt_len=tgt_len)

    accuracy = 0.0
    for i in range(1, 1501):
        params, opt_state, metrics = train_step(params, opt_state, batch(i), jax.random.key(i))
        if i % 250 == 0:
            accuracy = float(np.mean(exact_match(model, params, test)))
            print(f"step {i}: loss {float(metrics.loss):.4f} exact match {accuracy:.3f}")
            if accuracy >= 0.99:
                break
    assert accuracy >= 0.99, f"held-out exact match {accuracy:.3f} < 0.99 after {i} steps"
