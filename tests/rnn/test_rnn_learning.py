"""Learning, not just running: attention seq2seq learns string reversal.

Held-out sources never appear in training. Lengths start at 3 so that the
held-out set cannot swallow a whole length class (there are only 10 strings of
length 1), which would leave the model untrained on it. The step is the one
training core (``zoo.train.state``) on the seq2seq family's loss; accuracy is
exact match of ``zoo.seq2seq.generate``'s greedy decodes.
"""

import jax
import numpy as np
import optax
import pytest

from configs import date_seq2seq
from zoo import seq2seq
from zoo.data import reverse_pairs, seq2seq_arrays, task_vocab
from zoo.train import config as config_lib
from zoo.train.families import Seq2SeqFamily
from zoo.train.state import make_train_step

ALPHABET, LENGTHS, BATCH = "abcdefghij", (3, 10), 64
LEARNING_RATE = 1e-2


def _family() -> Seq2SeqFamily:
    c = date_seq2seq.get_config("tiny")
    c.model = {"name": "seq2seq_luong_dot_lstm"}
    c.optim.label_smoothing = 0.0  # the plain cross-entropy
    return Seq2SeqFamily(config_lib.validate(c))


def exact_match(model, params, arrays) -> np.ndarray:
    """[B] bool: the greedy output (up to and including EOS, then pad) equals tgt_out."""
    tgt_out = np.asarray(arrays.tgt_out)  # [B, T]
    out = seq2seq.generate(model, params, arrays.src, arrays.src_lengths,
                           max_len=tgt_out.shape[1])
    return np.all(np.asarray(out.tokens) == tgt_out, axis=1)


@pytest.mark.slow
def test_luong_attention_learns_reversal_to_99_percent():
    vocab = task_vocab("reverse", ALPHABET)
    held_out = reverse_pairs(500, seed=10_000, length_range=LENGTHS, alphabet=ALPHABET)
    held_sources = {s for s, _ in held_out}
    src_len, tgt_len = LENGTHS[1], LENGTHS[1] + 1

    def batch(i):
        pairs = reverse_pairs(BATCH + 8, seed=i, length_range=LENGTHS, alphabet=ALPHABET)
        pairs = [p for p in pairs if p[0] not in held_sources][:BATCH]
        return seq2seq_arrays(pairs, vocab, src_len=src_len, tgt_len=tgt_len)._asdict()

    family = _family()
    model = family.build_model({"src": vocab.size, "tgt": vocab.size})
    state = family.init_state(model, optax.adam(LEARNING_RATE), jax.random.PRNGKey(0))
    train_step = jax.jit(make_train_step(family.loss_fn(model),
                                         optax.constant_schedule(LEARNING_RATE)),
                         donate_argnums=0)
    test = seq2seq_arrays(held_out, vocab, src_len=src_len, tgt_len=tgt_len)

    accuracy = 0.0
    for i in range(1, 1501):
        state, metrics = train_step(state, batch(i))
        if i % 250 == 0:
            accuracy = float(np.mean(exact_match(model, state.params, test)))
            print(f"step {i}: loss {float(metrics['loss']):.4f} exact match {accuracy:.3f}")
            if accuracy >= 0.99:
                break
    assert accuracy >= 0.99, f"held-out exact match {accuracy:.3f} < 0.99 after {i} steps"
