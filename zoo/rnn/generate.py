"""Decoding a `Seq2Seq` with the shared `zoo.decoding` module.

Glossary: B batch, S source length, K beam size, L max_len.

    out = generate(model, params, src, src_lengths, method="beam", max_len=20, beam_size=4)

The decoding state is `(memory, carry)`: the encoder output (attended at every
step, so beam search tiles it per beam) and the decoder carry; every leaf has
leading dim B, as `zoo.decoding` requires. The whole call (encoder + decoding
loop) is jitted once per (model, method, options) and cached.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from zoo import decoding
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID
from zoo.rnn.seq2seq import Seq2Seq

# method -> the decoding function; each takes (step_fn, state, first_tokens, **options).
METHODS: dict[str, Callable[..., Any]] = {
    "greedy": decoding.greedy_decode,
    "beam": decoding.beam_search,
    "sample": decoding.sample,
}


def step_fn_for(model: Seq2Seq, params: Any) -> decoding.StepFn:
    """The `zoo.decoding` step function of a Seq2Seq; state = (memory, carry)."""

    def step_fn(tokens: jax.Array, state: Any, step: jax.Array):
        memory, carry = state
        logits, carry = model.apply(params, memory, carry, tokens,
                                    method=Seq2Seq.decode_step)  # [B, V]
        return logits, (memory, carry)

    return step_fn


def initial_state(model: Seq2Seq, params: Any, src: jax.Array, src_lengths: jax.Array):
    """(memory, carry) before the first decoder input."""
    memory = model.apply(params, src, src_lengths, method=Seq2Seq.encode)
    carry = model.apply(params, memory, method=Seq2Seq.init_decoder_carry)
    return memory, carry


@functools.lru_cache(maxsize=64)
def _compiled(model: Seq2Seq, method: str, options: tuple[tuple[str, Any], ...]):
    options = dict(options)
    decode = METHODS[method]
    bos_id = options.pop("bos_id")

    def run(params, src, src_lengths, key):
        state = initial_state(model, params, src, src_lengths)
        first = jnp.full((src.shape[0],), bos_id, jnp.int32)  # [B]
        extra = {} if key is None else {"key": key}
        return decode(step_fn_for(model, params), state, first, **extra, **options)

    return jax.jit(run)


def generate(
    model: Seq2Seq,
    params: Any,
    src: jax.Array,
    src_lengths: jax.Array,
    *,
    method: str = "greedy",
    max_len: int,
    bos_id: int = BOS_ID,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    key: jax.Array | None = None,
    **options: Any,
) -> decoding.DecodeOutput | decoding.BeamSearchOutput:
    """Decodes src [B, S] (lengths [B]) into up to `max_len` target tokens per row.

    method 'greedy' -> DecodeOutput(tokens [B, L], lengths [B], scores [B]);
    'beam' -> BeamSearchOutput(tokens [B, K, L], ...) with options beam_size,
    length_penalty (use `.best()` for the top hypothesis); 'sample' (needs `key`) ->
    DecodeOutput, options temperature, top_k, top_p.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if (key is None) == (method == "sample"):
        raise ValueError(f"key is required for method='sample' and only for it; got "
                         f"method={method!r}, key={'None' if key is None else 'given'}")
    options = dict(options, max_len=max_len, eos_id=eos_id, pad_id=pad_id, bos_id=bos_id)
    # Option values become part of the cache key, so they must be hashable (ints, floats).
    fn = _compiled(model, method, tuple(sorted(options.items())))
    return fn(params, jnp.asarray(src), jnp.asarray(src_lengths), key)
