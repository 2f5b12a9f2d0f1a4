"""Recurrent layers whose input projection runs once for the whole sequence.

Glossary: B batch, T time, E input width, R cell (state) width, G gate width
(n x R for a cell with n gate blocks: 4 LSTM, 3 GRU, 1 vanilla RNN).

Every cell of `zoo.rnn.cells` computes its gate pre-activations as an input
term plus a recurrent term, x_t W_x + b_x and h_{t-1} W_h + b_h. Only the
recurrent term depends on the step before, so the input term of all T steps
is one [B*T, E] x [E, G] matmul before the time loop, and its kernel and input
gradients are one matmul each after it (what cuDNN and torch.nn.LSTM do). Under
`nn.RNN` the cell does that matmul inside the loop: T small ones forward, 2T
backward.

Hoisting alone bought nothing on CPU (XLA's loop still saved a dozen [B, R]
residuals per step and accumulated dW_h step by step), so `recurrence` also
has its own backward pass (`jax.custom_vjp`): the loop keeps each step's carry
and recurrent term, the backward loop only carries the gradient from step to
step (one [B, G] x [G, R] matmul each, the cell's own derivative by `jax.vjp`),
and dW_h, dW_x, dx and the bias gradients are one matmul or sum over all T
steps afterwards. A custom VJP has no forward-mode derivative: `jax.jvp` or
`jax.jacfwd` through a stack needs `RNNStack(hoist=False)`.

`HoistedRNN(kind, R, name=n)` stands in for `nn.RNN(make_cell(kind, R), name=n)`
with `return_carry=True`:
  * the same param tree (`n/cell/ii/kernel`, `n/cell/hi/bias`, ...) with the
    same initializers and logical axis names, so checkpoints and the torch and
    Hugging Face converters see no difference;
  * the same sums in the same order as flax's cells: the absent biases enter as
    exact zeros (x + 0 == x), so only the matmuls' blocking can differ;
  * the same outputs at every position (including the run-on values past a
    row's length) and the same final carry (the one at each row's last real
    token), `reverse=True` flipping each row's real tokens like `nn.RNN`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.recurrent import flip_sequences

Carry = Any  # [B, R] (rnn, gru) or a (c, h) pair of them (lstm)

# Per cell: (gate name suffixes in the order of the G axis, which gates have an
# input-side bias, which have a recurrent-side bias); flax's cells' choices.
_GATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "lstm": (("i", "f", "g", "o"), (), ("i", "f", "g", "o")),  # OptimizedLSTMCell
    "gru": (("r", "z", "n"), ("r", "z", "n"), ("n",)),  # GRUCell: b_hn inside r * (.)
    "rnn": (("",), ("",), ()),  # SimpleCell: params 'i' and 'h'
}


def _lstm(carry: Carry, x: jax.Array, h: jax.Array) -> tuple[Carry, jax.Array]:
    """OptimizedLSTMCell's update from its two gate terms x, h [B, 4R]."""
    c, _ = carry  # [B, R]
    i, f, g, o = jnp.split(h + x, 4, axis=-1)  # [B, R] each
    c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)  # [B, R]
    h = nn.sigmoid(o) * jnp.tanh(c)  # [B, R]
    return (c, h), h


def _gru(carry: jax.Array, x: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """GRUCell's (reset-after) update from its two gate terms x, h [B, 3R]."""
    xr, xz, xn = jnp.split(x, 3, axis=-1)  # [B, R] each
    hr, hz, hn = jnp.split(h, 3, axis=-1)  # [B, R] each
    r = nn.sigmoid(xr + hr)
    z = nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    new = (1.0 - z) * n + z * carry  # [B, R]
    return new, new


def _rnn(carry: jax.Array, x: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SimpleCell's update from its two terms x, h [B, R]."""
    new = jnp.tanh(x + h)  # [B, R]
    return new, new


_UPDATES: dict[str, Callable[[Carry, jax.Array, jax.Array], tuple[Carry, jax.Array]]] = {
    "lstm": _lstm, "gru": _gru, "rnn": _rnn}


def _hidden(carry: Carry) -> jax.Array:
    """h [B, R] of a carry: the second of an LSTM's (c, h), else the carry itself."""
    return carry[1] if isinstance(carry, tuple) else carry


class _DenseParams(nn.Module):
    """The params of an `nn.Dense` (`kernel` [in, R], optional `bias` [R]), not applied."""

    features: int
    use_bias: bool
    kernel_init: Callable
    bias_init: Callable
    param_dtype: Any

    @nn.compact
    def __call__(self, in_features: int) -> tuple[jax.Array, jax.Array]:
        kernel = self.param("kernel", self.kernel_init, (in_features, self.features),
                            self.param_dtype)  # [in, R]
        if not self.use_bias:
            return kernel, jnp.zeros((self.features,), self.param_dtype)  # exact zeros
        return kernel, self.param("bias", self.bias_init, (self.features,),
                                  self.param_dtype)  # [R]


class CellParams(nn.Module):
    """The params of flax's `kind` cell, fused per side: (W_x [E, G], b_x [G], W_h [R, G],
    b_h [G]), absent biases as zeros. Name it 'cell' to sit where nn.RNN keeps its cell."""

    kind: str
    features: int
    initializers: tuple[Callable, Callable, Callable]  # kernel, recurrent kernel, bias
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, in_features: int):
        gates, input_biases, recurrent_biases = _GATES[self.kind]
        kernel_init, recurrent_init, bias_init = self.initializers

        def side(prefix, init, biased, width):
            pairs = [_DenseParams(self.features, gate in biased, init, bias_init,
                                  self.param_dtype, name=f"{prefix}{gate}")(width)
                     for gate in gates]
            kernels, biases = zip(*pairs, strict=True)
            return jnp.concatenate(kernels, axis=-1), jnp.concatenate(biases)  # [*, G], [G]

        w_x, b_x = side("i", kernel_init, input_biases, in_features)
        w_h, b_h = side("h", recurrent_init, recurrent_biases, self.features)
        return w_x, b_x, w_h, b_h


def _with_hidden(carry: Carry, h: jax.Array) -> Carry:
    """`carry` with its h leaf replaced by `h` [B, R]."""
    return (carry[0], h) if isinstance(carry, tuple) else h


# Cells that read the input and recurrent terms only through their sum, so that the two
# have the same gradient: the backward pass keeps one.
_SUMMED = frozenset({"lstm", "rnn"})


def _forward(kind, x, w_x, b_x, w_h, b_h, carry):
    """(carries, gates_x, recurrents): every step's carry (leaves [T, B, R]), the input
    terms x W_x + b_x and the recurrent terms h_{t-1} W_h + b_h, [T, B, G] each."""
    update = _UPDATES[kind]
    gates_x = jnp.einsum("TBE,EG->TBG", x, w_x) + b_x[None, None]  # [T, B, G]: one matmul

    def step(carry, x_t):  # x_t [B, G]
        # Cast like flax's cells do (promote_dtype): a float32 carry meets bfloat16 W_h.
        recurrent = _hidden(carry).astype(w_h.dtype) @ w_h + b_h[None]  # [B, G]
        carry, _ = update(carry, x_t, recurrent)
        return carry, (carry, recurrent)

    _, (carries, recurrents) = jax.lax.scan(step, carry, gates_x)
    return carries, gates_x, recurrents


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def recurrence(kind: str, x: jax.Array, w_x: jax.Array, b_x: jax.Array,
               w_h: jax.Array, b_h: jax.Array, carry: Carry) -> Carry:
    """The carries after every step (leaves [T, B, R]) of cell `kind` over x [T, B, E]
    from `carry` (leaves [B, R]); W_x [E, G], b_x [G], W_h [R, G], b_h [G]."""
    return _forward(kind, x, w_x, b_x, w_h, b_h, carry)[0]


def _recurrence_fwd(kind, x, w_x, b_x, w_h, b_h, carry):
    carries, gates_x, recurrents = _forward(kind, x, w_x, b_x, w_h, b_h, carry)
    return carries, (x, w_x, w_h, carry, carries, gates_x, recurrents)


def _recurrence_bwd(kind, residuals, d_carries):
    # Backward through time, like cuDNN: the loop only passes the gradient from step to
    # step (one [B, G] x [G, R] matmul each); the gradients of the kernels, the biases
    # and x are one matmul or sum over all T steps afterwards.
    x, w_x, w_h, carry, carries, gates_x, recurrents = residuals
    update = _UPDATES[kind]
    summed = kind in _SUMMED
    previous = jax.tree.map(lambda c0, cs: jnp.concatenate([c0[None], cs[:-1]]),
                            carry, carries)  # carry before each step, leaves [T, B, R]

    def step(d_carry, inputs):  # d_carry: d loss / d carry_t from the steps after t
        prev, x_t, recurrent, d_out = inputs
        d_carry = jax.tree.map(jnp.add, d_carry, d_out)
        _, vjp = jax.vjp(lambda c, x, r: update(c, x, r)[0], prev, x_t, recurrent)
        d_prev, d_x, d_recurrent = vjp(d_carry)  # d_x, d_recurrent [B, G]
        d_h = _hidden(d_prev) + d_recurrent @ w_h.T  # [B, R]
        return _with_hidden(d_prev, d_h), (d_x if summed else (d_x, d_recurrent))

    zero = jax.tree.map(jnp.zeros_like, carry)
    d_carry, d_terms = jax.lax.scan(
        step, zero, (previous, gates_x, recurrents, d_carries), reverse=True)
    d_gates_x, d_recurrents = (d_terms, d_terms) if summed else d_terms  # [T, B, G]

    def kernel_grad(inputs, d_terms, like):  # [T, B, in], [T, B, G] -> [in, G]
        return jnp.einsum("TBI,TBG->IG", inputs, d_terms,
                          preferred_element_type=jnp.float32).astype(like.dtype)

    def bias_grad(d_terms, like):  # [T, B, G] -> [G]
        return jnp.sum(d_terms, axis=(0, 1), dtype=jnp.float32).astype(like.dtype)

    d_x = jnp.einsum("TBG,EG->TBE", d_gates_x, w_x)  # [T, B, E]
    return (d_x, kernel_grad(x, d_gates_x, w_x), bias_grad(d_gates_x, w_x),
            kernel_grad(_hidden(previous), d_recurrents, w_h), bias_grad(d_recurrents, w_h),
            d_carry)


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd)


class HoistedRNN(nn.Module):
    """One direction of one layer over a whole sequence; see the module docstring."""

    kind: str
    features: int
    initializers: tuple[Callable, Callable, Callable]  # kernel, recurrent kernel, bias
    reverse: bool = False  # run from each row's last real token back; outputs in input order
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, initial_carry: Carry,
                 seq_lengths: jax.Array | None = None) -> tuple[Carry, jax.Array]:
        """x [B, T, E], initial_carry (leaves [B, R]), seq_lengths [B] -> (final carry,
        y [B, T, R]); called like nn.RNN(..., return_carry=True)."""
        params = CellParams(self.kind, self.features, self.initializers, self.param_dtype,
                            name="cell")(x.shape[-1])
        x, w_x, b_x, w_h, b_h = nn.dtypes.promote_dtype(x, *params, dtype=self.dtype)
        if self.reverse:
            x = flip_sequences(x, seq_lengths, num_batch_dims=1, time_major=False)  # [B, T, E]
        # Time-major for the scan. Transposing the narrower x, before the matmul, leaves
        # XLA a plain [T*B, E] x [E, G] matmul (an einsum straight to TBG made it
        # transpose the [E, G] and [T*B, G] operands instead).
        x = jnp.swapaxes(x, 0, 1)  # [T, B, E]
        carries = recurrence(self.kind, x, w_x, b_x, w_h, b_h, initial_carry)  # [T, B, R]
        ys = _hidden(carries)  # [T, B, R]: every cell's output is its h
        if seq_lengths is None:
            carry = jax.tree.map(lambda c: c[-1], carries)  # [B, R]
        else:  # like nn.RNN: each row's carry at its last real token
            rows = jnp.arange(x.shape[1])  # [B]
            carry = jax.tree.map(lambda c: c[seq_lengths - 1, rows], carries)  # [B, R]
        y = jnp.swapaxes(ys, 0, 1)  # [B, T, R]
        if self.reverse:
            y = flip_sequences(y, seq_lengths, num_batch_dims=1, time_major=False)
        return carry, y
