"""The hoisted RNN stack (input projection outside the time loop, its own backward pass)
against flax's cells under nn.RNN: same params, outputs, final carries and gradients.

Glossary: B batch, T time, E input width, R cell width per direction, L layers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from zoo.rnn.cells import RNNStack

B, T, E, R = 3, 5, 4, 6
LENGTHS = np.array([5, 2, 3], np.int32)  # odd lengths, one full row
F32 = dict(rtol=1e-5, atol=1e-5)
# bfloat16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%). The two paths round at
# different places: their matmuls block differently, and the hoisted one sums dW_h over
# all steps in float32 where nn.RNN's loop adds each step's bfloat16 share. A few
# roundings of 0.4% over T = 5 steps and two layers stay within 5e-2 of values O(1).
BF16 = dict(rtol=5e-2, atol=5e-2)


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, E)).astype(np.float32)  # [B, T, E]
    weights = rng.standard_normal((B, T, 2 * R)).astype(np.float32)  # [B, T, 2R]
    return jnp.asarray(x), jnp.asarray(weights)


def _init(stack, x, lengths):
    return meta.unbox(jax.jit(stack.init)(jax.random.key(0), x, seq_lengths=lengths))


def _params(stack, x, lengths):
    params = _init(stack, x, lengths)
    # Nonzero biases, so a bias on the wrong side of a product would show.
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [p + 0.3 * jax.random.normal(k, p.shape, p.dtype)
              for p, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, leaves)


def _outputs_and_grads(stack, params, x, weights, lengths):
    """(y [B, T, R or 2R], finals, d params, d x) of a loss on real positions and finals."""
    mask = (jnp.arange(T)[None, :] < lengths[:, None])[:, :, None]  # [B, T, 1]

    def loss(params, x):
        y, finals = stack.apply(params, x, seq_lengths=lengths)
        y32 = y.astype(jnp.float32)
        real = jnp.sum(y32 * weights[..., : y.shape[-1]] * mask)
        last = sum(jnp.sum(jnp.sin(leaf.astype(jnp.float32))) for leaf in jax.tree.leaves(finals))
        return real + last, (y, finals)

    (_, (y, finals)), (d_params, d_x) = jax.jit(jax.value_and_grad(
        loss, argnums=(0, 1), has_aux=True))(params, x)
    return y, finals, d_params, d_x


def _assert_close(a, b, tol):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(u, np.float32), np.asarray(v, np.float32), **tol)


# Every cell bidirectional (both directions, reverse flips); two layers for the LSTM
# (the second reads both directions of the first), both ways.
# The other cells and the unidirectional stack in the slow tier (make test-all).
@pytest.mark.parametrize(("cell", "bidirectional", "num_layers"),
                         [("lstm", True, 2),
                          pytest.param("lstm", False, 2, marks=pytest.mark.slow),
                          pytest.param("gru", True, 1, marks=pytest.mark.slow),
                          pytest.param("rnn", True, 1, marks=pytest.mark.slow)])
def test_hoisted_stack_matches_flax_cells(cell, bidirectional, num_layers):
    x, weights = _inputs()
    lengths = jnp.asarray(LENGTHS)
    hoisted = RNNStack(cell, num_layers, R, bidirectional=bidirectional, hoist=True)
    plain = RNNStack(cell, num_layers, R, bidirectional=bidirectional, hoist=False)
    # One param tree, same initial values from the same key: a checkpoint of either loads
    # into the other.
    init = [_init(m, x, lengths) for m in (hoisted, plain)]
    assert jax.tree.structure(init[0]) == jax.tree.structure(init[1])
    _assert_close(init[0], init[1], dict(rtol=0, atol=0))

    params = _params(plain, x, lengths)
    got = _outputs_and_grads(hoisted, params, x, weights, lengths)
    want = _outputs_and_grads(plain, params, x, weights, lengths)
    # Every position, padding included: both run on past a row's end the same way.
    _assert_close(got, want, F32)
    assert float(jnp.abs(want[3]).max()) > 0  # the input gradient is not trivially zero


@pytest.mark.slow  # make test-all
@pytest.mark.parametrize("cell", ["lstm"])
def test_hoisted_stack_matches_flax_cells_bfloat16(cell):
    x, weights = _inputs(seed=2)
    lengths = jnp.asarray(LENGTHS)
    kw = dict(bidirectional=True, dtype=jnp.bfloat16)
    hoisted, plain = RNNStack(cell, 2, R, hoist=True, **kw), RNNStack(cell, 2, R, hoist=False, **kw)
    params = _params(plain, x, lengths)
    got = _outputs_and_grads(hoisted, params, x, weights, lengths)
    want = _outputs_and_grads(plain, params, x, weights, lengths)
    assert got[0].dtype == want[0].dtype == jnp.bfloat16
    _assert_close(got, want, BF16)


def test_hoisted_stack_threads_given_carries_without_lengths():
    # The decoder's path: initial carries from the encoder, no seq_lengths.
    x, weights = _inputs(seed=3)
    hoisted, plain = RNNStack("lstm", 2, R, hoist=True), RNNStack("lstm", 2, R, hoist=False)
    params = _params(plain, x, jnp.asarray(LENGTHS))
    rng = np.random.default_rng(4)
    carries = tuple((jnp.asarray(rng.standard_normal((B, R)), jnp.float32),
                     jnp.asarray(rng.standard_normal((B, R)), jnp.float32)) for _ in range(2))

    def run(stack):
        def loss(params, carries):
            y, finals = stack.apply(params, x, carries)
            return jnp.sum(y * weights[..., :R]) + sum(jnp.sum(f) for f in jax.tree.leaves(finals))
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, carries)

    _assert_close(run(hoisted), run(plain), F32)
