"""The Pallas flash-attention kernels that ship with JAX, under our signature.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, H head dim.

* ``pallas_gpu``: ``jax.experimental.pallas.ops.gpu.attention.mha`` (Triton).
  It knows causal masks (no offset) and one shared segment-id array, so it
  serves self-attention (T == S); GQA/MQA repeat the key/value heads.
* ``pallas_tpu``: ``jax.experimental.pallas.ops.tpu.flash_attention``. It
  knows causal masks, separate query/key segment ids and a bias; we express
  padding (lengths, and the round-up to whole blocks) as segment ids that
  never match, and zero the rows that end up with no key.

Both run on CPU in Pallas interpret mode (``interpret=True``), which is how
the tests check them against ``reference``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from zoo.attention.spec import Spec
from zoo.attention.spec import pad_axis as _pad_len

GPU_BLOCK = 64
TPU_BLOCK = 128


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def _repeat_kv(k, v, n_heads: int):
    """GQA/MQA -> MHA for kernels that need K == N: [B, S, K, H] -> [B, S, N, H]."""
    group = n_heads // k.shape[2]
    if group == 1:
        return k, v
    return jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)


def _unsupported(name: str, spec: Spec, allowed: set[str]) -> str | None:
    used = {
        "mask": spec.mask is not None,
        "bias": spec.bias is not None,
        "local_window": spec.local_window is not None,
        "q_offset": spec.static_offset != 0,
        "q_lengths": spec.q_lengths is not None,
        "kv_lengths": spec.kv_lengths is not None,
    }
    for option, on in used.items():
        if on and option not in allowed:
            return (f"implementation {name!r} does not support {option}; "
                    "use 'blockwise' (any platform) or 'reference'")
    return None


def gpu_constraints(q, k, spec: Spec, *, interpret: bool = False) -> str | None:
    if not interpret and jax.default_backend() != "gpu":
        return f"implementation 'pallas_gpu' needs a GPU; the backend is {jax.default_backend()!r}"
    reason = _unsupported("pallas_gpu", spec, set())
    if reason:
        return reason
    if q.shape[1] != k.shape[1]:
        return (f"implementation 'pallas_gpu' needs T == S (self-attention), got "
                f"T={q.shape[1]}, S={k.shape[1]}")
    if spec.q_segment_ids is not None and spec.q_segment_ids is not spec.kv_segment_ids:
        return "implementation 'pallas_gpu' needs one shared segment_ids array (self-attention)"
    h = q.shape[-1]
    if h < 16 or h & (h - 1):
        return f"implementation 'pallas_gpu' needs a power-of-two head dim >= 16, got H={h}"
    return None


def gpu_attention(q, k, v, spec: Spec, *, interpret: bool = False):
    from jax.experimental.pallas.ops.gpu import attention as gpu_mha

    reason = gpu_constraints(q, k, spec, interpret=interpret)
    if reason:
        raise ValueError(reason)
    b, t, n, _ = q.shape
    k, v = _repeat_kv(k, v, n)
    block = min(GPU_BLOCK, _round_up(t, 16))
    tp = _round_up(t, block)
    seg = spec.q_segment_ids
    if tp != t:
        base = seg if seg is not None else jnp.zeros((b, t), jnp.int32)
        seg = _pad_len(base, 1, tp, -1)  # padded tail: its own segment, sliced off below
    q, k, v = (_pad_len(x, 1, tp) for x in (q, k, v))
    sizes = gpu_mha.BlockSizes(block_q=block, block_k=block, block_q_dkv=block,
                               block_kv_dkv=block, block_q_dq=block, block_kv_dq=block)
    out = gpu_mha.mha(q, k, v, seg, sm_scale=spec.scale, causal=spec.is_causal,
                      block_sizes=sizes, interpret=interpret)
    return out[:, :t].astype(q.dtype)


def tpu_constraints(q, k, spec: Spec, *, interpret: bool = False) -> str | None:
    if not interpret and jax.default_backend() != "tpu":
        return f"implementation 'pallas_tpu' needs a TPU; the backend is {jax.default_backend()!r}"
    reason = _unsupported("pallas_tpu", spec, {"bias", "q_lengths", "kv_lengths"})
    if reason:
        return reason
    if spec.is_causal and q.shape[1] != k.shape[1]:
        return "implementation 'pallas_tpu' supports causal masks only when T == S"
    if spec.bias is not None and spec.bias.shape[-2:] != (q.shape[1], k.shape[1]):
        return "implementation 'pallas_tpu' needs a bias with full [T, S] dims"
    return None


def tpu_attention(q, k, v, spec: Spec, *, interpret: bool = False):
    from jax.experimental.pallas import tpu as pltpu
    from jax.experimental.pallas.ops.tpu import flash_attention as tpu_flash

    reason = tpu_constraints(q, k, spec, interpret=interpret)
    if reason:
        raise ValueError(reason)
    b, t, n, h = q.shape
    s = k.shape[1]
    k, v = _repeat_kv(k, v, n)
    tp, sp = _round_up(t, TPU_BLOCK), _round_up(s, TPU_BLOCK)
    rows, cols = jnp.arange(tp)[None, :], jnp.arange(sp)[None, :]  # [1, Tp], [1, Sp]
    q_seg = jnp.zeros((b, t), jnp.int32) if spec.q_segment_ids is None else spec.q_segment_ids
    kv_seg = jnp.zeros((b, s), jnp.int32) if spec.kv_segment_ids is None else spec.kv_segment_ids
    # Padding never matches: queries get -1, keys -2.
    q_len = jnp.full((b,), t, jnp.int32) if spec.q_lengths is None else spec.q_lengths
    kv_len = jnp.full((b,), s, jnp.int32) if spec.kv_lengths is None else spec.kv_lengths
    q_seg = jnp.where(rows < q_len[:, None], _pad_len(q_seg, 1, tp, -1), -1)
    kv_seg = jnp.where(cols < kv_len[:, None], _pad_len(kv_seg, 1, sp, -2), -2)
    qt, kt, vt = (_pad_len(x, 1, size).transpose(0, 2, 1, 3)  # [B, N, T|S, H]
                  for x, size in ((q, tp), (k, sp), (v, sp)))
    bias = spec.bias
    if bias is not None:
        # The kernel scales (q.k + ab) as a whole, so pre-divide to add `bias` after scaling.
        bias = jnp.broadcast_to(bias, (b, n, t, s)).astype(jnp.float32) / spec.scale
        bias = _pad_len(_pad_len(bias, 2, tp), 3, sp)
    call = lambda: tpu_flash.flash_attention(  # noqa: E731
        qt, kt, vt, ab=bias, segment_ids=tpu_flash.SegmentIds(q=q_seg, kv=kv_seg),
        causal=spec.is_causal, sm_scale=spec.scale,
    )
    if interpret:
        with pltpu.force_tpu_interpret_mode():
            out = call()
    else:
        out = call()
    out = out.transpose(0, 2, 1, 3)[:, :t]  # [B, T, N, H]
    # Rows whose every key was ruled out: the kernel leaves them undefined; we return 0.
    allowed = q_seg[:, :, None] == kv_seg[:, None, :]  # [B, Tp, Sp]
    if spec.is_causal:
        allowed = allowed & (cols[:, None, :] <= rows[:, :, None])
    has_key = jnp.any(allowed, axis=-1)[:, :t]  # [B, T]
    return jnp.where(has_key[:, :, None, None], out, 0).astype(q.dtype)
