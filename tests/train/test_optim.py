"""Schedules, optimizer options, writing phases and the checkpointer's restore onto other
devices."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from zoo.train import checkpoints, losses, optim
from zoo.train.config import base_config
from zoo.train.state import Phase, TrainState, make_train_step


def _optim(**overrides):
    c = base_config().optim
    c.update(overrides)
    return c


def test_rsqrt_schedule_is_the_papers_formula():
    schedule = optim.make_schedule(_optim(schedule="rsqrt", d_model=512, warmup_steps=4000,
                                          learning_rate=1.0))
    for step in (1, 100, 3999, 4000, 4001, 100_000):
        want = 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        np.testing.assert_allclose(schedule(step), want, rtol=1e-6)
    assert float(schedule(0)) == float(schedule(1))  # no division by zero at step 0


@pytest.mark.parametrize("name", ["cosine", "linear", "constant"])
def test_warmup_schedules_peak_at_the_learning_rate(name):
    cfg = _optim(schedule=name, learning_rate=0.5, warmup_steps=10, num_train_steps=100)
    schedule = optim.make_schedule(cfg)
    np.testing.assert_allclose(schedule(10), 0.5, rtol=1e-6)
    if name != "constant":
        assert float(schedule(0)) == 0.0 and float(schedule(100)) < 0.5


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="optim.schedule"):
        optim.make_schedule(_optim(schedule="exp"))


def test_gradient_accumulation_equals_the_big_batch_step():
    w = {"w": jnp.arange(6.0).reshape(2, 3)}
    xs = jax.random.normal(jax.random.key(0), (4, 3))

    def loss(p, x):
        return jnp.sum((x @ p["w"].T) ** 2)

    big, _ = optim.make_optimizer(_optim(schedule="constant", learning_rate=0.1,
                                         clip_grad_norm=0.0))
    acc, _ = optim.make_optimizer(_optim(schedule="constant", learning_rate=0.1,
                                         clip_grad_norm=0.0, grad_accum_steps=2))
    g = jax.grad(lambda p: (loss(p, xs[:2]) + loss(p, xs[2:])) / 2)(w)
    updates, _ = big.update(g, big.init(w), w)
    want = optax.apply_updates(w, updates)
    state, p = acc.init(w), w
    for half in (xs[:2], xs[2:]):
        updates, state = acc.update(jax.grad(loss)(p, half), state, p)
        p = optax.apply_updates(p, updates)
    np.testing.assert_allclose(p["w"], want["w"], rtol=1e-5)


def test_a_writing_phase_sets_its_group_and_the_next_phase_sees_it():
    """Phase(writes=True): the group becomes the returned value exactly, with no optimizer
    state; a later gradient phase reads the new value; a writing phase needs a group."""
    params = {"w": jnp.ones((3,)), "memory": jnp.zeros((3,))}

    def write(p, batch, rng, deterministic):
        return p["w"] * 2.0 + batch["x"], {"written": jnp.sum(batch["x"])}

    def fit(p, batch, rng, deterministic):
        return jnp.sum((p["w"] - p["memory"]) ** 2), {}

    tx = optax.sgd(0.1)
    state = TrainState.create(params, tx, jax.random.key(0), groups=("w",))
    assert set(state.opt_state) == {"w"}
    step = jax.jit(make_train_step((Phase(write, group="memory", writes=True),
                                    Phase(fit, group="w")), optax.constant_schedule(0.1)))
    x = jnp.array([0.5, -1.0, 3.0])
    state, metrics = step(state, {"x": x})
    np.testing.assert_array_equal(state.params["memory"], 2.0 + x)
    # d/dw |w - m|^2 = 2 (w - m), one SGD step of 0.1 from w = 1 against the written m.
    np.testing.assert_allclose(state.params["w"], 1.0 - 0.2 * (1.0 - (2.0 + x)), rtol=1e-6)
    assert float(metrics["written"]) == 2.5 and "grad_norm" in metrics
    with pytest.raises(ValueError, match="writes=True must name the group"):
        make_train_step((Phase(write, writes=True),), optax.constant_schedule(0.1))


def test_weight_decay_skips_vectors():
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}
    tx, _ = optim.make_optimizer(_optim(schedule="constant", learning_rate=0.1,
                                        weight_decay=0.5, clip_grad_norm=0.0))
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    assert jnp.all(updates["kernel"] < 0) and jnp.all(updates["bias"] == 0)


def test_label_smoothing_loss_is_zero_at_the_smoothed_target():
    vocab, eps = 5, 0.1
    target = jnp.array([[2]])
    probs = jnp.full((vocab,), eps / (vocab - 1)).at[2].set(1 - eps)
    loss, _ = losses.cross_entropy(jnp.log(probs)[None, None], target, jnp.ones((1, 1)), eps)
    np.testing.assert_allclose(loss, 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.cross_entropy(jnp.zeros((1, 1, 3)), target, jnp.ones((1, 1)), 1.5)


def test_checkpoint_restores_onto_another_device_count(tmp_path):
    """Saved sharded over 8 devices, restored onto 1 (and back)."""
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    state = {"w": jax.device_put(jnp.arange(64.0).reshape(16, 4), sharded)}
    ckpt = checkpoints.Checkpointer(str(tmp_path / "ck"))
    ckpt.save(1, state, config={"note": "x"})
    ckpt.wait()
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {"w": jax.device_put(jnp.zeros((16, 4)), one)}
    restored = ckpt.restore_latest(target)
    assert restored.step == 1 and restored.config == {"note": "x"}
    assert restored.state["w"].sharding == one
    np.testing.assert_array_equal(restored.state["w"], np.arange(64.0).reshape(16, 4))
    ckpt.close()


def test_best_checkpoint_is_kept_beyond_the_last_k(tmp_path):
    ckpt = checkpoints.Checkpointer(str(tmp_path / "ck"), max_to_keep=1, best_metric="acc")
    for step, acc in [(1, 0.9), (2, 0.1), (3, 0.2)]:
        ckpt.save(step, {"w": jnp.ones(2) * step}, metrics={"acc": acc})
    ckpt.wait()
    assert ckpt.steps() == [1, 3]
    ckpt.close()


def test_config_keys_are_checked_recursively():
    from zoo.train.config import validate

    with pytest.raises(ValueError, match="optim.lr"):
        validate(ml_collections.ConfigDict({"optim": {"lr": 1.0}}))
