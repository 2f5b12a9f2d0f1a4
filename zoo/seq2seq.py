"""The encoder–decoder interface, and generation from any model that has it.

Glossary: B batch, S source length, T target length (max_len when generating), V vocabulary,
W beam size.

``zoo.rnn.Seq2Seq`` and ``zoo.transformer.EncoderDecoder`` are called the same way:

    out = model.apply({"params": params}, src, tgt_in, src_lengths=src_lengths)
    out.logits      # [B, T, V] float32, teacher forcing on tgt_in (<bos> y_1 .. y_n-1)
    out.attention   # [B, T, S] float32 alignment weights, or None (no single alignment)

and decoded the same way, one token at a time, by ``generate`` below:

    memory = model.encode(src, src_lengths)              # pytree, leaves [B, ...]
    carry = model.init_carry(memory, max_len)            # may create the 'cache' collection
    logits, carry = model.decode_step(memory, carry, tokens)   # tokens [B] -> [B, V]

For the RNN the carry is the recurrent state and there is no 'cache'; for the
Transformer the carry is empty and the state lives in the 'cache' collection
(keys and values of past positions), which ``init_carry`` creates and
``decode_step`` extends. ``generate`` threads both through ``zoo.decoding``,
so greedy search, beam search and sampling are one code path for every model.

Parameters are always the model's ``'params'`` collection (what the training
state holds), never the ``{'params': ...}`` wrapper.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from zoo import decoding
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID
from zoo.nn.embed import concrete_value

Array = jax.Array
Output = decoding.DecodeOutput | decoding.BeamSearchOutput


class Seq2SeqOutput(NamedTuple):
    """What every encoder–decoder returns under teacher forcing."""

    logits: Array  # [B, T, V] float32
    attention: Array | None  # [B, T, S] float32, 0 on source padding; None if the model has none


class EncoderDecoderModel(Protocol):
    """The methods ``generate`` and the training family use (see the module docstring)."""

    def __call__(self, src: Array, tgt_in: Array, *, src_lengths: Array | None = None,
                 deterministic: bool = True) -> Seq2SeqOutput: ...

    def encode(self, src: Array, src_lengths: Array | None = None, *,
               deterministic: bool = True) -> Any: ...

    def init_carry(self, memory: Any, max_len: int) -> Any: ...

    def decode_step(self, memory: Any, carry: Any, tokens: Array) -> tuple[Array, Any]: ...

    @property
    def max_decode_len(self) -> int | None: ...  # the longest output it can decode; None: any


class DecodeState(NamedTuple):
    """The decoding loop's state: every array leaf has leading dim B (beam search tiles it)."""

    memory: Any  # the encoder's output
    carry: Any  # the model's recurrent carry (None for the Transformer)
    cache: Any  # the model's mutable collections: {'cache': ...} or {} (RNN)


def source_lengths(src: Array, src_lengths: Array | None) -> Array:
    """``src_lengths`` [B] int32 (every row whole when it is None), checked against src [B, S]:
    integer lengths in [1, S] (the range is checked when the values are concrete)."""
    if jnp.ndim(src) != 2:
        raise ValueError(f"src must be 2-D [B, S] token ids, got shape {jnp.shape(src)}")
    batch, length = jnp.shape(src)
    if src_lengths is None:
        return jnp.full((batch,), length, jnp.int32)
    if jnp.shape(src_lengths) != (batch,):
        raise ValueError(f"src_lengths must be [B] = [{batch}], got shape "
                         f"{jnp.shape(src_lengths)}")
    if not jnp.issubdtype(jnp.asarray(src_lengths).dtype, jnp.integer):
        raise TypeError(f"src_lengths must be integers, got dtype "
                        f"{jnp.asarray(src_lengths).dtype}")
    values = concrete_value(src_lengths)  # None under a trace
    if values is not None and values.size and (values.min() < 1 or values.max() > length):
        raise ValueError(f"src_lengths must lie in [1, S] = [1, {length}], got values in "
                         f"[{values.min()}, {values.max()}]")
    return jnp.asarray(src_lengths, jnp.int32)


def step_fn_for(model: EncoderDecoderModel, params: Any) -> decoding.StepFn:
    """The ``zoo.decoding`` step function of an encoder–decoder; its state is a DecodeState."""

    def step_fn(tokens: Array, state: DecodeState, step: Array) -> tuple[Array, DecodeState]:
        (logits, carry), cache = model.apply(
            {"params": params, **state.cache}, state.memory, state.carry, tokens,
            method="decode_step", mutable=["cache"])  # logits [B, V]
        return logits, DecodeState(state.memory, carry, dict(cache))

    return step_fn


def initial_state(model: EncoderDecoderModel, params: Any, src: Array, src_lengths: Array,
                  max_len: int) -> DecodeState:
    """Encodes src [B, S] and prepares the decoder for ``max_len`` steps."""
    memory = model.apply({"params": params}, src, src_lengths, method="encode")
    carry, cache = model.apply({"params": params}, memory, max_len, method="init_carry",
                               mutable=["cache"])
    return DecodeState(memory, carry, dict(cache))


def beam_invariant(path: tuple) -> bool:
    """True for the DecodeState leaves that are the same for every beam of a sentence: the
    encoder's output and each layer's cached projection of it ('cached_cross_key' /
    'cached_cross_value'); beam search never reorders them (``zoo.decoding.beam_search``)."""
    names = [getattr(k, "name", getattr(k, "key", None)) for k in path]
    return bool(names) and (names[0] == "memory" or any(
        isinstance(n, str) and n.startswith("cached_cross_") for n in names))


@functools.lru_cache(maxsize=64)
def _compiled(model: EncoderDecoderModel, method: str, max_len: int, bos_id: int,
              options: tuple[tuple[str, Any], ...]):
    def run(params, src, src_lengths, key):
        state = initial_state(model, params, src, src_lengths, max_len)
        first = jnp.full(src.shape[:1], bos_id, jnp.int32)  # [B]
        extra = {} if key is None else {"key": key}
        if method == "beam":
            extra["beam_invariant"] = beam_invariant
        return decoding.METHODS[method](step_fn_for(model, params), state, first, max_len=max_len,
                               **extra, **dict(options))

    return jax.jit(run)


def check_params(params: Any) -> None:
    """Rejects the ``{'params': ...}`` variables wrapper: pass ``variables['params']``."""
    if isinstance(params, dict) and set(params) == {"params"}:
        raise ValueError("params must be the model's 'params' collection; got the variables "
                         "dict {'params': ...}: pass variables['params']")


def generate(model: EncoderDecoderModel, params: Any, src: Array,
             src_lengths: Array | None = None, *, max_len: int, method: str = "greedy",
             bos_id: int = BOS_ID, eos_id: int = EOS_ID, pad_id: int = PAD_ID,
             key: Array | None = None, **options: Any) -> Output:
    """Decodes right-padded sources src [B, S] (``src_lengths`` [B]) into up to ``max_len``
    tokens per row, starting from ``bos_id``.

    method 'greedy' -> DecodeOutput(tokens [B, T], lengths [B], scores [B]);
    'beam' -> BeamSearchOutput(tokens [B, W, T], ...) with options ``beam_size``,
    ``length_penalty`` (GNMT alpha; ``.best()`` gives the top hypothesis);
    'sample' (needs ``key``) -> DecodeOutput, options ``temperature``, ``top_k``, ``top_p``.
    The whole call (encoder + decoding loop) compiles once per (model, method, options).
    """
    decoding.check_method(method, key)
    check_params(params)
    src = jnp.asarray(src)
    src_lengths = source_lengths(src, src_lengths)
    limit = model.max_decode_len  # None: no limit
    if limit is not None and max_len > limit:
        raise ValueError(f"max_len = {max_len} exceeds the model's longest output, {limit}")
    options = dict(options, eos_id=eos_id, pad_id=pad_id)
    # Option values become part of the compile cache key, so they must be hashable.
    fn = _compiled(model, method, max_len, bos_id, tuple(sorted(options.items())))
    return fn(params, src, src_lengths, key)
