"""Decoder-only generation with a KV cache through the shared ``zoo.decoding`` module.

Glossary: B batch, P prompt length, S cache length (keys), T new tokens (max_new_tokens),
V vocabulary, W beam size.

    out = generate_lm(lm, params, prompt, prompt_lengths, max_new_tokens=64, eos_id=2)

(The encoder–decoder is decoded by ``zoo.seq2seq.generate``, like the RNN models.)

The decoding state is the model's 'cache' collection (keys/values, write
indices and the position counter, all with batch first). A prompt of any length is *prefilled*
in one call: its first ``length - 1`` tokens go into the cache together,
right-padded prompts advancing each row by its own length, and its last token
is the ``first_tokens`` of the decoding loop, whose first step then predicts
the first new token. Each (model, method, options) compiles once: a jitted
prefill + ``lax.while_loop`` with a fixed maximum length.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from zoo import decoding
from zoo.nn.embed import concrete_value
from zoo.seq2seq import check_params
from zoo.transformer.lm import DecoderLM

Array = jax.Array
Output = decoding.DecodeOutput | decoding.BeamSearchOutput


def init_cache(model: DecoderLM, batch: int, length: int) -> Any:
    """An empty KV cache for ``batch`` sequences of up to ``length`` tokens (leaves [B, ...]).

    Built from shapes alone (``jax.eval_shape``): no parameters are initialised.
    """
    tokens = jnp.zeros((batch, length), jnp.int32)  # [B, S]
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, decode=True)["cache"])
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def prefill(model: DecoderLM, params: Any, cache: Any, tokens: Array,
            lengths: Array | None = None) -> tuple[Array, Any]:
    """Writes tokens [B, T] (right-padded, ``lengths`` [B] real) into the cache.

    Returns (logits [B, T, V], cache). Each row's cache advances by its length, so
    the next call continues every sequence right after its own last real token.
    """
    out, variables = model.apply({"params": params, "cache": cache}, tokens, lengths=lengths,
                                 decode=True, mutable=["cache"])
    return out.logits, variables["cache"]


def lm_step_fn(model: DecoderLM, params: Any) -> decoding.StepFn:
    """``zoo.decoding`` step function of a DecoderLM; the state is its cache."""

    def step_fn(tokens: Array, cache: Any, step: Array) -> tuple[Array, Any]:
        logits, cache = prefill(model, params, cache, tokens[:, None])  # [B, 1, V]
        return logits[:, 0], cache

    return step_fn


def _check_length(model: DecoderLM, length: int, what: str) -> None:
    # Rotary positions have no table; added position tables end at max_len.
    if model.config.positional != "rotary" and length > model.config.max_len:
        raise ValueError(f"{what} = {length} exceeds the model's max_len = "
                         f"{model.config.max_len} (positional={model.config.positional!r})")


def _freeze(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    # Options become the compile cache key, so they must be hashable (ints, floats, None).
    return tuple(sorted(options.items()))


@functools.lru_cache(maxsize=64)
def _compiled_lm(model: DecoderLM, method: str, max_new_tokens: int,
                 options: tuple[tuple[str, Any], ...]):
    def run(params, prompt, prompt_lengths, key):
        b, p = prompt.shape
        cache = init_cache(model, b, p - 1 + max_new_tokens)
        if p > 1:  # a [B, 0] prefill would be an empty attention
            _, cache = prefill(model, params, cache, prompt[:, :-1], prompt_lengths - 1)
        last = jnp.take_along_axis(prompt, (prompt_lengths - 1)[:, None], axis=1)[:, 0]  # [B]
        extra = {} if key is None else {"key": key}
        return decoding.METHODS[method](lm_step_fn(model, params), cache, last,
                               max_len=max_new_tokens, **extra, **dict(options))

    return jax.jit(run)


def generate_lm(model: DecoderLM, params: Any, prompt: Array, prompt_lengths: Array | None = None,
                *, max_new_tokens: int, eos_id: int, method: str = "greedy", pad_id: int = 0,
                key: Array | None = None, **options: Any) -> Output:
    """Continues right-padded prompts [B, P] (``prompt_lengths`` [B] >= 1 real tokens).

    method 'greedy' -> DecodeOutput(tokens [B, T], lengths [B], scores [B]);
    'beam' -> BeamSearchOutput(tokens [B, W, T], ...) with options
    ``beam_size``, ``length_penalty`` (GNMT alpha; ``.best()`` for the top hypothesis);
    'sample' (needs ``key``) -> DecodeOutput, options ``temperature``, ``top_k``, ``top_p``.
    Tokens exclude the prompt.
    """
    decoding.check_method(method, key)
    check_params(params)
    prompt = jnp.asarray(prompt)
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ValueError(f"prompt must be [B, P] with P >= 1, got shape {prompt.shape}")
    if prompt_lengths is None:
        prompt_lengths = jnp.full(prompt.shape[:1], prompt.shape[1], jnp.int32)
    prompt_lengths = jnp.asarray(prompt_lengths, jnp.int32)
    if prompt_lengths.shape != prompt.shape[:1]:
        raise ValueError(f"prompt_lengths must be [B] = [{prompt.shape[0]}], got shape "
                         f"{prompt_lengths.shape}")
    known = concrete_value(prompt_lengths)  # None under an outer jit
    if known is not None and (known.min() < 1 or known.max() > prompt.shape[1]):
        raise ValueError(f"prompt_lengths must lie in [1, P] = [1, {prompt.shape[1]}], got "
                         f"{known.tolist()}")
    _check_length(model, prompt.shape[1] - 1 + max_new_tokens, "P - 1 + max_new_tokens")
    options = dict(options, eos_id=eos_id, pad_id=pad_id)
    fn = _compiled_lm(model, method, max_new_tokens, _freeze(options))
    return fn(params, prompt, prompt_lengths, key)
