"""``torch.nn.LSTM`` / ``GRU`` / ``RNN`` <-> ``zoo.rnn.RNNStack`` params (flax cells).

Glossary: E layer input width, R state width per direction, G gate blocks (LSTM 4,
GRU 3, RNN 1), k layer index.

    torch (layer k; '_reverse' for the backward direction)   zoo cell (flax)
    weight_ih_l{k} [G*R, E], gates stacked by rows           i{g}/kernel [E, R] per gate g
    weight_hh_l{k} [G*R, R]                                  h{g}/kernel [R, R]
    bias_ih_l{k}, bias_hh_l{k} [G*R]                         see _BIASES

Gate order: LSTM i, f, g, o (flax ``OptimizedLSTMCell`` names ii..io, hi..ho);
GRU r, z, n (``GRUCell``: ir, iz, in, hr, hz, hn); RNN one block (``SimpleCell``:
i, h). Layer k of the zoo stack is ``layers_{k}``, or ``forward_rnn[_k]`` and
``backward_rnn[_k]`` when bidirectional (no suffix for k = 0).

Biases. torch has two per gate, b_ih and b_hh. Where both are simply added
(every LSTM and RNN gate, GRU's r and z) flax has one, and it gets their sum.
GRU's candidate n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) keeps b_hn inside the
reset product in torch and in flax's GRUCell alike (both are the reset-after GRU),
and flax has a bias in both places (in/bias, hn/bias), so the GRU maps exactly
too. Saving puts each sum into b_ih and zeros into b_hh: the same function, and
loading it back gives the same zoo params bit for bit.
"""

from __future__ import annotations

import re

import numpy as np

from zoo.interop.torch.links import (
    Link,
    Shapes,
    below,
    check_covered,
    children,
    kernel_form,
    packed,
    place,
    prefixed,
    require,
    zeros,
)

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("",)}
_CELL_OF_GATES = {len(gates): cell for cell, gates in GATES.items()}
_ZOO_INPUT_KERNEL = {"lstm": "ii", "gru": "ir", "rnn": "i"}  # tells the cell kind apart


def _summed(paths: tuple[str, ...]) -> Link:
    """b_ih + b_hh -> one zoo bias per gate block."""
    def to_zoo(b_ih, b_hh):  # [G*R] each
        return tuple(np.split(b_ih + b_hh, len(paths)))

    def to_torch(*biases):  # [R] each
        b_ih = np.concatenate(biases)  # [G*R]
        return b_ih, np.zeros_like(b_ih)

    return Link(("bias_ih", "bias_hh"), paths, to_zoo, to_torch)


def _gru_biases() -> Link:
    """r, z: summed; n: b_in and b_hn stay apart (b_hn is inside the reset product)."""
    def to_zoo(b_ih, b_hh):  # [3R] each
        (ir, iz, i_n), (hr, hz, hn) = np.split(b_ih, 3), np.split(b_hh, 3)
        return ir + hr, iz + hz, i_n, hn

    def to_torch(r, z, i_n, hn):  # [R] each
        zero = np.zeros_like(r)
        return np.concatenate([r, z, i_n]), np.concatenate([zero, zero, hn])  # [3R] each

    return Link(("bias_ih", "bias_hh"), ("ir/bias", "iz/bias", "in/bias", "hn/bias"),
                to_zoo, to_torch)


_BIASES = {
    "lstm": lambda: _summed(tuple(f"h{g}/bias" for g in GATES["lstm"])),
    "gru": _gru_biases,
    "rnn": lambda: _summed(("i/bias",)),
}


def _cell_links(cell: str, zoo: Shapes, torch_has_bias: bool, where: str) -> list[Link]:
    """One layer-direction's links with torch keys lacking their '_l{k}' suffix."""
    links = [packed(f"weight_{side}", [(f"{side[0]}{g}/kernel",
                                        kernel_form(zoo[f"{side[0]}{g}/kernel"]))
                                       for g in GATES[cell]]) for side in ("ih", "hh")]
    biases = _BIASES[cell]()
    links.append(biases if torch_has_bias else zeros(biases.zoo, zoo, where))
    check_covered(zoo, links, where, f"torch's {cell.upper()} cell")
    return links


def _zoo_cell(zoo: Shapes, where: str) -> str:
    names = children(zoo)
    for cell, name in _ZOO_INPUT_KERNEL.items():
        if name in names:
            return cell
    raise ValueError(f"the zoo params at {place(where)} are not a flax LSTM, GRU or Simple "
                     f"cell (found {sorted(names)})")


def _directions(layer: int, bidirectional: bool) -> list[tuple[str, str]]:
    """(zoo name, torch key suffix) of each direction of layer ``layer``."""
    if not bidirectional:
        return [(f"layers_{layer}", f"_l{layer}")]
    suffix = f"_{layer}" if layer else ""
    return [(f"forward_rnn{suffix}", f"_l{layer}"), (f"backward_rnn{suffix}", f"_l{layer}_reverse")]


def rnn_links(zoo: Shapes, torch: Shapes, where: str, *, cell: str) -> list[Link]:
    """A torch LSTM / GRU / RNN (``cell`` names it) <-> an RNNStack's params."""
    names = children(zoo)
    bidirectional = "forward_rnn" in names
    layer = re.compile(r"forward_rnn(?:_(\d+))?$" if bidirectional else r"layers_(\d+)$")
    num_layers = sum(1 for name in names if layer.match(name))
    if not num_layers:
        require(zoo, ["layers_0"], where, "an RNN stack (zoo.rnn.RNNStack params)")
    torch_layers = len({k for k in torch if re.fullmatch(r"weight_ih_l\d+", k)})
    torch_bidirectional = any(k.endswith("_reverse") for k in torch)
    if (num_layers, bidirectional) != (torch_layers, torch_bidirectional):
        raise ValueError(f"the torch {cell.upper()} has num_layers={torch_layers}, "
                         f"bidirectional={torch_bidirectional}; the zoo stack at "
                         f"{place(where)} has num_layers={num_layers}, "
                         f"bidirectional={bidirectional}")
    zoo_cell = _zoo_cell(below(zoo, _directions(0, bidirectional)[0][0] + "/cell/"), where)
    if zoo_cell != cell:
        raise ValueError(f"the torch weights are {cell.upper()} weights, the zoo stack at "
                         f"{place(where)} has {zoo_cell.upper()} cells (Seq2SeqConfig.cell / "
                         "RNNStack.cell)")
    links = []
    for k in range(num_layers):
        for name, suffix in _directions(k, bidirectional):
            prefix = f"{name}/cell/"
            cell_links = _cell_links(cell, below(zoo, prefix), f"bias_ih{suffix}" in torch,
                                     where + prefix)
            links += [link._replace(torch=tuple(key + suffix for key in link.torch))
                      for link in prefixed(cell_links, prefix, "")]
    check_covered(zoo, links, where, f"torch's {cell.upper()}")
    return links


def cell_of_state_dict(torch: Shapes) -> str:
    """'lstm', 'gru' or 'rnn' from the gate blocks of an RNN state_dict's weight_ih_l0."""
    rows, width = torch["weight_ih_l0"][0], torch["weight_hh_l0"][1]  # [G*R, E], [G*R, R]
    gates = rows // width if width and rows % width == 0 else None
    if gates not in _CELL_OF_GATES:
        raise ValueError(f"weight_ih_l0 [{rows}, ...] is not 1, 3 or 4 gate blocks of "
                         f"R={width} rows: not a torch RNN, GRU or LSTM state_dict")
    return _CELL_OF_GATES[gates]
