"""Flax's own RNN cells with logical axis names, stacked into layers.

Glossary: B batch, T time (S for the encoder), E input width, R cell (state) width,
L layers.

The cells are `flax.linen`'s `SimpleCell` (vanilla Elman RNN), `OptimizedLSTMCell`
(parameter-compatible with `LSTMCell`, one fused matmul per step) and `GRUCell`;
nothing here re-implements a cell (so 'gru' is flax's reset-after form: README,
"Where zoo departs from the papers"). `make_cell` only wraps their initializers with
logical axis names so the sharding rules can place them:

    input kernels      [E, R]  ('embed', 'mlp')      E = whatever feeds the cell
    recurrent kernels  [R, R]  ('recurrent', 'mlp')  one name may appear only once
                                                     per param in flax's rules
    biases             [R]     ('mlp',)

Two ways to run a stack of L layers, sharing these cells:
  * `RNNStack`  a whole sequence, one scan per layer and direction, with
    `seq_lengths` so the final state of every row is its state at its last
    real token, whatever the padding after it. By default each layer is a
    `zoo.rnn.hoisted.HoistedRNN` (input projection outside the time loop, its
    own backward pass, the same params and values as flax's cell under
    `nn.RNN`, which `hoist=False` runs);
  * `CellStack` one time step through all layers, for decoders whose input at
    step t depends on the output at t-1 (input feeding, Bahdanau attention).

Carries are kept in the compute dtype: `SimpleCell` returns its state in the
compute dtype, and `nn.RNN`'s scan needs the carry dtype to be stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from zoo.rnn.hoisted import HoistedRNN

Carry = Any  # one cell's carry: [B, R] (rnn, gru) or a (c, h) pair of them (lstm)

CELLS: dict[str, type[nn.RNNCellBase]] = {
    "rnn": nn.SimpleCell,
    "lstm": nn.OptimizedLSTMCell,
    "gru": nn.GRUCell,
}
# The cell's output h inside its carry (the LSTM carry is (c, h)).
_HIDDEN: dict[str, Callable[[Carry], jax.Array]] = {
    "rnn": lambda carry: carry,
    "gru": lambda carry: carry,
    "lstm": lambda carry: carry[1],
}


# (input kernel, recurrent kernel, bias) initializers of every cell, logically named.
INITIALIZERS = (
    nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp")),
    nn.with_logical_partitioning(nn.initializers.orthogonal(), ("recurrent", "mlp")),
    nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
)


def make_cell(kind: str, features: int, *, dtype, param_dtype, name: str | None = None):
    """A flax cell of `kind` (a key of CELLS) with logically named parameters."""
    kernel_init, recurrent_kernel_init, bias_init = INITIALIZERS
    return CELLS[kind](
        features=features,
        kernel_init=kernel_init,
        recurrent_kernel_init=recurrent_kernel_init,
        bias_init=bias_init,
        dtype=dtype,
        param_dtype=param_dtype,
        name=name,
    )


def hidden_of(kind: str, carry: Carry) -> jax.Array:
    """The output h [B, R] held in a carry of a `kind` cell."""
    return _HIDDEN[kind](carry)


def zero_carry(kind: str, batch: int, features: int, dtype) -> Carry:
    """An all-zero carry of a `kind` cell, every leaf [B, R] in `dtype`."""
    cell = CELLS[kind](features=features, parent=None)
    # The cells' carry_init is zeros, so the key is never used for values.
    carry = cell.initialize_carry(jax.random.key(0), (batch, features))
    return jax.tree.map(lambda x: x.astype(dtype), carry)


def concat_carries(forward: Carry, backward: Carry) -> Carry:
    """Bidirectional final states, leaf by leaf: [B, R] x 2 -> [B, 2R]."""
    return jax.tree.map(lambda f, b: jnp.concatenate([f, b], axis=-1), forward, backward)


def _direction_names(layer: int) -> tuple[str, str]:
    """Param-tree names of the forward and backward RNN of bidirectional layer `layer`.

    Layer 0 keeps the names of the one-layer stacks (and their checkpoints);
    deeper layers get their index as a suffix.
    """
    suffix = "" if layer == 0 else f"_{layer}"
    return f"forward_rnn{suffix}", f"backward_rnn{suffix}"


class RNNStack(nn.Module):
    """L recurrent layers over a whole sequence, dropout between layers.

    A bidirectional layer has `features` units per direction and outputs their
    concatenation [B, T, 2R]; its final state is the concatenation too. Param
    names: `layers_{i}` (unidirectional); `forward_rnn`, `backward_rnn` for the
    first bidirectional layer, then `forward_rnn_{i}`, `backward_rnn_{i}`.

    `hoist=True` runs each layer as a `zoo.rnn.hoisted.HoistedRNN` (the input
    projection of all T steps as one matmul outside the time loop); False runs
    flax's cell under `nn.RNN`. Same params, same values and gradients either
    way; only False has forward-mode derivatives (`jax.jvp`, `jax.jacfwd`).
    """

    cell: str
    num_layers: int
    features: int
    bidirectional: bool = False
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    hoist: bool = True

    def setup(self):
        def rnn(name, reverse=False):
            if self.hoist:
                return HoistedRNN(self.cell, self.features, INITIALIZERS, reverse=reverse,
                                  dtype=self.dtype, param_dtype=self.param_dtype, name=name)
            cell = make_cell(self.cell, self.features, dtype=self.dtype,
                             param_dtype=self.param_dtype)
            # reverse + keep_order: what nn.Bidirectional asks of its backward RNN.
            return nn.RNN(cell, return_carry=True, reverse=reverse, keep_order=True, name=name)

        def layer(i):
            if self.bidirectional:
                # Named per layer: all of them are this stack's children.
                forward, backward = _direction_names(i)
                return rnn(forward), rnn(backward, reverse=True)
            return rnn(None)  # auto-named layers_i

        self.layers = [layer(i) for i in range(self.num_layers)]
        self.dropout = nn.Dropout(self.dropout_rate)

    def __call__(
        self,
        x: jax.Array,
        initial_carries: tuple[Carry, ...] | None = None,
        seq_lengths: jax.Array | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[jax.Array, tuple[Carry, ...]]:
        """x [B, T, E] -> (outputs [B, T, R or 2R], final carry per layer).

        `initial_carries` (one per layer; zeros if None) is for unidirectional
        stacks only; `seq_lengths` [B] selects each row's final state.
        """
        batch = x.shape[0]
        finals = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x, deterministic=deterministic)  # [B, T, R or 2R]
            if self.bidirectional:
                zero = zero_carry(self.cell, batch, self.features, self.dtype)
                forward, backward = layer
                fwd, y_fwd = forward(x, initial_carry=zero, seq_lengths=seq_lengths)
                bwd, y_bwd = backward(x, initial_carry=zero, seq_lengths=seq_lengths)
                x = jnp.concatenate([y_fwd, y_bwd], axis=-1)  # [B, T, 2R]
                finals.append(concat_carries(fwd, bwd))  # leaves [B, 2R]
            else:
                carry = (zero_carry(self.cell, batch, self.features, self.dtype)
                         if initial_carries is None else initial_carries[i])
                carry, x = layer(x, initial_carry=carry, seq_lengths=seq_lengths)
                finals.append(carry)  # leaves [B, R]
        return x, tuple(finals)


class CellStack(nn.Module):
    """One time step through L stacked cells, dropout between layers."""

    cell: str
    num_layers: int
    features: int
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    def setup(self):
        self.cells = [make_cell(self.cell, self.features, dtype=self.dtype,
                                param_dtype=self.param_dtype)
                      for _ in range(self.num_layers)]
        self.dropout = nn.Dropout(self.dropout_rate)

    def __call__(
        self, carries: tuple[Carry, ...], x: jax.Array, *, deterministic: bool = True
    ) -> tuple[tuple[Carry, ...], jax.Array]:
        """(carry per layer, x [B, E]) -> (new carry per layer, top output [B, R])."""
        new = []
        for i, (cell, carry) in enumerate(zip(self.cells, carries, strict=True)):
            if i > 0:
                x = self.dropout(x, deterministic=deterministic)  # [B, R]
            carry, x = cell(carry, x)  # x [B, R]
            new.append(carry)
        return tuple(new), x
