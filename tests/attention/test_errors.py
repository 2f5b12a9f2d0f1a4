"""Bad inputs raise ValueError (TypeError or ValueError for dtypes) naming the parameter.

Glossary: B batch, T query length, S key length, N query heads, K key/value
heads, H head dim.
"""

import functools

import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention import (
    IMPLEMENTATIONS,
    blockwise_attention,
    dot_product_attention,
    pallas,
    reference_attention,
)
from zoo.attention.api import _DEFAULTS
from zoo.attention.spec import check

B, T, S, N, K, H = 2, 4, 6, 4, 2, 16
DTYPE_ERRORS = (TypeError, ValueError)  # either is fine for a wrong dtype

ENTRY_POINTS = {
    "dot_product_attention": dot_product_attention,
    "reference_attention": reference_attention,
    "blockwise_attention": functools.partial(blockwise_attention, block_q=8, block_k=8),
}


def _qkv(b=B, t=T, s=S, n=N, kh=K, h=H, dtype=np.float32):
    kv_shape = (b, s, kh, h)
    return np.ones((b, t, n, h), dtype), np.ones(kv_shape, dtype), np.ones(kv_shape, dtype)


def _mask(*shape, dtype=bool):
    return np.ones(shape, dtype)


def _ints(*shape, dtype=np.int32):
    return np.zeros(shape, dtype)


q0, k0, v0 = _qkv()

# name -> (q, k, v, options, exception, message pattern)
CASES = {
    # shapes of q, k, v
    "q_rank3": (q0[..., 0], k0, v0, {}, ValueError, r"\bq must have rank 4"),
    "k_rank3": (q0, k0[..., 0], v0, {}, ValueError, r"\bk must have rank 4"),
    "v_rank3": (q0, k0, v0[..., 0], {}, ValueError, r"\bv must have rank 4"),
    "q_rank5": (q0[None], k0, v0, {}, ValueError, r"\bq must have rank 4"),
    "head_dim_q_vs_k": (*_qkv(h=8)[:1], k0, v0, {}, ValueError, r"head dim"),
    "k_v_shapes": (q0, k0, _qkv(s=S + 1)[2], {}, ValueError, r"k and v must have the same shape"),
    "k_v_heads": (q0, k0, _qkv(kh=1)[2], {}, ValueError, r"k and v must have the same shape"),
    "batch": (q0, *_qkv(b=B + 1)[1:], {}, ValueError, r"batch size of k/v"),
    "heads_not_divisible": (q0, *_qkv(kh=3)[1:], {}, ValueError, r"N=4 .*K=3"),
    "zero_kv_heads": (q0, *_qkv(kh=0)[1:], {}, ValueError, r"K=0"),
    "empty_batch": (*_qkv(b=0), {}, ValueError, r"B=0"),
    "empty_queries": (*_qkv(t=0), {}, ValueError, r"T=0"),
    "empty_keys": (*_qkv(s=0), {}, ValueError, r"S=0"),
    # dtypes of q, k, v
    "int_q": (*_qkv(dtype=np.int32), {}, DTYPE_ERRORS, r"\bq must be a floating"),
    "mixed_q_k": (q0.astype(jnp.bfloat16), k0, v0, {}, DTYPE_ERRORS, r"q, k, v .*dtype"),
    "mixed_k_v": (q0, k0, v0.astype(np.float16), {}, DTYPE_ERRORS, r"q, k, v .*dtype"),
    # mask and bias
    "mask_rank2": (q0, k0, v0, dict(mask=_mask(T, S)), ValueError, r"\bmask must broadcast"),
    "mask_rank3": (q0, k0, v0, dict(mask=_mask(B, T, S)), ValueError, r"\bmask must broadcast"),
    "mask_wrong_s": (q0, k0, v0, dict(mask=_mask(B, 1, T, S + 1)), ValueError,
                     r"\bmask must broadcast"),
    "mask_wrong_t": (q0, k0, v0, dict(mask=_mask(1, 1, T - 1, S)), ValueError,
                     r"\bmask must broadcast"),
    "mask_kv_heads": (q0, k0, v0, dict(mask=_mask(1, K, T, S)), ValueError,
                      r"\bmask must broadcast"),
    "mask_wrong_b": (q0, k0, v0, dict(mask=_mask(B + 1, 1, 1, 1)), ValueError,
                     r"\bmask must broadcast"),
    "mask_int": (q0, k0, v0, dict(mask=_mask(1, 1, T, S, dtype=np.int32)), DTYPE_ERRORS,
                 r"\bmask must be boolean"),
    "mask_float": (q0, k0, v0, dict(mask=_mask(1, 1, T, S, dtype=np.float32)), DTYPE_ERRORS,
                   r"\bmask must be boolean"),
    "bias_rank3": (q0, k0, v0, dict(bias=_mask(N, T, S, dtype=np.float32)), ValueError,
                   r"\bbias must broadcast"),
    "bias_wrong_n": (q0, k0, v0, dict(bias=_mask(1, 3, T, S, dtype=np.float32)), ValueError,
                     r"\bbias must broadcast"),
    "bias_wrong_s": (q0, k0, v0, dict(bias=_mask(1, 1, 1, S - 1, dtype=np.float32)),
                     ValueError, r"\bbias must broadcast"),
    # local window
    "window_negative": (q0, k0, v0, dict(local_window=-1), ValueError, r"local_window"),
    "window_negative_side": (q0, k0, v0, dict(local_window=(2, -1)), ValueError,
                             r"local_window"),
    "window_3_tuple": (q0, k0, v0, dict(local_window=(1, 2, 3)), ValueError, r"local_window"),
    "window_float": (q0, k0, v0, dict(local_window=2.0), ValueError, r"local_window"),
    "window_bool": (q0, k0, v0, dict(local_window=True), ValueError, r"local_window"),
    # query offset
    "offset_negative": (q0, k0, v0, dict(is_causal=True, q_offset=-1), ValueError,
                        r"q_offset must be >= 0"),
    "offset_long": (q0, k0, v0, dict(is_causal=True, q_offset=_ints(B + 1)), ValueError,
                    r"q_offset"),
    "offset_2d": (q0, k0, v0, dict(is_causal=True, q_offset=_ints(B, 1)), ValueError,
                  r"q_offset"),
    "offset_float": (q0, k0, v0, dict(is_causal=True, q_offset=1.5), DTYPE_ERRORS, r"q_offset"),
    "offset_float_array": (q0, k0, v0, dict(is_causal=True, q_offset=_ints(B, dtype=np.float32)),
                           DTYPE_ERRORS, r"q_offset"),
    # lengths
    "q_lengths_long": (q0, k0, v0, dict(q_lengths=_ints(B + 1)), ValueError, r"q_lengths"),
    "q_lengths_2d": (q0, k0, v0, dict(q_lengths=_ints(B, 1)), ValueError, r"q_lengths"),
    "q_lengths_scalar": (q0, k0, v0, dict(q_lengths=3), ValueError, r"q_lengths"),
    "q_lengths_float": (q0, k0, v0, dict(q_lengths=_ints(B, dtype=np.float32)), DTYPE_ERRORS,
                        r"q_lengths"),
    "kv_lengths_long": (q0, k0, v0, dict(kv_lengths=_ints(B + 1)), ValueError, r"kv_lengths"),
    "kv_lengths_2d": (q0, k0, v0, dict(kv_lengths=_ints(1, B)), ValueError, r"kv_lengths"),
    "kv_lengths_float": (q0, k0, v0, dict(kv_lengths=_ints(B, dtype=np.float32)), DTYPE_ERRORS,
                         r"kv_lengths"),
    # segment ids
    "segments_single_t_ne_s": (q0, k0, v0, dict(segment_ids=_ints(B, T)), ValueError,
                               r"segment_ids .*T == S"),
    "segments_single_wrong_len": (*_qkv(s=T), dict(segment_ids=_ints(B, T + 1)), ValueError,
                                  r"segment_ids: q_segment_ids"),
    "segments_single_wrong_batch": (*_qkv(s=T), dict(segment_ids=_ints(1, T)), ValueError,
                                    r"segment_ids: q_segment_ids"),
    "segments_q_wrong": (q0, k0, v0, dict(segment_ids=(_ints(B, S), _ints(B, S))), ValueError,
                         r"segment_ids: q_segment_ids"),
    "segments_kv_wrong": (q0, k0, v0, dict(segment_ids=(_ints(B, T), _ints(B, T))), ValueError,
                          r"segment_ids: kv_segment_ids"),
    "segments_3_items": (q0, k0, v0, dict(segment_ids=(_ints(B, T), _ints(B, S), _ints(B, S))),
                         ValueError, r"segment_ids .*3 items"),
    "segments_float": (q0, k0, v0,
                       dict(segment_ids=(_ints(B, T, dtype=np.float32), _ints(B, S))),
                       DTYPE_ERRORS, r"segment_ids"),
    # flags
    "is_causal_int": (q0, k0, v0, dict(is_causal=1), DTYPE_ERRORS, r"is_causal"),
    "scale_string": (q0, k0, v0, dict(scale="0.5"), DTYPE_ERRORS, r"scale"),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_raises_naming_the_parameter(case, entry):
    q, k, v, opts, exc, match = CASES[case]
    with pytest.raises(exc, match=match):
        ENTRY_POINTS[entry](q, k, v, **opts)


def test_zero_head_dim_raises_value_error():
    with pytest.raises(ValueError, match="H"):
        reference_attention(*_qkv(h=0))


def test_unknown_implementation_lists_the_allowed_names():
    with pytest.raises(ValueError, match=r"unknown implementation 'flash'") as info:
        dot_product_attention(q0, k0, v0, implementation="flash")
    for name in IMPLEMENTATIONS:
        assert repr(name) in str(info.value)


@pytest.mark.parametrize("implementation,device", [
    ("cudnn", "GPU"), ("pallas_gpu", "GPU"), ("pallas_tpu", "TPU"),
])
def test_kernel_the_platform_cannot_run(implementation, device):
    with pytest.raises(ValueError, match=rf"implementation '{implementation}' needs a .*{device}"):
        dot_product_attention(*_qkv(s=T), implementation=implementation)


def test_blockwise_block_sizes_must_be_positive():
    with pytest.raises(ValueError, match="block_q and block_k"):
        blockwise_attention(q0, k0, v0, block_q=0)
    with pytest.raises(ValueError, match="block_q and block_k"):
        blockwise_attention(q0, k0, v0, block_k=-8)


# --- Pallas kernels: what each cannot do, checked in interpret mode on CPU ---------------------

def _spec(q, k, v, **opts):
    return check(q, k, v, **{**_DEFAULTS, **opts})


self_qkv = _qkv(s=T)
PALLAS_UNSUPPORTED = {
    "pallas_gpu": {
        "mask": (self_qkv, dict(mask=_mask(1, 1, T, T)), r"does not support mask"),
        "bias": (self_qkv, dict(bias=_mask(1, 1, T, T, dtype=np.float32)),
                 r"does not support bias"),
        "local_window": (self_qkv, dict(local_window=2), r"does not support local_window"),
        "q_offset": (self_qkv, dict(is_causal=True, q_offset=3), r"does not support q_offset"),
        "q_lengths": (self_qkv, dict(q_lengths=_ints(B)), r"does not support q_lengths"),
        "kv_lengths": (self_qkv, dict(kv_lengths=_ints(B)), r"does not support kv_lengths"),
        "t_ne_s": ((q0, k0, v0), {}, r"needs T == S"),
        "segment_pair": (self_qkv, dict(segment_ids=(_ints(B, T), _ints(B, T))),
                         r"one shared segment_ids"),
        "head_dim": (_qkv(s=T, h=24), {}, r"head dim"),
        "small_head_dim": (_qkv(s=T, h=8), {}, r"head dim"),
    },
    "pallas_tpu": {
        "mask": (self_qkv, dict(mask=_mask(1, 1, T, T)), r"does not support mask"),
        "local_window": (self_qkv, dict(local_window=(2, 0)), r"does not support local_window"),
        "q_offset": (self_qkv, dict(q_offset=_ints(B) + 1), r"does not support q_offset"),
        "causal_t_ne_s": ((q0, k0, v0), dict(is_causal=True), r"causal .*T == S"),
        "broadcast_bias": (self_qkv, dict(bias=_mask(1, 1, 1, T, dtype=np.float32)),
                           r"bias with full \[T, S\]"),
    },
}
PALLAS_KERNELS = {
    "pallas_gpu": (pallas.gpu_attention, pallas.gpu_constraints),
    "pallas_tpu": (pallas.tpu_attention, pallas.tpu_constraints),
}


@pytest.mark.parametrize("kernel,case", [
    (kernel, case) for kernel, cases in PALLAS_UNSUPPORTED.items() for case in cases
])
def test_pallas_unsupported_option_names_it(kernel, case):
    (q, k, v), opts, match = PALLAS_UNSUPPORTED[kernel][case]
    attention, constraints = PALLAS_KERNELS[kernel]
    spec = _spec(q, k, v, **opts)
    assert constraints(q, k, spec, interpret=True) is not None
    with pytest.raises(ValueError, match=match):
        attention(q, k, v, spec, interpret=True)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.int8, np.uint8])
def test_pallas_gpu_accepts_one_segment_ids_array_of_any_int_dtype(dtype):
    spec = _spec(*self_qkv, segment_ids=np.zeros((B, T), dtype))
    assert pallas.gpu_constraints(self_qkv[0], self_qkv[1], spec, interpret=True) is None
