"""Every registry model as an nnx.Module (flax.nnx.bridge, through zoo.interop.nnx.to_nnx).

The bridged module must keep the linen parameter paths, give the linen outputs
on the same parameters, and train like the linen model: one ``nnx.Optimizer``
step gives the parameters that optax gives on ``jax.grad`` of the same loss.
Models are their presets at a few units wide (model_examples.build_tiny).

Cost: running a model eagerly compiles each of its ops, a second or more per
model, so the every-model check compares traced programs (see
``_assert_same_outputs``) and runs nothing; each training-step check is one
jitted program.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from model_examples import TINY_VOCAB, build_tiny, example_inputs

from zoo import registry
from zoo.interop.nnx import to_nnx


def _params(module) -> dict:
    """The bridged module's parameters as a linen ``params`` tree of arrays."""
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def _assert_trees_close(actual, expected, atol=1e-6):
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)


def _assert_same_outputs(f, g, params):
    """f(params) equals g(params), exactly or within 1e-6.

    Two functions that trace to the same program with the same constants give
    the same outputs bit for bit, for these and any other parameters; tracing
    costs a fraction of running. Only when the programs differ are both run.
    """
    f_jaxpr, g_jaxpr = jax.make_jaxpr(f)(params), jax.make_jaxpr(g)(params)
    if str(f_jaxpr) == str(g_jaxpr) and len(f_jaxpr.consts) == len(g_jaxpr.consts) and all(
            np.array_equal(a, b) for a, b in zip(f_jaxpr.consts, g_jaxpr.consts, strict=True)):
        return
    _assert_trees_close(f(params), g(params))


def _bridge_with_any_values(model, args, kwargs):
    """``to_nnx(model, ...)`` traced rather than run, with parameters drawn by numpy.

    Running the initializers would compile each of them for each parameter
    shape. The module's own rng streams stay abstract, so calls pass a key.
    """
    bridged = nnx.eval_shape(lambda: to_nnx(model, *args, rngs=nnx.Rngs(0), **kwargs))
    params = nnx.state(bridged, nnx.Param)
    draw = np.random.default_rng(0)
    nnx.replace_by_pure_dict(params, jax.tree.map(
        lambda x: (0.5 * draw.standard_normal(x.shape)).astype(x.dtype),
        nnx.to_pure_dict(params)))
    nnx.update(bridged, params)
    return bridged


@pytest.mark.parametrize("name", registry.names())
def test_every_model_bridges_with_the_linen_params_and_outputs(name):
    model = build_tiny(name)
    args, kwargs = example_inputs(model)
    bridged = _bridge_with_any_values(model, args, kwargs)
    assert isinstance(bridged, nnx.Module)

    linen_init = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))
    assert jax.tree.map(jnp.shape, _params(bridged)) == jax.tree.map(
        jnp.shape, nn.unbox(linen_init["params"]))

    graphdef, params, rest = nnx.split(bridged, nnx.Param, ...)
    key = jax.random.key(1)
    _assert_same_outputs(
        lambda p: nnx.merge(graphdef, p, rest)(*args, rngs=key, **kwargs),
        lambda p: model.apply({"params": nnx.to_pure_dict(p)}, *args, rngs={"params": key},
                              **kwargs),
        params)


def test_to_nnx_names_what_it_takes():
    tokens = jnp.ones((2, 5), jnp.int32)
    with pytest.raises(TypeError, match="model must be a flax.linen.Module"):
        to_nnx("lm_tiny", tokens, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="rngs must be an nnx.Rngs"):
        to_nnx(build_tiny("lm_tiny"), tokens, rngs=0)


def _seq2seq_batch(model, key):
    """Random tokens in the example inputs' shapes, and labels [B, T]."""
    (src, tgt_in), kwargs = example_inputs(model)
    k_src, k_tgt, k_labels = jax.random.split(key, 3)
    src = jax.random.randint(k_src, src.shape, 1, TINY_VOCAB)  # [B, S]
    tgt_in = jax.random.randint(k_tgt, tgt_in.shape, 1, TINY_VOCAB)  # [B, T]
    labels = jax.random.randint(k_labels, tgt_in.shape, 1, TINY_VOCAB)  # [B, T]
    return (src, tgt_in), kwargs, labels


def _seq2seq_loss(out, labels):
    return optax.softmax_cross_entropy_with_integer_labels(out.logits, labels).mean()


def _vae_batch(model, key):
    (x, _), kwargs = example_inputs(model)
    k_x, k_z = jax.random.split(key)
    x = jax.random.bernoulli(k_x, 0.5, x.shape).astype(jnp.float32)  # [B, ...]
    return (x, k_z), kwargs, None


# name -> (batch maker, loss of (output, labels), training-call options). Dropout is on
# for the Transformer: both sides must draw the same masks from the same key.
STEP_CASES = {
    "transformer_tiny": (_seq2seq_batch, _seq2seq_loss, {"deterministic": False}),
    "seq2seq_plain_rnn": (_seq2seq_batch, _seq2seq_loss, {}),
    "vae_tiny": (_vae_batch, lambda out, labels: out.loss, {}),
}


@pytest.mark.parametrize("name", sorted(STEP_CASES))
def test_an_nnx_optimizer_step_matches_the_linen_optax_step(name):
    make_batch, loss_of, options = STEP_CASES[name]
    model = build_tiny(name)
    if options.get("deterministic") is False:  # the check means something only with masks
        assert model.config.dropout_rate > 0
    args, kwargs, labels = make_batch(model, jax.random.key(1))
    tx = optax.adam(1e-3)
    # A call's own key: the bridge hands it to linen as the 'params' rng, which linen's
    # dropout draws from when there is no 'dropout' rng.
    key = jax.random.key(2)

    @jax.jit  # one program for both steps: cheaper than compiling every op eagerly
    def both_steps():
        bridged = to_nnx(model, *args, rngs=nnx.Rngs(0), **kwargs)
        before = _params(bridged)

        def linen_loss(params):
            out = model.apply({"params": params}, *args, rngs={"params": key}, **kwargs,
                              **options)
            return loss_of(out, labels)

        linen_grads = jax.grad(linen_loss)(before)
        updates, _ = tx.update(linen_grads, tx.init(before), before)
        linen_after = optax.apply_updates(before, updates)

        optimizer = nnx.Optimizer(bridged, tx, wrt=nnx.Param)
        grads = nnx.grad(lambda m: loss_of(m(*args, rngs=key, **kwargs, **options), labels))(
            bridged)
        optimizer.update(bridged, grads)
        return before, linen_grads, linen_after, nnx.to_pure_dict(grads), _params(bridged)

    before, linen_grads, linen_after, nnx_grads, nnx_after = both_steps()
    # Adam's first step is about lr * sign(grad), blind to the gradients' size: compare them too.
    _assert_trees_close(nnx_grads, linen_grads)
    _assert_trees_close(nnx_after, linen_after)
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), nnx_after, before)
    assert all(jax.tree.leaves(moved))
