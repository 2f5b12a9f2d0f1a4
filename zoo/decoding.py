"""Greedy decoding, beam search and sampling over any model's step function.

Glossary: B batch, W beam size, T generated length (max_len), V vocabulary.

Every model family decodes through this one module. A model supplies a *step
function* and its initial *state*:

    step_fn(tokens [B] int32, state, step int32 scalar) -> (logits [B, V], state)

`tokens` are the inputs at this step (the `first_tokens`, e.g. <bos>, at step
0, then the previous step's choices), `step` counts calls from 0 (a model that
needs absolute positions, e.g. after a prompt prefill, keeps its offset in the
state), and `state` is any pytree the model needs (an RNN carry plus encoder
memory; a KV cache). Rules for `state`:

  * every array leaf has leading dim B: beam search tiles it to [B*W, ...]
    (row b*W + k is beam k of example b) and reorders it with a gather each
    step, so a step_fn must treat rows independently;
  * 0-d leaves (e.g. a cache index) are shared by all rows and passed through
    untouched;
  * the step_fn must return a state with the same structure, shapes and dtypes
    (it is a `lax.while_loop` carry).

All three functions trace to one `lax.while_loop` with a static `max_len` (it
exits early once every row has finished), so they run under `jax.jit` with
the Python arguments static, e.g.
`jax.jit(functools.partial(greedy_decode, step_fn, max_len=32, eos_id=2))`.

Outputs exclude `first_tokens`. After a row emits `eos_id`, its remaining
positions hold `pad_id`; `lengths` count tokens up to and including EOS
(`max_len` for a row that never emitted it). Log-probabilities are always
taken in float32 from the model's unmodified distribution (temperature and
top-k/top-p change what is sampled, not how it is scored).

Beam search follows GNMT (Wu et al., 2016, arXiv:1609.08144, sec. 7): a
finished hypothesis of n tokens scores log p / ((5 + n) / 6)^alpha. Each step
takes the top 2W extensions; EOS-ending ones among the top W are finished
(kept in a W-best list), the best W others stay alive. A row stops when its W
finished hypotheses all beat the best any alive one could still reach. With
`length_penalty=0`, beam_size=1 returns exactly the greedy sequence; with a
length penalty a longer hypothesis may legitimately outscore greedy's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

StepFn = Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any]]


class DecodeOutput(NamedTuple):
    tokens: jax.Array  # [B, T] int32, pad_id after EOS
    lengths: jax.Array  # [B] int32, up to and including EOS
    scores: jax.Array  # [B] float32, sum of the tokens' log-probabilities


class BeamSearchOutput(NamedTuple):
    tokens: jax.Array  # [B, W, T] int32, best hypothesis first
    lengths: jax.Array  # [B, W] int32
    scores: jax.Array  # [B, W] float32, length-normalised log-probability (-inf: no hypothesis)

    def best(self) -> DecodeOutput:
        """The top hypothesis of every row: tokens [B, T], lengths [B], scores [B]."""
        return DecodeOutput(self.tokens[:, 0], self.lengths[:, 0], self.scores[:, 0])


# ----------------------------------------------------------------------------- checks


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_first_tokens(first_tokens: Any) -> jax.Array:
    first = jnp.asarray(first_tokens)
    if first.ndim != 1 or not jnp.issubdtype(first.dtype, jnp.integer):
        raise ValueError(f"first_tokens must be a 1-D [B] integer array, got shape "
                         f"{first.shape} and dtype {first.dtype}")
    return first.astype(jnp.int32)  # [B]


def _check_common(max_len: Any, eos_id: Any, pad_id: Any) -> None:
    _check_int("max_len", max_len, 1)
    _check_int("eos_id", eos_id, 0)
    _check_int("pad_id", pad_id, 0)


def _check_logits(logits: jax.Array, rows: int) -> None:
    if logits.ndim != 2 or logits.shape[0] != rows:
        raise ValueError(f"step_fn must return logits [B, V] with B = {rows}, got shape "
                         f"{logits.shape}")


def _check_state(state: Any, rows: int) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if jnp.ndim(leaf) > 0 and jnp.shape(leaf)[0] != rows:
            raise ValueError(
                f"every state leaf must have leading dim B = {rows} (or be 0-d), got shape "
                f"{jnp.shape(leaf)} at {jax.tree_util.keystr(path)}"
            )


# ----------------------------------------------------------------------------- greedy / sample


class _Loop(NamedTuple):
    step: jax.Array  # [] int32
    tokens: jax.Array  # [B, T] int32
    last: jax.Array  # [B] int32, the next step's inputs
    state: Any
    finished: jax.Array  # [B] bool
    lengths: jax.Array  # [B] int32
    scores: jax.Array  # [B] float32


def _decode_loop(step_fn: StepFn, state: Any, first: jax.Array, *, max_len: int, eos_id: int,
                 pad_id: int, pick: Callable[[jax.Array, jax.Array], jax.Array]) -> DecodeOutput:
    """One token per row per step, chosen by pick(logits [B, V], step) -> [B]."""
    batch = first.shape[0]
    init = _Loop(
        step=jnp.zeros((), jnp.int32),
        tokens=jnp.full((batch, max_len), pad_id, jnp.int32),
        last=first,
        state=state,
        finished=jnp.zeros((batch,), bool),
        lengths=jnp.zeros((batch,), jnp.int32),
        scores=jnp.zeros((batch,), jnp.float32),
    )

    def cond(c: _Loop) -> jax.Array:
        return (c.step < max_len) & ~jnp.all(c.finished)

    def body(c: _Loop) -> _Loop:
        logits, state = step_fn(c.last, c.state, c.step)  # [B, V]
        _check_logits(logits, batch)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [B, V]
        chosen = pick(logits, c.step).astype(jnp.int32)  # [B]
        chosen = jnp.where(c.finished, pad_id, chosen)  # [B]
        token_logp = jnp.take_along_axis(log_probs, chosen[:, None], axis=-1)[:, 0]  # [B]
        return _Loop(
            step=c.step + 1,
            tokens=c.tokens.at[:, c.step].set(chosen),
            last=chosen,
            state=state,
            finished=c.finished | (chosen == eos_id),
            lengths=c.lengths + (~c.finished).astype(jnp.int32),
            scores=c.scores + jnp.where(c.finished, 0.0, token_logp),
        )

    out = jax.lax.while_loop(cond, body, init)
    return DecodeOutput(out.tokens, out.lengths, out.scores)


def greedy_decode(step_fn: StepFn, state: Any, first_tokens: jax.Array, *, max_len: int,
                  eos_id: int, pad_id: int = 0) -> DecodeOutput:
    """The most likely token at every step (argmax; ties go to the lowest id)."""
    first = _check_first_tokens(first_tokens)
    _check_common(max_len, eos_id, pad_id)
    return _decode_loop(step_fn, state, first, max_len=max_len, eos_id=eos_id, pad_id=pad_id,
                        pick=lambda logits, step: jnp.argmax(logits, axis=-1))


def top_k_filter(logits: jax.Array, top_k: int) -> jax.Array:
    """logits [B, V] with all but the k largest of each row set to -inf (exactly k kept)."""
    if top_k > logits.shape[-1]:
        raise ValueError(f"top_k must be in [1, V] = [1, {logits.shape[-1]}], got {top_k}")
    _, keep_ids = jax.lax.top_k(logits, top_k)  # [B, k]
    rows = jnp.arange(logits.shape[0])[:, None]  # [B, 1]
    keep = jnp.zeros(logits.shape, bool).at[rows, keep_ids].set(True)  # [B, V]
    return jnp.where(keep, logits, -jnp.inf)


def top_p_filter(logits: jax.Array, top_p: float) -> jax.Array:
    """Nucleus filter: keep the fewest most-likely tokens whose probability reaches top_p."""
    order = jnp.argsort(-logits, axis=-1)  # [B, V], most likely first
    probs = jax.nn.softmax(jnp.take_along_axis(logits, order, axis=-1), axis=-1)  # [B, V]
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # [B, V]; 0 for the top token: always kept
    rows = jnp.arange(logits.shape[0])[:, None]  # [B, 1]
    keep = jnp.zeros(logits.shape, bool).at[rows, order].set(mass_before < top_p)  # [B, V]
    return jnp.where(keep, logits, -jnp.inf)


def sample(step_fn: StepFn, state: Any, first_tokens: jax.Array, key: jax.Array, *,
           max_len: int, eos_id: int, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, pad_id: int = 0) -> DecodeOutput:
    """Ancestral sampling from softmax(logits / temperature), optionally top-k / top-p filtered.

    Step t draws with `fold_in(key, t)`, so the same key gives the same tokens.
    The filters apply in the order temperature, top-k, top-p (as in most libraries).
    """
    first = _check_first_tokens(first_tokens)
    _check_common(max_len, eos_id, pad_id)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) \
            or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    if top_k is not None:
        _check_int("top_k", top_k, 1)
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, int | float)
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be a number in (0, 1] or None, got {top_p!r}")

    def pick(logits: jax.Array, step: jax.Array) -> jax.Array:
        logits = logits.astype(jnp.float32) / temperature  # [B, V]
        if top_k is not None:
            logits = top_k_filter(logits, top_k)
        if top_p is not None:
            logits = top_p_filter(logits, top_p)
        return jax.random.categorical(jax.random.fold_in(key, step), logits, axis=-1)  # [B]

    return _decode_loop(step_fn, state, first, max_len=max_len, eos_id=eos_id, pad_id=pad_id,
                        pick=pick)


# ----------------------------------------------------------------------------- beam search


def length_penalty_gnmt(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT's lp(n) = ((5 + n) / 6)^alpha."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _tile(x: jax.Array, beams: int) -> jax.Array:
    """[B, ...] -> [B*W, ...], row b*W + k = x[b]; 0-d leaves unchanged."""
    if x.ndim == 0:
        return x
    return jnp.repeat(x, beams, axis=0)  # [B*W, ...]


def _reorder(x: jax.Array, parents: jax.Array) -> jax.Array:
    """[B*W, ...] rows picked per example by parents [B, W] -> [B*W, ...]; 0-d unchanged."""
    if x.ndim == 0:
        return x
    batch, beams = parents.shape
    flat = (jnp.arange(batch)[:, None] * beams + parents).reshape(-1)  # [B*W]
    return jnp.take(x, flat, axis=0)  # [B*W, ...]


def _gather(x: jax.Array, index: jax.Array) -> jax.Array:
    """x [B, n, ...] at index [B, m] along axis 1 -> [B, m, ...] (n, m: hypothesis counts)."""
    return x[jnp.arange(x.shape[0])[:, None], index]


class _Beams(NamedTuple):
    step: jax.Array  # [] int32
    alive_tokens: jax.Array  # [B, W, T]
    alive_logp: jax.Array  # [B, W] float32, -inf for an empty slot
    last: jax.Array  # [B, W] int32
    state: Any  # leaves [B*W, ...]
    done_tokens: jax.Array  # [B, W, T]
    done_scores: jax.Array  # [B, W] float32, normalised; -inf for an empty slot


def _rows_done(b: _Beams, max_len: int, alpha: float) -> jax.Array:
    """[B] True where no alive hypothesis can still beat the W-th finished one."""
    # An extension's log p only falls, and lp grows with length, so the best an
    # alive hypothesis can reach is its log p over lp(max_len).
    best_reachable = b.alive_logp[:, 0] / length_penalty_gnmt(max_len, alpha)  # [B]
    return b.done_scores[:, -1] >= best_reachable


def beam_search(step_fn: StepFn, state: Any, first_tokens: jax.Array, *, beam_size: int,
                max_len: int, eos_id: int, length_penalty: float = 0.6,
                pad_id: int = 0,
                beam_invariant: Callable[[tuple], bool] | None = None) -> BeamSearchOutput:
    """The W best hypotheses of every row by GNMT-normalised log-probability.

    ``beam_invariant(path)`` (optional, over the state's key paths) names the leaves that
    are the same for every beam of an example and that ``step_fn`` returns unchanged, such
    as an encoder's output: they are tiled once and never reordered, since reordering
    would only copy them as they are.
    """
    first = _check_first_tokens(first_tokens)
    _check_int("beam_size", beam_size, 1)
    _check_common(max_len, eos_id, pad_id)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, int | float) \
            or length_penalty < 0:
        raise ValueError(f"length_penalty must be a number >= 0 (GNMT alpha), "
                         f"got {length_penalty!r}")
    batch, beams, alpha = first.shape[0], beam_size, float(length_penalty)
    _check_state(state, batch)
    keep = jax.tree_util.tree_map_with_path(  # True: a beam-invariant leaf
        lambda path, _: bool(beam_invariant is not None and beam_invariant(path)), state)
    neg_inf = jnp.float32(-jnp.inf)

    # Only beam 0 is alive at first, so step 0 expands one copy, not W identical ones.
    init = _Beams(
        step=jnp.zeros((), jnp.int32),
        alive_tokens=jnp.full((batch, beams, max_len), pad_id, jnp.int32),
        alive_logp=jnp.tile(jnp.where(jnp.arange(beams) == 0, 0.0, neg_inf), (batch, 1)),
        last=jnp.tile(first[:, None], (1, beams)),  # [B, W]
        state=jax.tree.map(lambda x: _tile(x, beams), state),
        done_tokens=jnp.full((batch, beams, max_len), pad_id, jnp.int32),
        done_scores=jnp.full((batch, beams), neg_inf),
    )

    def cond(b: _Beams) -> jax.Array:
        return (b.step < max_len) & ~jnp.all(_rows_done(b, max_len, alpha))

    def body(b: _Beams) -> _Beams:
        logits, state = step_fn(b.last.reshape(-1), b.state, b.step)  # [B*W, V]
        _check_logits(logits, batch * beams)
        vocab = logits.shape[-1]
        if vocab < 2:
            raise ValueError(f"beam search needs a vocabulary of V >= 2, got V = {vocab}")
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # [B*W, V]
        log_probs = log_probs.reshape(batch, beams, vocab)  # [B, W, V]
        candidates = (b.alive_logp[:, :, None] + log_probs).reshape(batch, beams * vocab)
        # 2W candidates leave W non-EOS ones even if W of them end in EOS.
        top_logp, top_ids = jax.lax.top_k(candidates, 2 * beams)  # [B, 2W]
        parent, token = top_ids // vocab, (top_ids % vocab).astype(jnp.int32)  # [B, 2W]
        seqs = _gather(b.alive_tokens, parent).at[:, :, b.step].set(token)  # [B, 2W, T]
        is_eos = token == eos_id  # [B, 2W]

        alive_logp, pos = jax.lax.top_k(jnp.where(is_eos, neg_inf, top_logp), beams)  # [B, W]
        # EOS among the top W candidates only: a W-beam finishes what a W-beam would choose
        # (so W = 1 finishes exactly when greedy does).
        rank = jnp.arange(2 * beams)[None, :]  # [1, 2W]
        finishing = is_eos & (rank < beams) & jnp.isfinite(top_logp)  # [B, 2W]
        new_scores = jnp.where(
            finishing, top_logp / length_penalty_gnmt(b.step + 1, alpha), neg_inf)  # [B, 2W]
        done_scores, done_pos = jax.lax.top_k(
            jnp.concatenate([b.done_scores, new_scores], axis=1), beams)  # [B, W]
        done_tokens = _gather(jnp.concatenate([b.done_tokens, seqs], axis=1), done_pos)

        return _Beams(
            step=b.step + 1,
            alive_tokens=_gather(seqs, pos),  # [B, W, T]
            alive_logp=alive_logp,
            last=_gather(token, pos),  # [B, W]
            state=jax.tree.map(lambda x, same: x if same else _reorder(x, _gather(parent, pos)),
                               state, keep),
            done_tokens=done_tokens,  # [B, W, T]
            done_scores=done_scores,
        )

    out = jax.lax.while_loop(cond, body, init)
    # Hypotheses still alive when max_len ran out compete unfinished, as greedy's would.
    alive_scores = out.alive_logp / length_penalty_gnmt(out.step, alpha)  # [B, W]
    scores, pos = jax.lax.top_k(jnp.concatenate([out.done_scores, alive_scores], axis=1), beams)
    tokens = _gather(jnp.concatenate([out.done_tokens, out.alive_tokens], axis=1), pos)
    has_eos = jnp.any(tokens == eos_id, axis=-1)  # [B, W]
    first_eos = jnp.argmax(tokens == eos_id, axis=-1).astype(jnp.int32)  # [B, W]
    lengths = jnp.where(has_eos, first_eos + 1, out.step)  # [B, W]
    return BeamSearchOutput(tokens, lengths, scores)


# ----------------------------------------------------------------------------- by name

# method name -> the decoding function; each takes (step_fn, state, first_tokens, **options).
METHODS: dict[str, Callable[..., DecodeOutput | BeamSearchOutput]] = {
    "greedy": greedy_decode,
    "beam": beam_search,
    "sample": sample,
}


def check_method(method: str, key: jax.Array | None) -> None:
    """``method`` is a key of METHODS, and a key is given exactly when it is 'sample'."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if (key is None) == (method == "sample"):
        raise ValueError(f"key is required for method='sample' and only for it; got "
                         f"method={method!r}, key={'None' if key is None else 'given'}")
