"""Sharding on 8 fake CPU devices: every strategy trains like one device, shards as its rules say.

Glossary: B batch, S source length, T target length.

For the RNN seq2seq, the Transformer encoder-decoder and the GQA decoder-only
LM, a few optimizer steps under dp / fsdp / tp / fsdp_tp give the losses and
parameters of the same steps on a single device; parameters (and Adam's
moments) are split exactly as written out below; the models' logical
activation constraints reach the lowered program only with the mesh and rules
in scope; a checkpoint saved on one mesh restores onto another. Bad meshes
raise ValueErrors naming what is wrong.
"""

import functools
import os
import sys

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
import pytest

from zoo import sharding
from zoo.train import checkpoints, families, optim
from zoo.train import config as config_lib
from zoo.train.loop import init_sharded
from zoo.train.state import make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from configs import date_seq2seq  # noqa: E402

MESHES = {  # strategy -> (mesh shape, mesh axes) on 8 devices
    "dp": ((8,), ("data",)),
    "fsdp": ((2, 4), ("data", "fsdp")),
    "tp": ((2, 4), ("data", "tensor")),
    "fsdp_tp": ((2, 4), ("fsdp", "tensor")),
}
MODELS = {  # name -> (family, model section of the config)
    "rnn": ("seq2seq", {"name": "seq2seq_luong_lstm", "hidden_dim": 32, "embed_dim": 16}),
    "transformer": ("seq2seq", {"name": "transformer_tiny", "dropout_rate": 0.1}),
    "lm": ("lm", {"name": "lm_tiny"}),  # GQA: 4 query heads share 2 key/value heads
}
VOCAB = 40
STEPS = 3


def _config(model: str) -> ml_collections.ConfigDict:
    family, section = MODELS[model]
    c = date_seq2seq.get_config("tiny")
    c.family = family
    c.model = section
    c.optim.schedule = "constant"  # no warm-up: every step moves the parameters
    c.optim.warmup_steps = 0
    c.optim.learning_rate = 1e-2
    return config_lib.validate(c)


def _batch(config, rows: int = 16) -> dict:
    """Random ids with ragged lengths (padding inside the batch), fixed seed."""
    rng = np.random.default_rng(0)
    s, t = config.data.max_src_len, config.data.max_tgt_len
    tgt = rng.integers(4, VOCAB, (rows, t)).astype(np.int32)  # [B, T]
    if config.family == "lm":
        lengths = rng.integers(2, t + 1, rows)
        return {"inputs": tgt, "targets": np.roll(tgt, -1, axis=1),
                "weights": (np.arange(t)[None, :] < lengths[:, None]).astype(np.int32)}
    return {"src": rng.integers(4, VOCAB, (rows, s)).astype(np.int32),  # [B, S]
            "src_lengths": rng.integers(1, s + 1, rows).astype(np.int32),
            "tgt_in": tgt, "tgt_out": np.roll(tgt, -1, axis=1),
            "tgt_lengths": rng.integers(1, t + 1, rows).astype(np.int32)}


def _setup(model: str, plan: sharding.Plan, abstract: bool = False):
    """(config, state, jitted sharded step); an ``abstract`` state is shapes and shardings
    only, for lowering (nothing initialised or compiled)."""
    config = _config(model)
    family = families.make(config)
    net = family.build_model({"src": VOCAB, "tgt": VOCAB})
    tx, schedule = optim.make_optimizer(config.optim)
    init = functools.partial(family.init_state, net, tx)
    if abstract:
        shapes = jax.eval_shape(init, jax.random.PRNGKey(0))
        shardings = plan.state_shardings(shapes)
        state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                             nn.unbox(shapes), shardings)
    else:
        state, shardings = init_sharded(init, plan, jax.random.PRNGKey(0))
    step = jax.jit(make_train_step(family.phases(net), schedule), donate_argnums=0,
                   in_shardings=(shardings, plan.batch_sharding),
                   out_shardings=(shardings, plan.replicated))
    return config, state, step


def _train(model: str, plan: sharding.Plan):
    config, state, step = _setup(model, plan)
    batch = plan.global_batch(_batch(config))
    losses = []
    for _ in range(STEPS):
        with plan.activate():
            state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    return np.asarray(losses), state


@functools.cache
def _trained(model: str, strategy: str):
    """(losses, state) of STEPS steps under ``strategy``'s mesh; shared by the tests."""
    return _train(model, sharding.make_plan(*MESHES[strategy], strategy))


@functools.cache
def _single_device(model: str):
    plan = sharding.make_plan((1,), ("data",), "dp", devices=jax.devices()[:1])
    losses, state = _train(model, plan)
    return losses, jax.device_get(state.params)


def _assert_params_close(params, ref_params):
    # Adam's update is ~ lr * sign(g) where g is near zero, so a gradient that differs in the
    # last bits (another reduction order) may move a parameter by up to lr (1e-2) the other
    # way; 1e-3 still catches any real difference in the step. The key projection's bias
    # adds the same q.b to every score of a query, which softmax cancels: its gradient is
    # rounding noise that Adam blows up to +-lr, so it is not compared.
    def check(path, a, b):
        if not jax.tree_util.keystr(path).endswith("['key']['bias']"):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3, err_msg=str(path))

    jax.tree_util.tree_map_with_path(check, jax.device_get(params), ref_params)


def _leaf(tree, path: str):
    node = tree
    for key in path.split("/"):
        node = node[key]
    return node


def _adam_mu(state):
    found = [s for s in jax.tree.leaves(state.opt_state,
                                        is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
             if isinstance(s, optax.ScaleByAdamState)]
    assert len(found) == 1
    return found[0].mu


# Per-device shard shapes, written out by hand from the strategy descriptions (not from
# the rules code): parameter path -> {strategy: shard shape}.
EXPECTED_SHARDS = {
    "rnn": {
        # LSTM input kernel [embed 16, mlp 32]
        "encoder/stack/layers_0/cell/ii/kernel": {
            "dp": (16, 32), "fsdp": (4, 32), "tp": (16, 8), "fsdp_tp": (8, 8)},
        # recurrent kernel [recurrent 32, mlp 32]
        "decoder/step/stack/cells_0/hf/kernel": {
            "dp": (32, 32), "fsdp": (8, 32), "tp": (32, 8), "fsdp_tp": (16, 8)},
        # embedding [vocab 40, embed 16]: the vocabulary is never split
        "encoder/embed/embedding": {
            "dp": (40, 16), "fsdp": (40, 4), "tp": (40, 16), "fsdp_tp": (40, 8)},
    },
    "transformer": {
        # query kernel [embed 32, heads 4, head_dim 8]: column-parallel under TP
        "encoder/layers_0/self_attention/query/kernel": {
            "dp": (32, 4, 8), "fsdp": (8, 4, 8), "tp": (32, 1, 8), "fsdp_tp": (16, 1, 8)},
        # output kernel [heads 4, head_dim 8, embed 32]: row-parallel under TP
        "decoder/layers_1/cross_attention/out/kernel": {
            "dp": (4, 8, 32), "fsdp": (4, 8, 8), "tp": (1, 8, 32), "fsdp_tp": (1, 8, 16)},
        # FFN [embed 32, mlp 64] and [mlp 64, embed 32]
        "decoder/layers_0/ffn/wi": {
            "dp": (32, 64), "fsdp": (8, 64), "tp": (32, 16), "fsdp_tp": (16, 16)},
        "encoder/layers_1/ffn/wo": {
            "dp": (64, 32), "fsdp": (64, 8), "tp": (16, 32), "fsdp_tp": (16, 16)},
    },
}


@pytest.mark.parametrize("strategy", sorted(MESHES))
@pytest.mark.parametrize("model", ["rnn", "transformer"])
def test_every_strategy_shards_by_its_rules(model, strategy):
    """Every (model, strategy) pair: the state's shardings, planned from the abstract state
    (nothing compiled), give the shard shapes written out by hand."""
    plan = sharding.make_plan(*MESHES[strategy], strategy)
    config = _config(model)
    family = families.make(config)
    net = family.build_model({"src": VOCAB, "tgt": VOCAB})
    tx, _ = optim.make_optimizer(config.optim)
    abstract = jax.eval_shape(lambda rng: family.init_state(net, tx, rng), jax.random.PRNGKey(0))
    shardings = plan.state_shardings(abstract)
    shapes = jax.tree.map(lambda x: x.shape, nn.unbox(abstract))
    for path, shards in EXPECTED_SHARDS[model].items():
        param = _leaf(shardings.params, path)
        assert param.shard_shape(_leaf(shapes.params, path)) == shards[strategy], path
        # Adam's first moment lives where its parameter lives (FSDP shards optimizer state).
        assert _leaf(_adam_mu(shardings), path) == param, path
    if strategy == "dp":
        assert all(x.is_fully_replicated for x in jax.tree.leaves(shardings.params))


# Numerics on a narrower grid than the rules check above: every strategy once, each model
# under two (the GQA LM adds fsdp_tp for a decoder-only Transformer below). Each pair
# compiles its own sharded step, the slowest thing here (25-35 s each on 2 cores): they
# run in the slow tier (make test-all, CI); the GQA LM below trains under fsdp_tp always.
TRAINED = [pytest.param("rnn", "dp", marks=pytest.mark.slow),
           pytest.param("rnn", "fsdp_tp", marks=pytest.mark.slow),
           pytest.param("transformer", "fsdp", marks=pytest.mark.slow),
           pytest.param("transformer", "tp", marks=pytest.mark.slow)]


@pytest.mark.parametrize("model,strategy", TRAINED)
def test_strategies_train_like_one_device(model, strategy):
    losses, state = _trained(model, strategy)
    ref_losses, ref_params = _single_device(model)

    assert losses[-1] != losses[0]  # the steps really moved the parameters
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, atol=1e-6)
    _assert_params_close(state.params, ref_params)
    for path, shards in EXPECTED_SHARDS[model].items():  # the real arrays, as planned
        param = _leaf(state.params, path)
        assert param.addressable_shards[0].data.shape == shards[strategy], path
        assert _leaf(_adam_mu(state), path).sharding == param.sharding, path


def test_gqa_lm_trains_like_one_device_under_fsdp_and_tensor_parallelism():
    # 2-way tensor parallelism: the 2 key/value heads are split one per device.
    plan = sharding.make_plan((4, 2), ("fsdp", "tensor"), "fsdp_tp")
    losses, state = _train("lm", plan)
    ref_losses, ref_params = _single_device("lm")
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, atol=1e-6)
    _assert_params_close(state.params, ref_params)
    attention = state.params["decoder"]["layers_0"]["self_attention"]
    key = attention["key"]["kernel"]  # [embed 32, kv_heads 2, head_dim 8]
    assert key.addressable_shards[0].data.shape == (8, 1, 8)
    query = attention["query"]["kernel"]  # [embed 32, heads 4, head_dim 8]
    assert query.addressable_shards[0].data.shape == (8, 2, 8)


def _constraints(text: str) -> int:
    """Sharding constraints in a lowered program (Shardy or GSPMD spelling)."""
    return text.count("sdy.sharding_constraint") + text.count("@Sharding")


@pytest.mark.parametrize("model", ["rnn", "transformer"])
def test_activation_constraints_are_in_the_lowered_program_only_under_the_mesh(model):
    plan = sharding.make_plan(*MESHES["fsdp_tp"], "fsdp_tp")
    config, state, step = _setup(model, plan, abstract=True)
    batch = plan.global_batch(_batch(config))
    without = step.lower(state, batch).as_text()
    with plan.activate():
        within = step.lower(state, batch).as_text()
    # The models constrain [batch, length, embed/mlp/vocab] activations by name; under the
    # mesh they become real constraints that name the mesh axes.
    assert _constraints(within) > _constraints(without)
    assert "tensor" in within and "fsdp" in within


# The FSDP steps' compile without XLA's full rematerialization: test_fsdp_embedding.py.


@pytest.mark.slow  # 35 s on 2 cores: a whole save on one mesh, a restore on another
def test_checkpoint_restores_onto_another_mesh_shape(tmp_path):
    _, state = _trained("transformer", "fsdp")  # (data 2, fsdp 4)
    saver = checkpoints.Checkpointer(str(tmp_path), async_save=False)
    saver.save(STEPS, state)
    saver.close()

    tp = sharding.make_plan((4, 2), ("data", "tensor"), "tp")  # another shape and strategy
    _, target, _ = _setup("transformer", tp)
    reader = checkpoints.Checkpointer(str(tmp_path), async_save=False)
    restored = reader.restore_latest(target)
    reader.close()
    assert restored.step == STEPS
    query = _leaf(restored.state.params, "encoder/layers_0/self_attention/query/kernel")
    assert query.addressable_shards[0].data.shape == (32, 2, 8)  # heads over tensor=2 now
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b),
                 jax.device_get(restored.state.params), jax.device_get(state.params))


# --- bad meshes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axes, strategy, rules, match", [
    ((3, 2), ("data", "fsdp"), "fsdp", (), r"multiplies to 6 devices, but there are 8"),
    ((3, -1), ("data", "fsdp"), "fsdp", (), r"8 devices do not split"),
    ((-1, -1), ("data", "fsdp"), "fsdp", (), r"at most one axis may be -1"),
    ((8,), ("data", "fsdp"), "fsdp", (), r"same length"),
    ((2, 4), ("data", "model"), "tp", (), r"'tp' needs mesh axes \('tensor',\)"),
    ((8,), ("data",), "dp", (("heads", "tensor"),), r"mesh axis 'tensor'.*not in mesh.axes"),
    ((8,), ("data",), "dp", (("hidden", "data"),), r"unknown logical axis 'hidden'"),
    ((2, 4), ("data", "tensor"), "dp", (), r"\['tensor'\].*used by no rule"),
    ((8,), ("data",), "ring", (), r"mesh.strategy is 'ring'; allowed"),
])
def test_bad_mesh_raises_a_value_error_naming_it(shape, axes, strategy, rules, match):
    with pytest.raises(ValueError, match=match):
        sharding.make_plan(shape, axes, strategy, rules)


def test_dimension_not_divisible_by_its_mesh_axis_names_the_parameter():
    # 4 attention heads cannot be split over an 8-way tensor axis.
    plan = sharding.make_plan((8,), ("tensor",), "tp")
    with pytest.raises(ValueError, match=r"params/decoder/layers_0/cross_attention/key/bias: "
                                         r"dimension 0 \('kv_heads'\) of shape \(4, 8\) has "
                                         r"size 4, not divisible by mesh axes \('tensor',\) of "
                                         r"total size 8"):
        _setup("transformer", plan)


def test_batch_not_divisible_by_the_batch_axes_is_named():
    plan = sharding.make_plan((2, 4), ("data", "fsdp"), "fsdp")
    with pytest.raises(ValueError, match=r"data.batch_size = 12 must be divisible by 8"):
        plan.check_batch_size(12)


def test_bad_mesh_in_a_config_fails_before_training(tmp_path):
    from zoo.train.loop import train_and_evaluate

    c = date_seq2seq.get_config("tiny")
    c.mesh.shape = (3,)
    with pytest.raises(ValueError, match=r"mesh.shape \(3,\) multiplies to 3 devices"):
        train_and_evaluate(c, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_mesh_num_devices_takes_the_first_devices_and_names_a_bad_count(tmp_path):
    from zoo.train.loop import train_and_evaluate

    c = date_seq2seq.get_config("tiny")
    c.mesh.num_devices = 2
    plan = sharding.plan_from_config(config_lib.validate(c))
    assert list(plan.mesh.devices.flat) == jax.devices()[:2]
    assert plan.mesh.shape == {"data": 2}
    for bad in (-1, 9):
        c.mesh.num_devices = bad
        with pytest.raises(ValueError, match=rf"mesh.num_devices is {bad}; allowed: 0 .*1..8"):
            train_and_evaluate(c, str(tmp_path))
    assert not os.path.exists(tmp_path / "checkpoints")


def test_the_planner_divides_the_state_over_the_mesh():
    """python -m zoo.train.plan: FSDP over 4 devices holds a quarter of each embed-sharded
    parameter; the totals are the per-device bytes of every leaf of the state."""
    from zoo.train import plan

    config = _config("transformer")
    config.mesh.shape, config.mesh.axes, config.mesh.strategy = (2, 4), ("data", "fsdp"), "fsdp"
    text = plan.describe(config, num_devices=8, vocab_size=VOCAB)
    row = next(line for line in text.splitlines() if line.startswith("embed/embedding "))
    assert "('vocab', 'embed')" in row and "(None, 'fsdp')" in row, row
    assert row.endswith(f" {VOCAB * 32 * 4 // 4:,d}"), row  # [V, D] float32 over 4 shards
    assert "total state" in text and "opt_state" in text


def test_the_old_planner_command_names_the_new_one():
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "zoo.sharding", "--config", "x"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "python -m zoo.train.plan" in proc.stderr
