"""Alignment scores vs. naive per-(t, s) loops of the paper formulas, and `attend`."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from zoo.attention.scores import (
    SCORES,
    AdditiveScore,
    ConcatScore,
    DotScore,
    ScaledDotScore,
    attend,
    make_score,
)

B, T, S, D, E, F, DV = 2, 3, 5, 8, 6, 7, 4
KINDS = sorted(SCORES)
SAME_WIDTH_KINDS = ("dot", "scaled_dot")


def _inputs(kind, dtype=jnp.float32, seed=0):
    kq, kk = jax.random.split(jax.random.key(seed))
    e = D if kind in SAME_WIDTH_KINDS else E
    query = jax.random.normal(kq, (B, T, D), dtype)  # [B, T, D]
    keys = jax.random.normal(kk, (B, S, e), dtype)  # [B, S, E]
    return query, keys


def _naive(kind, params, query, keys):
    """The formula for one (t, s) pair at a time, in float64 numpy."""
    q, k = np.asarray(query, np.float64), np.asarray(keys, np.float64)
    p = {name: np.asarray(x, np.float64) for name, x in params.items()}
    out = np.zeros((B, T, S))
    for b in range(B):
        for t in range(T):
            for s in range(S):
                st, hs = q[b, t], k[b, s]  # [D], [E]
                if kind == "dot":
                    out[b, t, s] = st @ hs
                elif kind == "scaled_dot":
                    out[b, t, s] = st @ hs / np.sqrt(hs.shape[0])
                elif kind == "general":
                    out[b, t, s] = st @ p["kernel"] @ hs
                elif kind == "concat":
                    out[b, t, s] = p["v"] @ np.tanh(np.concatenate([st, hs]) @ p["kernel"])
                elif kind == "additive":
                    pre = st @ p["w_query"] + hs @ p["w_keys"] + p.get("bias", 0.0)
                    out[b, t, s] = p["v"] @ np.tanh(pre)
    return out


def _init_apply(module, query, keys):
    variables = module.init(jax.random.key(1), query, keys)
    return variables, module.apply(variables, query, keys)


@pytest.mark.parametrize("kind", KINDS)
def test_score_matches_naive_formula(kind):
    query, keys = _inputs(kind)
    variables, scores = _init_apply(make_score(kind, hidden=F), query, keys)
    params = nn.unbox(variables).get("params", {})
    np.testing.assert_allclose(scores, _naive(kind, params, query, keys), rtol=1e-5, atol=1e-5)


def test_additive_with_bias_matches_naive_formula():
    query, keys = _inputs("additive")
    module = AdditiveScore(hidden=F, use_bias=True, bias_init=nn.initializers.normal(1.0))
    variables, scores = _init_apply(module, query, keys)
    params = nn.unbox(variables)["params"]
    assert params["bias"].shape == (F,)
    np.testing.assert_allclose(
        scores, _naive("additive", params, query, keys), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_dtypes(kind, dtype):
    query, keys = _inputs(kind)
    variables, reference = _init_apply(make_score(kind, hidden=F), query, keys)
    scores = make_score(kind, hidden=F, dtype=dtype).apply(variables, query, keys)
    assert scores.shape == (B, T, S)
    assert scores.dtype == jnp.float32
    for leaf in jax.tree.leaves(nn.unbox(variables)):
        assert leaf.dtype == jnp.float32
    # bfloat16 has ~3 significant digits; the scores are O(1)-O(D).
    tol = 1e-6 if dtype == jnp.float32 else 0.15
    np.testing.assert_allclose(scores, reference, rtol=tol, atol=tol)


def test_scaled_dot_is_dot_over_sqrt_width():
    query, keys = _inputs("dot")
    dot = DotScore().apply({}, query, keys)
    scaled = ScaledDotScore().apply({}, query, keys)
    np.testing.assert_allclose(scaled, dot / np.sqrt(D), rtol=1e-6)


@pytest.mark.parametrize("kind", ["concat", "additive"])
def test_logical_axis_names(kind):
    query, keys = _inputs(kind)
    variables = make_score(kind, hidden=F).init(jax.random.key(0), query, keys)
    for leaf in jax.tree.leaves(variables, is_leaf=lambda x: isinstance(x, nn.Partitioned)):
        assert isinstance(leaf, nn.LogicallyPartitioned)
    specs = nn.get_partition_spec(variables)["params"]
    expected = {
        "concat": {"kernel": P("embed", "mlp"), "v": P("mlp")},
        "additive": {"w_query": P("embed", "mlp"), "w_keys": P("kv_embed", "mlp"), "v": P("mlp")},
    }[kind]
    assert specs == expected


def test_general_logical_axis_names():
    query, keys = _inputs("general")
    variables = make_score("general").init(jax.random.key(0), query, keys)
    assert nn.get_partition_spec(variables)["params"] == {"kernel": P("embed", "kv_embed")}


# --- attend ---------------------------------------------------------------------------


def _attend_inputs(seed=0):
    ks, kv, km = jax.random.split(jax.random.key(seed), 3)
    scores = 3.0 * jax.random.normal(ks, (B, T, S))  # [B, T, S]
    values = jax.random.normal(kv, (B, S, DV))  # [B, S, Dv]
    mask = jax.random.bernoulli(km, 0.6, (B, T, S))  # [B, T, S]
    mask = mask.at[0, 1, :].set(False)  # one fully masked row
    mask = mask.at[1, 0, :].set(True)  # one fully open row
    return scores, values, mask


def test_attend_weights_normalised_and_zero_where_masked():
    scores, values, mask = _attend_inputs()
    context, weights = attend(scores, values, mask)
    assert weights.dtype == jnp.float32 and weights.shape == (B, T, S)
    assert context.dtype == values.dtype and context.shape == (B, T, DV)
    w, m = np.asarray(weights), np.asarray(mask)
    assert np.all(w[~m] == 0.0)
    open_rows = m.any(-1)  # [B, T]
    np.testing.assert_allclose(w.sum(-1)[open_rows], 1.0, rtol=1e-6)
    np.testing.assert_array_equal(w[0, 1], 0.0)
    np.testing.assert_array_equal(np.asarray(context)[0, 1], 0.0)
    np.testing.assert_allclose(context, np.einsum("bts,bsd->btd", w, values), rtol=1e-5)
    # Unmasked weights are the softmax over the unmasked scores alone.
    row = np.asarray(scores)[1, 2][m[1, 2]]
    np.testing.assert_allclose(w[1, 2][m[1, 2]], np.exp(row) / np.exp(row).sum(), rtol=1e-5)


def test_attend_without_mask_is_softmax():
    scores, values, _ = _attend_inputs()
    context, weights = attend(scores, values)
    np.testing.assert_allclose(weights, jax.nn.softmax(scores, axis=-1), rtol=1e-6)
    np.testing.assert_allclose(context, np.einsum("bts,bsd->btd", weights, values), rtol=1e-5)


def test_attend_ignores_values_at_masked_source_positions():
    scores, values, _ = _attend_inputs()
    lengths = jnp.array([3, S])
    mask = (jnp.arange(S)[None, :] < lengths[:, None])[:, None, :]  # [B, 1, S]
    context, _ = attend(scores, values, mask)
    garbage = values.at[0, 3:].set(1e4)
    np.testing.assert_array_equal(attend(scores, garbage, mask).context, context)


def test_attend_fully_masked_row_has_finite_gradients():
    scores, values, mask = _attend_inputs()

    def loss(scores, values):
        context, weights = attend(scores, values, mask)
        return jnp.sum(context**2) + jnp.sum(weights * scores)

    g_scores, g_values = jax.grad(loss, argnums=(0, 1))(scores, values)
    assert np.all(np.isfinite(g_scores)) and np.all(np.isfinite(g_values))
    np.testing.assert_array_equal(np.asarray(g_scores)[~np.asarray(mask)], 0.0)


def test_attend_context_in_values_dtype():
    scores, values, mask = _attend_inputs()
    context, weights = attend(scores.astype(jnp.bfloat16), values.astype(jnp.bfloat16), mask)
    assert context.dtype == jnp.bfloat16 and weights.dtype == jnp.float32


# --- errors ---------------------------------------------------------------------------


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"kind must be one of .*'additive'.*got 'luong'"):
        make_score("luong")


@pytest.mark.parametrize("kind", ["concat", "additive"])
@pytest.mark.parametrize("hidden", [None, 0, -3])
def test_missing_hidden(kind, hidden):
    with pytest.raises(ValueError, match=rf"needs hidden.*got {hidden}"):
        make_score(kind, hidden=hidden)


def test_missing_hidden_direct_construction():
    with pytest.raises(ValueError, match="needs hidden"):
        ConcatScore(hidden=0)


@pytest.mark.parametrize("kind", SAME_WIDTH_KINDS)
def test_width_mismatch(kind):
    query, keys = _inputs("general")  # D != E
    with pytest.raises(ValueError, match=rf"query width.*{D}.*keys width {E}"):
        make_score(kind).init(jax.random.key(0), query, keys)


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_rank_and_batch(kind):
    query, keys = _inputs(kind)
    module = make_score(kind, hidden=F)
    with pytest.raises(ValueError, match=r"query must be 3-D .*\(3, 8\)"):
        module.init(jax.random.key(0), query[0], keys)
    with pytest.raises(ValueError, match=r"keys must be 3-D"):
        module.init(jax.random.key(0), query, keys[None])
    with pytest.raises(ValueError, match=r"same batch size"):
        module.init(jax.random.key(0), query, keys[:1])


def test_attend_errors():
    scores, values, mask = _attend_inputs()
    with pytest.raises(ValueError, match=r"scores must be 3-D"):
        attend(scores[0], values)
    with pytest.raises(ValueError, match=r"values must be 3-D"):
        attend(scores, values[0])
    with pytest.raises(ValueError, match=r"values shape .* S=5"):
        attend(scores, values[:, :4])
    with pytest.raises(ValueError, match=r"mask shape \(2, 5\)"):
        attend(scores, values, mask[:, 0])
    with pytest.raises(TypeError, match=r"mask must be bool"):
        attend(scores, values, mask.astype(jnp.float32))
