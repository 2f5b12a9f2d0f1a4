"""Links between torch state_dict entries and zoo params, and the checks around them.

A ``Link`` ties one group of torch tensors to one group of zoo leaves with a
pair of exact inverse functions (transposes, reshapes, splits, sums with a
zero). Each converter (attention.py, transformer.py, rnn.py) turns a zoo param
tree into a list of links; ``from_torch`` and ``to_torch`` only run them. Keys
and shapes are checked here, before any arithmetic, so a mismatch is reported
by name instead of surfacing as a reshape error inside a converter.

Zoo params are handled flat: ``{'layers_0/ffn/wi': leaf}``, paths joined by '/'.
Converters see shapes only (``Shapes``); the driver holds the arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util

Shapes = Mapping[str, tuple[int, ...]]  # flat path or torch key -> shape


class Link(NamedTuple):
    """torch tensors ``torch`` <-> zoo leaves ``zoo``; the two functions invert each other."""

    torch: tuple[str, ...]
    zoo: tuple[str, ...]
    to_zoo: Callable[..., tuple[np.ndarray, ...]]  # torch arrays -> zoo arrays
    to_torch: Callable[..., tuple[np.ndarray, ...]]  # zoo arrays -> torch arrays


def prefixed(links: Iterable[Link], zoo: str, torch: str) -> list[Link]:
    """The same links, one level down: zoo paths under ``zoo``, torch keys under ``torch``."""
    return [link._replace(torch=tuple(torch + k for k in link.torch),
                          zoo=tuple(zoo + p for p in link.zoo)) for link in links]


def below(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    """The entries under ``prefix`` with the prefix removed ('a/b/c' under 'a/' -> 'b/c')."""
    return {k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)}


def children(shapes: Shapes) -> set[str]:
    """The first path components of a flat tree: its top-level names."""
    return {k.split("/", 1)[0] for k in shapes}


def place(where: str) -> str:
    """A subtree's path for a message: 'encoder/layers_0', or 'the top level' for ''."""
    return repr(where.rstrip("/")) if where else "the top level"


def require(shapes: Shapes, paths: Iterable[str], where: str, what: str) -> None:
    """Raises if any zoo path is absent: ``where`` locates the subtree, ``what`` names it."""
    missing = [p for p in paths if p not in shapes]
    if missing:
        found = sorted(children(shapes)) or "nothing"
        raise ValueError(f"the zoo params at {place(where)} are not {what}: no {missing[0]!r} "
                         f"(found {found})")


def check_covered(shapes: Shapes, links: Iterable[Link], where: str, what: str) -> None:
    """Raises if a zoo leaf of a subtree a converter owns has no torch counterpart."""
    linked = {p for link in links for p in link.zoo}
    left = sorted(set(shapes) - linked)
    if left:
        raise ValueError(f"zoo param {where + left[0]!r} has no counterpart in {what} "
                         f"(the torch module cannot represent it; unlinked: {left})")


def check_keys(links: list[Link], found: Iterable[str], source: str) -> None:
    """Raises unless the torch keys the links need are exactly those ``found`` in ``source``."""
    needed = {k: link.zoo for link in links for k in link.torch}
    found = set(found)
    missing = [k for k in needed if k not in found]
    if missing:
        raise ValueError(f"{source} has no key {missing[0]!r}, needed for zoo param(s) "
                         f"{list(needed[missing[0]])} (missing: {missing})")
    extra = sorted(found - set(needed))
    if extra:
        raise ValueError(f"{source} key {extra[0]!r} has no zoo counterpart (unmatched: "
                         f"{extra}); do the zoo config's layers, norms and biases match the "
                         f"torch module's?")


def check_shape(key: str, expected: tuple[int, ...], found: tuple[int, ...], why: str,
                source: str) -> None:
    """Raises if a torch tensor's shape is not the one expected (``why``) where ``source``."""
    if tuple(expected) != tuple(found):
        raise ValueError(f"shape mismatch for torch key {key!r}: expected {list(expected)} "
                         f"({why}), found {list(found)} ({source})")


# ---------------------------------------------------------------- flat trees with boxes


def is_box(x: Any) -> bool:
    return isinstance(x, nn.Partitioned)


def value(leaf: Any) -> np.ndarray:
    """A leaf's array (unboxed) as float32 numpy."""
    return np.asarray(leaf.value if is_box(leaf) else leaf, np.float32)


def probe(leaf: Any) -> np.ndarray:
    """A leaf's array, or zeros of its shape for an abstract leaf (``jax.eval_shape``):
    enough to compute the shapes torch should have."""
    array = leaf.value if is_box(leaf) else leaf
    if isinstance(array, jax.ShapeDtypeStruct):
        return np.zeros(array.shape, np.float32)
    return np.asarray(array, np.float32)


def replaced(leaf: Any, array: np.ndarray) -> Any:
    """``array`` in place of a leaf, keeping its box (logical axis names) if it has one."""
    return leaf.replace(value=array) if is_box(leaf) else array


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A nested params dict -> {'a/b/c': leaf}; boxes are leaves."""
    return traverse_util.flatten_dict(dict(tree), sep="/")


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a/b/c': leaf} -> a nested dict (plain dicts)."""
    return traverse_util.unflatten_dict(dict(flat), sep="/")


# ---------------------------------------------------------------- link builders


class Form(NamedTuple):
    """How one zoo array is laid out as one torch array, both ways."""

    to_zoo: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


def kernel_form(shape: tuple[int, ...], in_axes: int = 1) -> Form:
    """torch ``Linear.weight`` [Out, In] <-> a zoo kernel [*in, *out] (its first ``in_axes``
    axes are the inputs): e.g. [D, N, H] for a query projection, [N, H, D] for the output."""
    fan_in = int(np.prod(shape[:in_axes]))
    return Form(lambda w: w.T.reshape(shape),  # [Out, In] -> [*in, *out]
                lambda k: k.reshape(fan_in, -1).T)  # [*in, *out] -> [Out, In]


def bias_form(shape: tuple[int, ...]) -> Form:
    """torch bias [Out] <-> a zoo bias of any shape with Out entries ([N, H] per head)."""
    return Form(lambda b: b.reshape(shape), lambda b: b.reshape(-1))


def one(key: str, path: str, form: Form) -> Link:
    """One torch tensor <-> one zoo leaf."""
    return Link((key,), (path,), lambda t: (form.to_zoo(t),), lambda z: (form.to_torch(z),))


def packed(key: str, parts: list[tuple[str, Form]]) -> Link:
    """One torch tensor made of equal row blocks (torch packs q/k/v and RNN gates this way)
    <-> one zoo leaf per block, in the same order."""
    paths = tuple(path for path, _ in parts)
    forms = [form for _, form in parts]

    def to_zoo(t):  # [blocks * rows, ...]
        blocks = np.split(t, len(forms))
        return tuple(f.to_zoo(block) for f, block in zip(forms, blocks, strict=True))

    def to_torch(*leaves):
        blocks = [f.to_torch(z) for f, z in zip(forms, leaves, strict=True)]
        return (np.concatenate(blocks, axis=0),)

    return Link((key,), paths, to_zoo, to_torch)


def zeros(paths: tuple[str, ...], shapes: Shapes, where: str) -> Link:
    """Zoo biases that the torch module lacks (``bias=False``): loaded as zeros, which is
    exact; saved only when they are still zero, since torch has nowhere to put them."""
    def to_torch(*leaves):
        for path, leaf in zip(paths, leaves, strict=True):
            if np.any(leaf):
                raise ValueError(f"zoo param {where + path!r} is nonzero, but the torch module "
                                 "has no bias there (bias=False)")
        return ()

    return Link((), paths, lambda: tuple(np.zeros(shapes[p], np.float32) for p in paths),
                to_torch)
