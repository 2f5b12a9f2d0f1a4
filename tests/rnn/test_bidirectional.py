"""Bidirectional RNN stacks of any depth: they build, keep the checkpoint names of the
stacks that worked before, and match torch.nn.LSTM / GRU / RNN (bidirectional,
packed padded batch) in outputs, final states and input gradients.

Glossary: B batch, T time, E input width, R RNN state width per direction, L layers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import traverse_util
from flax.core import meta

from zoo.rnn.cells import CELLS, RNNStack, hidden_of
from zoo.rnn.config import Seq2SeqConfig
from zoo.rnn.encoder import Encoder

B, T, E, R = 3, 6, 5, 4
LENGTHS = np.array([6, 3, 1], np.int32)  # one full row, so torch's padded output is [B, T, 2H]
TOL = dict(rtol=1e-5, atol=1e-5)

torch.set_num_threads(1)  # the test machine's cores are shared


def _names(params) -> set[str]:
    """Every param path below 'params', as 'a/b/c'."""
    return set(traverse_util.flatten_dict(meta.unbox(params)["params"], sep="/"))


def _modules(params) -> list[str]:
    """The top-level submodules of a stack's param tree."""
    return sorted(meta.unbox(params)["params"])


def _inputs(seed=0):
    x = np.random.default_rng(seed).standard_normal((B, T, E)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray(LENGTHS)


# ---------------------------------------------------------------- building, names


@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_deep_bidirectional_stack_builds_and_runs(cell, num_layers):
    x, lengths = _inputs()
    stack = RNNStack(cell, num_layers, R, bidirectional=True)
    params = stack.init(jax.random.key(0), x, seq_lengths=lengths)
    y, finals = stack.apply(params, x, seq_lengths=lengths)
    assert y.shape == (B, T, 2 * R)
    assert len(finals) == num_layers
    for final in finals:
        assert all(leaf.shape == (B, 2 * R) for leaf in jax.tree.leaves(final))
    deeper = [f"{d}_rnn_{i}" for i in range(1, num_layers) for d in ("forward", "backward")]
    assert _modules(params) == sorted(["forward_rnn", "backward_rnn", *deeper])
    # Layers above the first read both directions of the layer below: [2H, R] input kernels.
    flat = traverse_util.flatten_dict(meta.unbox(params)["params"])
    for (rnn, _, dense, kind), value in flat.items():  # e.g. forward_rnn_1/cell/ii/kernel
        if dense.startswith("i") and kind == "kernel":
            assert value.shape == ((E if rnn.endswith("_rnn") else 2 * R), R), (rnn, dense)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_existing_param_names_are_unchanged(cell):
    """Checkpoints of unidirectional stacks and one-layer bidirectional stacks still load."""
    x, lengths = _inputs()

    def init(num_layers, bidirectional):
        stack = RNNStack(cell, num_layers, R, bidirectional=bidirectional)
        return jax.eval_shape(lambda: stack.init(jax.random.key(0), x, seq_lengths=lengths))

    assert _modules(init(3, False)) == ["layers_0", "layers_1", "layers_2"]
    assert _modules(init(1, True)) == ["backward_rnn", "forward_rnn"]
    # Layer 0 of a deeper bidirectional stack has exactly the one-layer stack's params.
    one, two = _names(init(1, True)), _names(init(2, True))
    assert one == {n for n in two if n.split("/")[0] in ("forward_rnn", "backward_rnn")}


def test_dropout_between_bidirectional_layers():
    x, lengths = _inputs()
    stack = RNNStack("lstm", 2, R, bidirectional=True, dropout_rate=0.5)
    params = stack.init(jax.random.key(0), x, seq_lengths=lengths)
    plain = RNNStack("lstm", 2, R, bidirectional=True)  # same params, no dropout at all
    y_eval, _ = stack.apply(params, x, seq_lengths=lengths)
    y_plain, _ = plain.apply(params, x, seq_lengths=lengths)
    np.testing.assert_array_equal(y_eval, y_plain)
    y_train, _ = stack.apply(params, x, seq_lengths=lengths, deterministic=False,
                             rngs={"dropout": jax.random.key(1)})
    assert not np.allclose(y_train, y_eval)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_encoder_bidirectional_two_layers_with_padding(cell):
    cfg = Seq2SeqConfig(src_vocab_size=13, tgt_vocab_size=11, cell=cell, num_layers=2,
                        embed_dim=8, hidden_dim=16, bidirectional=True)
    assert cfg.memory_dim == 16 and cfg.encoder_features == 8
    rng = np.random.default_rng(0)
    src = rng.integers(4, 13, size=(B, T)).astype(np.int32)
    pad = np.arange(T)[None, :] >= LENGTHS[:, None]  # [B, T]
    src[pad] = 0
    encoder = Encoder(cfg)
    params = encoder.init(jax.random.key(0), jnp.asarray(src), jnp.asarray(LENGTHS))
    out = encoder.apply(params, jnp.asarray(src), jnp.asarray(LENGTHS))
    assert out.states.shape == (B, T, cfg.memory_dim)
    assert len(out.final) == cfg.num_layers
    assert all(leaf.shape == (B, cfg.memory_dim) for leaf in jax.tree.leaves(out.final))
    np.testing.assert_array_equal(out.states[pad], 0.0)

    # Other tokens in the padding change nothing: states at real positions, final states.
    src_other = np.where(pad, rng.integers(4, 13, size=(B, T)), src).astype(np.int32)
    other = encoder.apply(params, jnp.asarray(src_other), jnp.asarray(LENGTHS))
    np.testing.assert_allclose(other.states, out.states, **TOL)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), other.final, out.final)


# ---------------------------------------------------------------- parity with torch

# torch's gate blocks, in the order of the rows of weight_ih / weight_hh.
_GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("",)}
_TORCH = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def _cell_params(cell: str, w_ih, w_hh, b_ih, b_hh) -> dict:
    """One torch layer-direction's weights -> the params of the flax cell CELLS[cell].

    w_ih [nR, E_in], w_hh [nR, R], b_ih and b_hh [nR], n gate blocks in _GATES order.
    torch adds b_ih + b_hh wherever both sit outside a product, flax keeps one bias there:
      LSTM  (OptimizedLSTMCell) biases only on the hidden side: h{g}/bias = b_ih + b_hh
      GRU   r, z: i{g}/bias = b_ih + b_hh. n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
            in both, so b_hn stays inside the reset product: hn/bias, and in/bias = b_in
      RNN   (SimpleCell) i/bias = b_ih + b_hh
    """
    def blocks(a):
        gates = _GATES[cell]
        return dict(zip(gates, np.split(a.detach().numpy(), len(gates)), strict=True))

    wi, wh, bi, bh = blocks(w_ih), blocks(w_hh), blocks(b_ih), blocks(b_hh)
    out = {}
    for g in _GATES[cell]:
        out[f"i{g}"] = {"kernel": wi[g].T}  # [E_in, R]
        out[f"h{g}"] = {"kernel": wh[g].T}  # [R, R]
        if cell == "lstm":
            out[f"h{g}"]["bias"] = bi[g] + bh[g]
        elif cell == "gru" and g == "n":
            out["in"]["bias"], out["hn"]["bias"] = bi[g], bh[g]
        else:
            out[f"i{g}"]["bias"] = bi[g] + bh[g]
    return out


def _from_torch(cell: str, module: torch.nn.RNNBase) -> dict:
    """A bidirectional torch RNN's weights -> RNNStack params of the same shape."""
    params = {}
    for layer in range(module.num_layers):
        forward, backward = (f"forward_rnn_{layer}", f"backward_rnn_{layer}") if layer else (
            "forward_rnn", "backward_rnn")
        for name, suffix in ((forward, ""), (backward, "_reverse")):
            weights = [getattr(module, f"{w}_l{layer}{suffix}")
                       for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            params[name] = {"cell": _cell_params(cell, *weights)}
    return {"params": params}


def _masked_sum(y, weights, mask):
    # y [B, T, 2H], weights [B, T, 2H], mask [B, T]: a loss over real positions only
    return (y * weights * mask[:, :, None]).sum()


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_matches_torch(cell, num_layers):
    torch.manual_seed(0)
    reference = _TORCH[cell](E, R, num_layers=num_layers, bidirectional=True, batch_first=True)
    with torch.no_grad():  # nonzero biases everywhere, so misplaced biases show
        for name, p in reference.named_parameters():
            if name.startswith("bias"):
                p.uniform_(-0.5, 0.5)
    x, lengths = _inputs(seed=1)
    mask = np.arange(T)[None, :] < LENGTHS[:, None]  # [B, T]
    weights = np.random.default_rng(2).standard_normal((B, T, 2 * R)).astype(np.float32)

    # torch: packed, so each row's backward pass starts at its last real token.
    x_t = torch.tensor(np.asarray(x), requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x_t, torch.tensor(LENGTHS, dtype=torch.int64), batch_first=True, enforce_sorted=False)
    out_packed, state = reference(packed)
    y_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True,
                                                    total_length=T)  # [B, T, 2H]
    _masked_sum(y_t, torch.tensor(weights), torch.tensor(mask)).backward()
    h_t, c_t = state if cell == "lstm" else (state, None)  # [L*2, B, R], layer-major

    stack = RNNStack(cell, num_layers, R, bidirectional=True)
    params = _from_torch(cell, reference)
    shapes = jax.eval_shape(lambda: stack.init(jax.random.key(0), x, seq_lengths=lengths))
    assert jax.tree.map(jnp.shape, meta.unbox(shapes)) == jax.tree.map(jnp.shape, params)

    def loss(x):
        y, finals = stack.apply(params, x, seq_lengths=lengths)
        return _masked_sum(y, jnp.asarray(weights), jnp.asarray(mask)), (y, finals)

    (_, (y, finals)), grad = jax.value_and_grad(loss, has_aux=True)(x)

    np.testing.assert_allclose(np.asarray(y)[mask], y_t.detach().numpy()[mask], **TOL)
    np.testing.assert_allclose(np.asarray(grad), x_t.grad.numpy(), **TOL)
    for layer, final in enumerate(finals):
        h = np.asarray(hidden_of(cell, final))  # [B, 2H]: forward | backward
        for direction in range(2):
            expected = h_t[2 * layer + direction].detach().numpy()  # [B, R]
            np.testing.assert_allclose(h[:, direction * R:(direction + 1) * R], expected, **TOL)
            if cell == "lstm":
                c = np.asarray(final[0])  # [B, 2H]
                expected = c_t[2 * layer + direction].detach().numpy()
                np.testing.assert_allclose(c[:, direction * R:(direction + 1) * R], expected,
                                           **TOL)
