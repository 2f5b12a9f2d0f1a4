"""Seq2seq alignment scores (Luong et al., 2015; Bahdanau et al., 2015) and `attend`.

A score module compares every decoder state s_t with every encoder state h_s:

    score(query [B, T, R], keys [B, S, M]) -> scores [B, T, S]   (float32)

and `attend` turns scores into weights and a context vector:

    attend(scores [B, T, S], values [B, S, M], mask) -> context [B, T, M], weights [B, T, S]

Shape glossary (letters used in shape comments and einsum strings):
    B  batch
    T  target (query) length
    S  source (key) length
    R  query width: the decoder state (logical axis 'embed'); error messages say Dq
    M  key width: the encoder memory (logical axis 'kv_embed'); error messages say
       Dk. The dot scores need R == M
    A  hidden width of the concat/additive layer (logical axis 'mlp')
    `attend` averages values of any width; here they are the memory, [B, S, M]
    (error messages say Dv)

Scores (s = query state, h = key state):
    dot         s . h                              Luong et al. (2015), eq. 8 "dot"
    scaled_dot  s . h / sqrt(M)                    Vaswani et al. (2017), eq. 1
    general     s . W h,             W [R, M]      Luong et al. (2015), eq. 8 "general"
    concat      v . tanh(W [s; h]),  W [R+M, A]    Luong et al. (2015), eq. 8 "concat"
    additive    v . tanh(W1 s + W2 h (+ b))        Bahdanau et al. (2015), appendix A.1.2

References:
    Luong, Pham, Manning. Effective Approaches to Attention-based Neural Machine
        Translation. EMNLP 2015. arXiv:1508.04025.
    Bahdanau, Cho, Bengio. Neural Machine Translation by Jointly Learning to Align
        and Translate. ICLR 2015. arXiv:1409.0473.
    Vaswani et al. Attention Is All You Need. NeurIPS 2017. arXiv:1706.03762.

Params are float32 (`param_dtype`); matmuls run in `dtype` (float32 or bfloat16)
and accumulate scores in float32, because they feed a float32 softmax.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Initializer = Callable[..., jax.Array]

# v is a vector, so the usual (in, out) fan axes do not exist: take fan-in over
# its only axis so that v . tanh(.) starts with roughly unit variance.
_default_v_init = nn.initializers.lecun_normal(in_axis=-1, out_axis=())


def _check_query_keys(query: jax.Array, keys: jax.Array) -> None:
    """Ranks and batch sizes of a score's inputs; raises at trace time."""
    for arg, x, layout in (("query", query, "[B, T, Dq]"), ("keys", keys, "[B, S, Dk]")):
        if x.ndim != 3:
            raise ValueError(f"{arg} must be 3-D {layout}, got shape {tuple(x.shape)}")
    if query.shape[0] != keys.shape[0]:
        raise ValueError(
            f"query and keys must have the same batch size B, got query shape "
            f"{tuple(query.shape)} and keys shape {tuple(keys.shape)}"
        )


def _check_same_width(score: str, query: jax.Array, keys: jax.Array) -> None:
    if query.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"{score} needs query width Dq == keys width Dk, got query width "
            f"{query.shape[-1]} and keys width {keys.shape[-1]}; "
            "use 'general', 'concat' or 'additive' for different widths"
        )


def _check_hidden(score: str, hidden: Any) -> None:
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden <= 0:
        raise ValueError(
            f"{score} needs hidden, a positive int (width of its tanh layer), got {hidden!r}"
        )


def _dot_scores(query: jax.Array, keys: jax.Array, dtype: jax.typing.DTypeLike) -> jax.Array:
    # query [B, T, R], keys [B, S, R] -> [B, T, S]; float32 accumulation for the softmax.
    query, keys = nn.dtypes.promote_dtype(query, keys, dtype=dtype)
    return jnp.einsum("BTR,BSR->BTS", query, keys, preferred_element_type=jnp.float32)


def _tanh_layer_score(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """v . tanh(q_t + k_s) for every (t, s): the shared core of concat and additive."""
    # q [B, T, A], k [B, S, A] -> [B, T, S, A]; this tensor is the formula's cost.
    h = jnp.tanh(q[:, :, None, :] + k[:, None, :, :])  # [B, T, S, A]
    return jnp.einsum("BTSA,A->BTS", h, v, preferred_element_type=jnp.float32)  # [B, T, S]


class DotScore(nn.Module):
    """Luong "dot": s . h. Needs R == M."""

    dtype: jax.typing.DTypeLike = jnp.float32

    @nn.compact
    def __call__(self, query: jax.Array, keys: jax.Array) -> jax.Array:
        # query [B, T, R], keys [B, S, R] -> scores [B, T, S] float32
        _check_query_keys(query, keys)
        _check_same_width("DotScore", query, keys)
        return _dot_scores(query, keys, self.dtype)  # [B, T, S]


class ScaledDotScore(nn.Module):
    """s . h / sqrt(M): keeps score variance ~1 as the width grows. Needs R == M."""

    dtype: jax.typing.DTypeLike = jnp.float32

    @nn.compact
    def __call__(self, query: jax.Array, keys: jax.Array) -> jax.Array:
        # query [B, T, R], keys [B, S, R] -> scores [B, T, S] float32
        _check_query_keys(query, keys)
        _check_same_width("ScaledDotScore", query, keys)
        scores = _dot_scores(query, keys, self.dtype)  # [B, T, S]
        # Scale the float32 scores rather than the (maybe bfloat16) query, so the
        # result is exactly dot / sqrt(M) up to float32 rounding.
        return scores / np.sqrt(keys.shape[-1]).astype(np.float32)  # [B, T, S]


class GeneralScore(nn.Module):
    """Luong "general": s . W h with W [R, M]."""

    dtype: jax.typing.DTypeLike = jnp.float32
    param_dtype: jax.typing.DTypeLike = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, query: jax.Array, keys: jax.Array) -> jax.Array:
        # query [B, T, R], keys [B, S, M] -> scores [B, T, S] float32
        _check_query_keys(query, keys)
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, ("embed", "kv_embed")),
            (query.shape[-1], keys.shape[-1]),
            self.param_dtype,
        )  # [R, M]
        query, keys, kernel = nn.dtypes.promote_dtype(query, keys, kernel, dtype=self.dtype)
        # (s W) . h rather than s . (W h): a decoder step has T = 1 while S is the
        # whole source, so projecting the query is the cheaper side.
        q = jnp.einsum("BTR,RM->BTM", query, kernel)  # [B, T, M]
        scores = jnp.einsum("BTM,BSM->BTS", q, keys, preferred_element_type=jnp.float32)
        return scores  # [B, T, S]


class ConcatScore(nn.Module):
    """Luong "concat": v . tanh(W [s; h]) with one W [R + M, A].

    W [s; h] = W[:R] s + W[R:] h, so each side is projected once instead of
    building a [B, T, S, R + M] concatenation. Same function as `AdditiveScore`
    without bias; the single W keeps the paper's parameterisation.
    """

    hidden: int
    dtype: jax.typing.DTypeLike = jnp.float32
    param_dtype: jax.typing.DTypeLike = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()
    v_init: Initializer = _default_v_init

    def __post_init__(self):
        _check_hidden("ConcatScore", self.hidden)
        super().__post_init__()

    @nn.compact
    def __call__(self, query: jax.Array, keys: jax.Array) -> jax.Array:
        # query [B, T, R], keys [B, S, M] -> scores [B, T, S] float32
        _check_query_keys(query, keys)
        d = query.shape[-1]
        # The input axis mixes query and key widths; it is named by its first
        # (query) part, 'embed', since one axis carries one name.
        kernel = self.param(
            "kernel",
            nn.with_logical_partitioning(self.kernel_init, ("embed", "mlp")),
            (d + keys.shape[-1], self.hidden),
            self.param_dtype,
        )  # [R + M, A]
        v = self.param(
            "v",
            nn.with_logical_partitioning(self.v_init, ("mlp",)),
            (self.hidden,),
            self.param_dtype,
        )  # [A]
        query, keys, kernel, v = nn.dtypes.promote_dtype(query, keys, kernel, v, dtype=self.dtype)
        q = jnp.einsum("BTR,RA->BTA", query, kernel[:d])  # [B, T, A]
        k = jnp.einsum("BSM,MA->BSA", keys, kernel[d:])  # [B, S, A]
        return _tanh_layer_score(q, k, v)  # [B, T, S]


class AdditiveScore(nn.Module):
    """Bahdanau: v . tanh(W1 s + W2 h + b), W1 [R, A], W2 [M, A].

    The paper has no bias; `use_bias=True` adds one (as many reimplementations do).
    """

    hidden: int
    use_bias: bool = False
    dtype: jax.typing.DTypeLike = jnp.float32
    param_dtype: jax.typing.DTypeLike = jnp.float32
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    v_init: Initializer = _default_v_init

    def __post_init__(self):
        _check_hidden("AdditiveScore", self.hidden)
        super().__post_init__()

    @nn.compact
    def __call__(self, query: jax.Array, keys: jax.Array) -> jax.Array:
        # query [B, T, R], keys [B, S, M] -> scores [B, T, S] float32
        _check_query_keys(query, keys)
        w_query = self.param(
            "w_query",
            nn.with_logical_partitioning(self.kernel_init, ("embed", "mlp")),
            (query.shape[-1], self.hidden),
            self.param_dtype,
        )  # [R, A]
        w_keys = self.param(
            "w_keys",
            nn.with_logical_partitioning(self.kernel_init, ("kv_embed", "mlp")),
            (keys.shape[-1], self.hidden),
            self.param_dtype,
        )  # [M, A]
        v = self.param(
            "v",
            nn.with_logical_partitioning(self.v_init, ("mlp",)),
            (self.hidden,),
            self.param_dtype,
        )  # [A]
        query, keys, w_query, w_keys, v = nn.dtypes.promote_dtype(
            query, keys, w_query, w_keys, v, dtype=self.dtype
        )
        q = jnp.einsum("BTR,RA->BTA", query, w_query)  # [B, T, A]
        k = jnp.einsum("BSM,MA->BSA", keys, w_keys)  # [B, S, A]
        if self.use_bias:
            bias = self.param(
                "bias",
                nn.with_logical_partitioning(self.bias_init, ("mlp",)),
                (self.hidden,),
                self.param_dtype,
            )  # [A]
            # Added on the [B, T, A] side, not to every (t, s) pair.
            q = q + bias.astype(q.dtype).reshape(1, 1, -1)  # [B, T, A]
        return _tanh_layer_score(q, k, v)  # [B, T, S]


SCORES: dict[str, type[nn.Module]] = {
    "dot": DotScore,
    "scaled_dot": ScaledDotScore,
    "general": GeneralScore,
    "concat": ConcatScore,
    "additive": AdditiveScore,
}
_HIDDEN_KINDS = frozenset({"concat", "additive"})


def make_score(
    kind: str,
    *,
    hidden: int | None = None,
    dtype: jax.typing.DTypeLike = jnp.float32,
    name: str | None = None,
) -> nn.Module:
    """The score module for `kind` (a key of `SCORES`).

    `hidden` is required (positive) for 'concat' and 'additive' and ignored by
    the others, so one config can sweep `kind` without editing `hidden`.
    """
    if kind not in SCORES:
        raise ValueError(f"kind must be one of {sorted(SCORES)}, got {kind!r}")
    if kind in _HIDDEN_KINDS:
        return SCORES[kind](hidden=hidden, dtype=dtype, name=name)
    return SCORES[kind](dtype=dtype, name=name)


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    # Same rank required: the project runs with jax_numpy_rank_promotion='raise'.
    return len(shape) == len(target) and all(
        n in (1, m) for n, m in zip(shape, target, strict=True)
    )


class Attended(NamedTuple):
    context: jax.Array  # [B, T, M], values' dtype
    weights: jax.Array  # [B, T, S], float32; 0 at masked positions


def attend(scores: jax.Array, values: jax.Array, mask: jax.Array | None = None) -> Attended:
    """Softmax of `scores` over S (restricted to `mask`) and the weighted sum of `values`.

    Args:
        scores: [B, T, S] alignment scores.
        values: [B, S, M] vectors to average (often the keys themselves).
        mask: optional bool, True = attend, broadcastable to [B, T, S] with the
            same rank, e.g. [B, 1, S] for source padding.

    Returns:
        `Attended(context [B, T, M], weights [B, T, S])`. Weights are exactly 0
        where masked; a fully masked row gets all-zero weights and a zero context.
    """
    if scores.ndim != 3:
        raise ValueError(f"scores must be 3-D [B, T, S], got shape {tuple(scores.shape)}")
    if values.ndim != 3:
        raise ValueError(f"values must be 3-D [B, S, Dv], got shape {tuple(values.shape)}")
    b, _, s = scores.shape
    if values.shape[:2] != (b, s):
        raise ValueError(
            f"values shape {tuple(values.shape)} must be [B, S, Dv] with B={b}, S={s} "
            f"from scores shape {tuple(scores.shape)}"
        )
    scores = scores.astype(jnp.float32)  # [B, T, S]
    if mask is None:
        mask = jnp.ones(scores.shape, dtype=bool)  # [B, T, S]
    else:
        if mask.dtype != jnp.bool_:
            raise TypeError(f"mask must be bool (True = attend), got dtype {mask.dtype}")
        if not _broadcasts_to(mask.shape, scores.shape):
            raise ValueError(
                f"mask shape {tuple(mask.shape)} must be 3-D and broadcastable to scores "
                f"shape {tuple(scores.shape)} [B, T, S], e.g. [B, 1, S]"
            )
        mask = jnp.broadcast_to(mask, scores.shape)  # [B, T, S]

    # Masking with where *before* exp (rather than adding -1e9) keeps masked
    # weights exactly 0, and a fully masked row yields 0 / 1 instead of 0 / 0,
    # so neither the values nor the gradients can become NaN.
    row_max = jnp.max(jnp.where(mask, scores, -jnp.inf), axis=-1, keepdims=True)  # [B, T, 1]
    row_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    shifted = jnp.where(mask, scores - row_max, 0.0)  # [B, T, S]
    unnormalized = jnp.where(mask, jnp.exp(shifted), 0.0)  # [B, T, S]
    total = jnp.sum(unnormalized, axis=-1, keepdims=True)  # [B, T, 1]
    weights = unnormalized / jnp.where(total > 0, total, 1.0)  # [B, T, S]

    context = jnp.einsum(
        "BTS,BSM->BTM",
        weights.astype(values.dtype),
        values,
        preferred_element_type=jnp.float32,
    ).astype(values.dtype)  # [B, T, M]
    return Attended(context, weights)
