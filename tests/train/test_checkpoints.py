"""Restoring never loses or hides a checkpoint.

A structure mismatch (model config or optimizer changed) raises and touches
nothing; an unreadable step is moved aside in the run's own folder and only
skipped in a folder that is read (``read_latest``).
"""

import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from zoo.train import checkpoints
from zoo.train.state import TrainState


def _params(kernel_shape=(4, 3), extra=False):
    params = {"dense": {"kernel": jnp.arange(np.prod(kernel_shape), dtype=jnp.float32)
                        .reshape(kernel_shape), "bias": jnp.ones(kernel_shape[-1])}}
    if extra:
        params["dense"]["scale"] = jnp.ones(kernel_shape[-1])
    return params


def _state(tx=None, scale=1.0, **kwargs):
    params = jax.tree.map(lambda x: x * scale, _params(**kwargs))
    return TrainState.create(params, tx or optax.adam(1e-3), jax.random.PRNGKey(0))


def _save(directory, steps, **kwargs):
    """Saves ``_state(scale=step)`` at each step; returns the states by step."""
    ckpt = checkpoints.Checkpointer(str(directory), async_save=False)
    states = {}
    for step in steps:
        states[step] = _state(scale=float(step), **kwargs)
        ckpt.save(step, states[step], data={"position": step}, config={"step_seen": step})
    ckpt.close()
    return states


def _fingerprint(root):
    """Every directory and file under ``root`` (and its sibling ``.corrupt``), byte for byte."""
    out = []
    for top in (str(root), str(root).rstrip("/") + ".corrupt"):
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, os.path.dirname(top))
            out += [("dir", os.path.join(rel, d)) for d in dirnames]
            for name in filenames:
                with open(os.path.join(dirpath, name), "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out.append(("file", os.path.join(rel, name), digest))
    return sorted(out)


def _corrupt_arrays(step_dir):
    """Overwrites every array data file of the step's 'state' item with garbage; the
    metadata (``_METADATA``, ``_sharding``, ...) stays readable."""
    count = 0
    for dirpath, _, filenames in os.walk(os.path.join(step_dir, "state")):
        if os.path.basename(dirpath) != "d":
            continue
        for name in filenames:
            with open(os.path.join(dirpath, name), "wb") as f:
                f.write(b"\x00garbage" * 7)
            count += 1
    assert count, f"no array files found under {step_dir}"


# After a failed read, orbax leaves a tensorstore callback for its closed asyncio loop;
# Python reports it as unraisable. Harmless, and expected exactly where files are garbage.
_orbax_failed_read = pytest.mark.filterwarnings(
    "ignore::pytest.PytestUnraisableExceptionWarning")


def _assert_tree_equal(a, b):
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(a), jax.device_get(b))


def _assert_mismatch(directory, target, *, read_only, contains):
    before = _fingerprint(directory)
    if read_only:
        with pytest.raises(checkpoints.CheckpointMismatchError) as err:
            checkpoints.read_latest(str(directory), target)
    else:
        ckpt = checkpoints.Checkpointer(str(directory), async_save=False)
        with pytest.raises(checkpoints.CheckpointMismatchError) as err:
            ckpt.restore_latest(target)
        ckpt.close()
    message = str(err.value)
    for text in [str(directory), "step 2", "nothing was moved", *contains]:
        assert text in message, (text, message)
    assert _fingerprint(directory) == before
    assert not os.path.exists(str(directory) + ".corrupt")
    return err.value


def test_mismatch_error_is_a_value_error():
    assert issubclass(checkpoints.CheckpointMismatchError, ValueError)


def test_changed_param_shape_raises_and_moves_nothing(tmp_path):
    directory = tmp_path / "ck"
    _save(directory, [1, 2])
    err = _assert_mismatch(directory, _state(kernel_shape=(5, 3)), read_only=False,
                           contains=["params/dense/kernel", "(4, 3)", "(5, 3)", "float32"])
    assert err.path == "params/dense/kernel" and err.step == 2
    assert "--workdir" in str(err)


def test_changed_param_dtype_raises(tmp_path):
    directory = tmp_path / "ck"
    _save(directory, [1, 2])
    target = checkpoints.abstract_like(_state())
    target = target.replace(params=jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, jnp.bfloat16, sharding=x.sharding),
        target.params))
    _assert_mismatch(directory, target, read_only=False,
                     contains=["params/dense/bias", "float32", "bfloat16"])


@pytest.mark.parametrize("saved_extra", [False, True], ids=["param_added", "param_removed"])
def test_changed_param_tree_raises_naming_the_path(tmp_path, saved_extra):
    directory = tmp_path / "ck"
    _save(directory, [1, 2], extra=saved_extra)
    side = "in the checkpoint but not in this config" if saved_extra else \
        "in this config but not in the checkpoint"
    err = _assert_mismatch(directory, _state(extra=not saved_extra), read_only=False,
                           contains=[f"params/dense/scale is {side}"])
    assert err.path in ("params/dense/scale", "opt_state/0/mu/dense/scale")


def test_renamed_param_names_both_sides(tmp_path):
    directory = tmp_path / "ck"
    _save(directory, [1, 2])
    params = _params()
    params["dense"]["b"] = params["dense"].pop("bias")
    target = TrainState.create(params, optax.adam(1e-3), jax.random.PRNGKey(0))
    _assert_mismatch(directory, target, read_only=False,
                     contains=["params/dense/b is in this config",
                               "params/dense/bias is in the checkpoint"])


@pytest.mark.parametrize("tx", [
    optax.sgd(0.1, momentum=0.9),
    optax.MultiSteps(optax.adam(1e-3), every_k_schedule=2),
], ids=["sgd_momentum", "multisteps"])
def test_changed_optimizer_raises_and_moves_nothing(tmp_path, tx):
    directory = tmp_path / "ck"
    _save(directory, [1, 2])  # adam
    _assert_mismatch(directory, _state(tx=tx), read_only=False, contains=["opt_state/"])


@_orbax_failed_read
def test_garbage_step_is_moved_aside_and_the_previous_restored(tmp_path):
    directory = tmp_path / "ck"
    states = _save(directory, [1, 2])
    _corrupt_arrays(directory / "2")
    ckpt = checkpoints.Checkpointer(str(directory), async_save=False)
    restored = ckpt.restore_latest(_state())
    assert restored.step == 1
    _assert_tree_equal(restored.state.params, states[1].params)
    _assert_tree_equal(restored.state.opt_state, states[1].opt_state)
    assert restored.data == {"position": 1} and restored.config == {"step_seen": 1}
    assert ckpt.steps() == [1]
    ckpt.close()
    moved = os.listdir(str(directory) + ".corrupt")
    assert len(moved) == 1 and moved[0].startswith("2-")
    assert os.path.exists(os.path.join(str(directory) + ".corrupt", moved[0], "state"))
    assert not (directory / "2").exists()


def test_stray_empty_step_folder_is_moved_aside(tmp_path):
    directory = tmp_path / "ck"
    states = _save(directory, [1])
    os.makedirs(directory / "5")
    ckpt = checkpoints.Checkpointer(str(directory), async_save=False)
    restored = ckpt.restore_latest(_state())
    ckpt.close()
    assert restored.step == 1
    _assert_tree_equal(restored.state.params, states[1].params)
    assert [m.split("-")[0] for m in os.listdir(str(directory) + ".corrupt")] == ["5"]
    assert not (directory / "5").exists()


@_orbax_failed_read
def test_only_unreadable_steps_gives_none(tmp_path):
    directory = tmp_path / "ck"
    _save(directory, [1])
    _corrupt_arrays(directory / "1")
    ckpt = checkpoints.Checkpointer(str(directory), async_save=False)
    assert ckpt.restore_latest(_state()) is None
    assert ckpt.steps() == []
    ckpt.close()


def test_read_latest_restores_every_item(tmp_path):
    directory = tmp_path / "other"
    states = _save(directory, [1, 2])
    before = _fingerprint(directory)
    restored = checkpoints.read_latest(str(directory), checkpoints.abstract_like(_state()))
    assert restored.step == 2
    _assert_tree_equal(restored.state.params, states[2].params)
    _assert_tree_equal(restored.state.opt_state, states[2].opt_state)
    _assert_tree_equal(restored.state.rng, states[2].rng)
    assert restored.data == {"position": 2} and restored.config == {"step_seen": 2}
    assert _fingerprint(directory) == before


@_orbax_failed_read
def test_read_latest_skips_garbage_and_leaves_it(tmp_path):
    directory = tmp_path / "other"
    states = _save(directory, [1, 2])
    _corrupt_arrays(directory / "2")
    os.makedirs(directory / "7")  # a stray empty step folder too
    before = _fingerprint(directory)
    restored = checkpoints.read_latest(str(directory), _state())
    assert restored.step == 1
    _assert_tree_equal(restored.state.params, states[1].params)
    assert _fingerprint(directory) == before
    assert not os.path.exists(str(directory) + ".corrupt")


@_orbax_failed_read
def test_read_latest_by_best_metric_takes_the_best_step_that_restores(tmp_path):
    directory = tmp_path / "other"
    ckpt = checkpoints.Checkpointer(str(directory), max_to_keep=5, best_metric="bleu",
                                    async_save=False)
    states = {}
    for step, bleu in [(1, 3.0), (2, 9.0), (3, 5.0), (4, None)]:
        states[step] = _state(scale=float(step))
        ckpt.save(step, states[step], metrics=None if bleu is None else {"bleu": bleu})
    ckpt.close()
    target = checkpoints.abstract_like(_state())
    best = checkpoints.read_latest(str(directory), target, best_metric="bleu")
    assert best.step == 2
    _assert_tree_equal(best.state.params, states[2].params)
    lowest = checkpoints.read_latest(str(directory), target, best_metric="bleu", best_mode="min")
    assert lowest.step == 1
    assert checkpoints.read_latest(str(directory), target).step == 4  # newest, metrics or not
    # No step has the metric: newest first, as without one.
    assert checkpoints.read_latest(str(directory), target, best_metric="chrf").step == 4
    _corrupt_arrays(directory / "2")  # the best step unreadable: the next best restores
    assert checkpoints.read_latest(str(directory), target, best_metric="bleu").step == 3
    with pytest.raises(ValueError, match="best_mode must be 'max' or 'min'"):
        checkpoints.read_latest(str(directory), target, best_metric="bleu", best_mode="top")
    assert not os.path.exists(str(directory) + ".corrupt")


@_orbax_failed_read
def test_read_average_is_the_mean_of_the_newest_or_best_steps_that_restore(tmp_path):
    directory = tmp_path / "other"
    ckpt = checkpoints.Checkpointer(str(directory), max_to_keep=5, best_metric="bleu",
                                    async_save=False)
    params = {}
    for step, bleu in [(1, 3.0), (2, 9.0), (3, 5.0), (4, 1.0), (5, 2.0)]:
        params[step] = _state(scale=float(step) ** 2).params  # steps 1..5: scales 1, 4, .. 25
        ckpt.save(step, _state(scale=float(step) ** 2), metrics={"bleu": bleu})
    ckpt.close()
    target = checkpoints.abstract_like(_state())

    def mean_of(steps):  # the reference: NumPy, float64
        return jax.tree.map(lambda *xs: np.mean(np.stack(xs).astype(np.float64), axis=0),
                            *[jax.device_get(params[s]) for s in steps])

    def assert_mean(averaged, steps):
        assert averaged.steps == tuple(steps)
        jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-6),
                     jax.device_get(averaged.params), mean_of(steps))
        assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(averaged.params))

    assert_mean(checkpoints.read_average(str(directory), target, 3), [5, 4, 3])
    assert_mean(checkpoints.read_average(str(directory), target, 2, best_metric="bleu"), [2, 3])
    assert_mean(checkpoints.read_average(str(directory), target, 1), [5])
    assert_mean(checkpoints.read_average(str(directory), target, 9), [5, 4, 3, 2, 1])  # all
    _corrupt_arrays(directory / "4")  # an unreadable step is skipped, not counted, not moved
    before = _fingerprint(directory)
    assert_mean(checkpoints.read_average(str(directory), target, 3), [5, 3, 2])
    assert _fingerprint(directory) == before
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="count .* must be an integer >= 1"):
            checkpoints.read_average(str(directory), target, bad)
    assert checkpoints.read_average(str(tmp_path / "missing"), target, 2) is None
    with pytest.raises(checkpoints.CheckpointMismatchError):
        checkpoints.read_average(str(directory), _state(kernel_shape=(5, 3)), 2)


def test_read_latest_mismatch_raises_and_moves_nothing(tmp_path):
    directory = tmp_path / "other"
    _save(directory, [1, 2])
    err = _assert_mismatch(directory, _state(kernel_shape=(5, 3)), read_only=True,
                           contains=["params/dense/kernel", "(4, 3)", "(5, 3)"])
    assert "--workdir" not in str(err)


def test_read_latest_leaves_tmp_folders_alone(tmp_path):
    directory = tmp_path / "other"
    _save(directory, [1])
    os.makedirs(directory / "2.orbax-checkpoint-tmp-123" / "state")
    before = _fingerprint(directory)
    assert checkpoints.read_latest(str(directory), _state()).step == 1
    assert _fingerprint(directory) == before


def test_read_latest_of_an_empty_or_missing_folder_is_none(tmp_path):
    empty = tmp_path / "empty"
    os.makedirs(empty)
    assert checkpoints.read_latest(str(empty), _state()) is None
    assert checkpoints.read_latest(str(tmp_path / "missing"), _state()) is None
    assert sorted(os.listdir(tmp_path)) == ["empty"] and not os.listdir(empty)


def test_async_save_then_restore_with_the_default_options(tmp_path):
    ckpt = checkpoints.Checkpointer(str(tmp_path / "ck"), max_to_keep=1)
    state = _state(scale=3.0)
    ckpt.save(3, state, config={"note": "x"})
    restored = ckpt.restore_latest(checkpoints.abstract_like(state))
    assert restored.step == 3 and restored.config == {"note": "x"} and restored.data is None
    _assert_tree_equal(restored.state.params, state.params)
    ckpt.save(4, state)
    ckpt.wait()
    assert ckpt.steps() == [4] and ckpt.latest_step() == 4
    ckpt.close()
