"""``dot_product_attention``: one signature, many kernels.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads (K divides N: MHA when K == N, GQA, MQA when K == 1), H head dim.

Every implementation computes exactly what ``reference`` computes (see
``zoo/attention/reference.py``); tests hold each of them to it, in values and
gradients. Pick one by name, or leave ``implementation`` as None / "auto" for
the fastest correct choice on this platform and shapes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from zoo.attention import blockwise, jax_nn, pallas, reference
from zoo.attention.spec import Spec, check

# name -> (kernel(q, k, v, spec), constraints(q, k, spec) -> reason it can't run, or None)
Kernel = Callable[..., jax.Array]
_always = lambda q, k, spec: None  # noqa: E731

IMPLEMENTATIONS: dict[str, tuple[Kernel, Callable]] = {
    "reference": (reference.attention, _always),
    "xla": (jax_nn.xla, _always),
    "blockwise": (blockwise.attention, _always),
    "cudnn": (jax_nn.cudnn, lambda q, k, spec: jax_nn.cudnn_constraints(q, spec)),
    "pallas_gpu": (pallas.gpu_attention, pallas.gpu_constraints),
    "pallas_tpu": (pallas.tpu_attention, pallas.tpu_constraints),
}

# GPU and TPU: the first of these kernels whose constraints this call meets.
_PREFERENCES = {
    "gpu": ("cudnn", "pallas_gpu", "blockwise"),
    "tpu": ("pallas_tpu", "blockwise"),
}

# CPU: `blockwise` from 128 x 128 logits up. In the sweep of benchmarks/results/attention.md
# (2 cores, B=4, N=8, H=64, T=S 128..8192) and in A/B re-timings of the cells where that loaded
# sweep disagreed (2026-12-03), it is the fastest zoo kernel or within 10% of `xla` in every cell
# from T=S=256 on: MHA and GQA, float32 and bfloat16, causal or not, forward and
# forward+backward. At T=S=128 the two trade places between repeats. (Until 2026-12-03 its
# float32 GQA backward was 1.3-1.5x slower than `xla`'s at T=S 512-2048, and `auto` picked
# `xla` there; the key-major backward tiles removed that.)
# Below the sweep's smallest cell `xla` stays the choice: blockwise's tiling has nothing to
# save there, and ad hoc timings of decoding (T=1, S=1024..4096; 2026-12-03, loaded machine)
# had `xla` ahead in forward+backward and level or ahead in the forward.
_CPU_MIN_MEASURED_LOGITS = 128 * 128


def _auto(q, k, spec: Spec) -> str:
    """The fastest kernel that can run this call (measured in benchmarks/attention.py)."""
    for name in _PREFERENCES.get(jax.default_backend(), ()):
        if IMPLEMENTATIONS[name][1](q, k, spec) is None:
            return name
    logits = q.shape[1] * k.shape[1]  # T * S
    return "xla" if logits < _CPU_MIN_MEASURED_LOGITS else "blockwise"


def resolve_implementation(implementation: str | None, q, k, spec: Spec) -> str:
    """Validates ``implementation`` against this call and returns the kernel name to run."""
    if implementation is None or implementation == "auto":
        return _auto(q, k, spec)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown implementation {implementation!r}; allowed: None, 'auto', "
            + ", ".join(repr(n) for n in IMPLEMENTATIONS)
        )
    reason = IMPLEMENTATIONS[implementation][1](q, k, spec)
    if reason is not None:
        raise ValueError(reason)
    return implementation


def dot_product_attention(
    q,
    k,
    v,
    *,
    mask=None,
    bias=None,
    is_causal: bool = False,
    local_window: int | tuple[int, int] | None = None,
    q_offset=0,
    q_lengths=None,
    kv_lengths=None,
    segment_ids=None,
    scale: float | None = None,
    implementation: str | None = None,
):
    """Scaled dot-product attention with GQA/MQA, masks, padding and packing.

    Args:
      q: [B, T, N, H] queries.
      k: [B, S, K, H] keys; K must divide N (query head n uses key head n // (N // K)).
      v: [B, S, K, H] values.
      mask: bool, broadcastable to [B, N, T, S] (rank 4, each dim 1 or full); True = attend.
      bias: float, broadcastable to [B, N, T, S]; added to the scaled logits. Must be finite.
      is_causal: query i (at position ``q_offset + i``) sees keys j <= q_offset + i.
      local_window: int w or (left, right): query at position p sees keys in [p-left, p+right].
      q_offset: int or [B] ints, the absolute position of query 0 (decoding with a cache).
      q_lengths: [B] ints; queries at i >= q_lengths[b] are padding and return zeros.
      kv_lengths: [B] ints; keys at j >= kv_lengths[b] are padding and are never attended.
      segment_ids: [B, T] ints (self-attention, T == S) or a pair ([B, T], [B, S]); a query
        attends only to keys of its own segment (packed sequences).
      scale: logit scale, default 1 / sqrt(H).
      implementation: one of ``IMPLEMENTATIONS`` or None/"auto".

    Returns:
      [B, T, N, H] in q's dtype. A query row that may attend to no key (all masked) is
      all zeros, with zero gradient, in every implementation.

    Raises:
      ValueError / TypeError naming the parameter for bad shapes, dtypes or options, an
      unknown implementation, or an implementation this platform or call cannot run.
    """
    spec = check(
        q, k, v, mask=mask, bias=bias, is_causal=is_causal, local_window=local_window,
        q_offset=q_offset, q_lengths=q_lengths, kv_lengths=kv_lengths,
        segment_ids=segment_ids, scale=scale,
    )
    name = resolve_implementation(implementation, q, k, spec)
    return IMPLEMENTATIONS[name][0](q, k, v, spec)


def reference_attention(q, k, v, *, return_weights: bool = False, **options):
    """The reference kernel; with ``return_weights`` also the [B, N, T, S] weights."""
    spec = check(q, k, v, **{**_DEFAULTS, **options})
    return reference.attention(q, k, v, spec, return_weights=return_weights)


def blockwise_attention(q, k, v, *, block_q: int = blockwise.DEFAULT_BLOCK_Q,
                        block_k: int = blockwise.DEFAULT_BLOCK_K, **options):
    """The blockwise kernel with explicit block sizes (for tuning and tests)."""
    spec = check(q, k, v, **{**_DEFAULTS, **options})
    return blockwise.attention(q, k, v, spec, block_q=block_q, block_k=block_k)


_DEFAULTS = dict(
    mask=None, bias=None, is_causal=False, local_window=None, q_offset=0, q_lengths=None,
    kv_lengths=None, segment_ids=None, scale=None,
)

__all__ = [
    "IMPLEMENTATIONS",
    "blockwise_attention",
    "dot_product_attention",
    "reference_attention",
    "resolve_implementation",
]
