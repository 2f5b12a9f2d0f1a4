"""MultiHeadAttention: shapes, GQA/MQA, weights, dropout, KV-cache decoding, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo.attention import MultiHeadAttention

B, T, D = 2, 11, 32


def _x(t=T, d=D, seed=0):
    return jax.random.normal(jax.random.key(seed), (B, t, d))


@pytest.mark.parametrize("heads,kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_shapes_and_param_axes(heads, kv_heads):
    mha = MultiHeadAttention(num_heads=heads, num_kv_heads=kv_heads)
    variables = mha.init(jax.random.key(1), _x())
    y = mha.apply(variables, _x())
    assert y.shape == (B, T, D) and y.dtype == jnp.float32
    h = D // heads
    assert variables["params"]["key"]["kernel"].value.shape == (D, kv_heads, h)
    specs = nn.get_partition_spec(variables)["params"]
    assert tuple(specs["query"]["kernel"]) == ("embed", "heads", "head_dim")
    assert tuple(specs["key"]["kernel"]) == ("embed", "kv_heads", "head_dim")
    assert tuple(specs["out"]["kernel"]) == ("heads", "head_dim", "embed")


def test_bfloat16_compute_keeps_float32_params():
    mha = MultiHeadAttention(num_heads=4, dtype=jnp.bfloat16)
    variables = mha.init(jax.random.key(1), _x())
    assert variables["params"]["query"]["kernel"].value.dtype == jnp.float32
    assert mha.apply(variables, _x()).dtype == jnp.bfloat16


@pytest.mark.parametrize("implementation", ["reference", "xla", "blockwise"])
def test_kernels_agree_inside_the_module(implementation):
    x, mem = _x(), _x(t=7, seed=3)
    base = MultiHeadAttention(num_heads=4, num_kv_heads=2, implementation="reference")
    variables = base.init(jax.random.key(1), x, mem)
    want = base.apply(variables, x, mem, kv_lengths=jnp.array([7, 3]))
    got = base.clone(implementation=implementation).apply(
        variables, x, mem, kv_lengths=jnp.array([7, 3]))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_returned_weights_are_a_causal_distribution():
    mha = MultiHeadAttention(num_heads=4, is_causal=True)
    variables = mha.init(jax.random.key(1), _x())
    y, weights = mha.apply(variables, _x(), return_weights=True)
    assert weights.shape == (B, 4, T, T)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert jnp.all(jnp.triu(weights, 1) == 0)
    np.testing.assert_allclose(y, mha.apply(variables, _x()), atol=2e-5)


def test_weight_dropout_only_when_training():
    mha = MultiHeadAttention(num_heads=4, dropout_rate=0.5)
    variables = mha.init(jax.random.key(1), _x())
    eval_out = mha.apply(variables, _x())
    np.testing.assert_allclose(eval_out, mha.apply(variables, _x(), deterministic=True))
    train_out = mha.apply(variables, _x(), deterministic=False,
                          rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(train_out, eval_out)


def _decode_setup(rotary, kv_heads=2, local_window=None):
    mha = MultiHeadAttention(num_heads=4, num_kv_heads=kv_heads, is_causal=True, rotary=rotary,
                             local_window=local_window)
    x = _x()
    params = mha.init(jax.random.key(1), x)["params"]
    full = mha.apply({"params": params}, x)
    cache = mha.init(jax.random.key(0), jnp.zeros((B, 16, D)), decode=True)["cache"]
    return mha, params, x, full, cache


@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("prompt", [1, 4])
@pytest.mark.parametrize("local_window", [None, 3])
def test_cached_decoding_equals_full_forward(rotary, prompt, local_window):
    mha, params, x, full, cache = _decode_setup(rotary, local_window=local_window)
    outs = []
    y, state = mha.apply({"params": params, "cache": cache}, x[:, :prompt], decode=True,
                         mutable=["cache"])
    outs.append(y)
    cache = state["cache"]
    t = prompt
    for step in (1, 2, 1, T):  # one or more tokens per call
        step = min(step, T - t)
        if step == 0:
            break
        y, state = mha.apply({"params": params, "cache": cache}, x[:, t:t + step],
                             decode=True, mutable=["cache"])
        outs.append(y)
        cache = state["cache"]
        t += step
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=3e-5)
    np.testing.assert_array_equal(cache["cache_index"], [T, T])


def test_ragged_prompts_advance_by_their_lengths():
    mha, params, x, full, cache = _decode_setup(rotary=True)
    lengths = jnp.array([3, 5])
    # Right-padded prompts: sequence 0 has 3 real tokens, sequence 1 has 5.
    _, state = mha.apply({"params": params, "cache": cache}, x[:, :5], lengths=lengths,
                         decode=True, mutable=["cache"])
    np.testing.assert_array_equal(state["cache"]["cache_index"], lengths)
    # Next token for each sequence = the token right after its own prompt.
    nxt = jnp.stack([x[0, 3], x[1, 5]])[:, None]  # [B, 1, D]
    y, _ = mha.apply({"params": params, "cache": state["cache"]}, nxt, decode=True,
                     mutable=["cache"])
    np.testing.assert_allclose(y[0, 0], full[0, 3], atol=3e-5)
    np.testing.assert_allclose(y[1, 0], full[1, 5], atol=3e-5)


@pytest.mark.parametrize("kv_heads,rotary", [(4, False), (2, False), (1, True)])
def test_cross_attention_cache_projects_the_memory_once(kv_heads, rotary):
    """decode=True with inputs_kv: the creating call stores the memory's keys and values;
    later calls read them, so they give the full forward's outputs even when handed a
    memory of zeros (padding of memory row 1 is masked by kv_lengths throughout)."""
    mha = MultiHeadAttention(num_heads=4, num_kv_heads=kv_heads, rotary=rotary)
    x, memory, kv_lengths = _x(), _x(t=7, d=24, seed=3), jnp.array([7, 4])
    params = mha.init(jax.random.key(1), x, memory)["params"]
    full = mha.apply({"params": params}, x, memory, kv_lengths=kv_lengths)
    _, state = mha.apply({"params": params}, x[:, :1], memory, kv_lengths=kv_lengths,
                         decode=True, mutable=["cache"])
    shape = (B, 7, kv_heads, D // 4)  # [B, S, K, H]
    assert {k: v.shape for k, v in state["cache"].items()} == {
        "cached_cross_key": shape, "cached_cross_value": shape}
    outs = []
    for t in range(T):  # a rotary query's position is its own; no self cache counts it here
        y, state = mha.apply({"params": params, **state}, x[:, t:t + 1], jnp.zeros_like(memory),
                             kv_lengths=kv_lengths, positions=jnp.full((B, 1), t), decode=True,
                             mutable=["cache"])
        outs.append(y)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=3e-5)
    with pytest.raises(ValueError, match=r"inputs_kv is \[B, S\] = \[2, 5\].*made for \[2, 7\]"):
        mha.apply({"params": params, **state}, x[:, :1], memory[:, :5], decode=True,
                  mutable=["cache"])


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="num_kv_heads"):
        MultiHeadAttention(num_heads=4, num_kv_heads=3).init(jax.random.key(0), _x())
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(num_heads=5).init(jax.random.key(0), _x())
    with pytest.raises(ValueError, match="inputs_q"):
        MultiHeadAttention(num_heads=4).init(jax.random.key(0), jnp.zeros((B, D)))
    with pytest.raises(ValueError, match="implementation"):
        MultiHeadAttention(num_heads=4, implementation="flash9").init(jax.random.key(0), _x())
    with pytest.raises(ValueError, match="dropout_rate"):
        MultiHeadAttention(num_heads=4, dropout_rate=1.5).init(jax.random.key(0), _x())
