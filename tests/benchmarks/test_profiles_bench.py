"""The op-class profiler: HLO instructions get the class of what they compute, nested
thunks are not counted twice, and the profiles script runs end to end (--quick)."""

import collections
import json
import os
import sys

import jax
import jax.numpy as jnp
import optax
import pytest
from quick import BENCHMARKS, run_quick

sys.path.insert(0, BENCHMARKS)
import common  # noqa: E402
import op_classes  # noqa: E402


def _adam_step_hlo():
    """An Adam step on a one-layer tanh network, with a scan and a transpose in it."""
    tx = optax.adam(1e-3)

    def loss(w, x):  # w [D, D], x [B, D]
        def body(h, _):
            return jnp.tanh(h @ w), None
        h, _ = jax.lax.scan(body, x, None, length=3)
        return jnp.sum(h.T)

    def step(w, opt_state, x):
        grads = jax.grad(loss)(w, x)
        updates, opt_state = tx.update(grads, opt_state, w)
        return optax.apply_updates(w, updates), opt_state

    w, x = jnp.ones((16, 16)), jnp.ones((4, 16))
    return jax.jit(step).lower(w, tx.init(w), x).compile().as_text()


def test_hlo_instructions_are_classed_by_what_they_compute():
    hlo = op_classes.Hlo(_adam_step_hlo())
    entry_and_loops = [n for n in hlo.ops if hlo.ops[n] in ("fusion", "dot", "while", "copy")]
    classes = collections.Counter(hlo.classify(n) for n in entry_and_loops)
    # The step has matmuls (forward and backward), a loop, Adam's update and tanh.
    assert classes["matmul"] >= 2
    assert classes["loop control"] >= 1
    assert classes["optimizer"] >= 1
    while_ops = [n for n in hlo.ops if hlo.ops[n] == "while"]
    assert all(hlo.classify(n) == "loop control" for n in while_ops)
    dots = [n for n in hlo.ops if "dot" in hlo.fused_ops(n)]
    assert dots and all(hlo.classify(n) == "matmul" for n in dots)


class _Event:
    def __init__(self, name, start, duration):
        self.name, self.start_ns, self.duration_ns = name, start, duration


def test_self_times_subtract_nested_events_once():
    # A loop of 100 ns holding two 30 ns thunks, then a thunk after it.
    events = [_Event("while", 0, 100), _Event("a", 10, 30), _Event("b", 50, 30),
              _Event("c", 120, 5)]
    assert dict(op_classes._self_times(events)) == {"while": 40, "a": 30, "b": 30, "c": 5}


def test_torch_ops_are_classed_by_name():
    assert op_classes.torch_class("aten::mm") == "matmul"
    assert op_classes.torch_class("aten::_scaled_dot_product_flash_attention_for_cpu") == \
        "fused attention"
    assert op_classes.torch_class("aten::_log_softmax") == "exp/softmax"
    assert op_classes.torch_class("aten::native_layer_norm") == "reductions/norms"
    assert op_classes.torch_class("aten::copy_") == "transposes/copies"
    assert op_classes.torch_class("aten::embedding_dense_backward") == "gather/scatter"
    assert op_classes.torch_class("aten::add") == "elementwise"
    assert op_classes.torch_class("autograd::engine::evaluate_function: MmBackward0") == \
        "framework"


@pytest.mark.slow  # six cases on both sides, if tiny: make test-all
@pytest.mark.skipif(common.torch is None, reason=common.TORCH_HINT)
def test_quick_profiles_write_every_case(tmp_path):
    run_quick("profiles", tmp_path)
    with open(os.path.join(tmp_path, "profiles_quick.json")) as f:
        result = json.load(f)
    import profiles
    assert [c["case"] for c in result["cases"]] == list(profiles.CASES)
    for case in result["cases"]:
        for side in ("zoo", "peer"):
            assert case[side]["wall_ms"] > 0
            assert sum(case[side]["classes"].values()) > 0
        assert case["zoo"]["classes"].get("matmul", 0) > 0
    assert (tmp_path / "profiles_quick.md").read_text().count("## ") == len(profiles.CASES)
