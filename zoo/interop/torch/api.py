"""``from_torch`` and ``to_torch``: run a converter's links over real arrays.

Both directions take the zoo side's structure from a params tree and the torch
side's from a module or state_dict, pick the converter by the torch kind
(kinds.py), check keys and shapes (links.py), and only then move numbers.
Scanned Transformer stacks ('layers' [L, ...]) are unstacked for the
conversion and stacked again after it, so converters only see ``layers_{i}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
import torch

from zoo.interop.torch.kinds import CONVERTERS, config_fields, kind_of_keys, kind_of_module
from zoo.interop.torch.links import (
    check_keys,
    check_shape,
    flatten,
    is_box,
    probe,
    replaced,
    unflatten,
    value,
)
from zoo.transformer.stack import stack_layer_params, unstack_layer_params

Params = Mapping[str, Any]
Source = torch.nn.Module | Mapping[str, Any] | str | os.PathLike


def _load(path: str | os.PathLike) -> Mapping[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unreadable, not a torch file, or pickled objects
        raise ValueError(f"cannot read {os.fspath(path)!r} as a torch state_dict "
                         f"(torch.load(..., weights_only=True) failed: {error})") from error


def _state_dict(source: Source, name: str) -> tuple[dict[str, Any], torch.nn.Module | None]:
    """A source as (name -> tensor, the module or None); checks it really is a state_dict."""
    if isinstance(source, torch.nn.Module):
        return dict(source.state_dict()), source
    origin = name
    if isinstance(source, str | os.PathLike):
        origin, source = f"file {os.fspath(source)!r}", _load(source)
    if not isinstance(source, Mapping):
        raise TypeError(f"{origin} must be a torch module, its state_dict() or the path of a "
                        f"saved state_dict, got {type(source).__name__}")
    for key, tensor in source.items():
        if not isinstance(tensor, torch.Tensor | np.ndarray):
            raise ValueError(f"{origin} is not a state_dict: its entry {key!r} is a "
                             f"{type(tensor).__name__}, not a tensor (a checkpoint that "
                             "holds a state_dict under some key? pass that entry)")
    return dict(source), None


def _kind(state: Mapping[str, Any], module: torch.nn.Module | None) -> str:
    if module is None:
        return kind_of_keys({k: tuple(t.shape) for k, t in state.items()})
    config_fields(module)  # raises for what zoo cannot represent
    return kind_of_module(module)


def _numpy(tensor: Any) -> np.ndarray:
    """A float32 copy, so the zoo params never share memory with a torch module."""
    if isinstance(tensor, torch.Tensor):
        tensor = tensor.detach().to("cpu", torch.float32).numpy()
    return np.array(tensor, np.float32, copy=True)


# ---------------------------------------------------------------- the zoo side


def _params(tree: Params) -> tuple[Params, bool]:
    """(params, whether ``tree`` was a variables dict {'params': ...})."""
    if not isinstance(tree, Mapping):
        raise TypeError(f"zoo params must be a nested mapping, got {type(tree).__name__}")
    wrapped = set(tree) == {"params"}
    return (tree["params"] if wrapped else tree), wrapped


def _subtree(params: Params, at: str) -> Params:
    node = params
    for depth, part in enumerate(at.split("/") if at else []):
        if not isinstance(node, Mapping) or part not in node:
            where = "/".join(at.split("/")[:depth]) or "the top level"
            found = sorted(node) if isinstance(node, Mapping) else type(node).__name__
            raise ValueError(f"at={at!r}: the zoo params have no {part!r} at {where} "
                             f"(found {found})")
        node = node[part]
    return node


def _with_subtree(params: Params, at: str, new: Params) -> dict[str, Any]:
    """A copy of ``params`` with the subtree at path ``at`` replaced by ``new``."""
    if not at:
        return dict(new)
    head, _, rest = at.partition("/")
    return {**params, head: _with_subtree(params[head], rest, new)}


def _scanned(tree: Params, prefix: str = "") -> list[str]:
    """Paths (joined by '/', '' for the root) of nodes holding a scanned 'layers' stack."""
    found = [prefix] if isinstance(tree.get("layers"), Mapping) else []
    for name, sub in tree.items():
        if isinstance(sub, Mapping) and name != "layers":
            found += _scanned(sub, f"{prefix}{name}/")
    return found


def _restack(tree: Params, paths: list[str]) -> Params:
    """Stacks the layers of each node in ``paths`` again, as numpy like every other leaf."""
    for path in paths:
        node = stack_layer_params(_subtree(tree, path.rstrip("/")))
        node = {**node, "layers": jax.tree.map(np.asarray, node["layers"])}
        tree = _with_subtree(tree, path.rstrip("/"), node)
    return tree


def _indexable(tree: Params) -> dict[str, Any]:
    """Abstract leaves of scanned stacks as zero-stride zeros, which unstacking can index.

    Only for probing shapes: every leaf of a Transformer layer has a torch counterpart,
    so each placeholder is replaced before the layers are stacked again.
    """
    def concrete(leaf):
        array = leaf.value if is_box(leaf) else leaf
        if not isinstance(array, jax.ShapeDtypeStruct):
            return leaf
        return replaced(leaf, np.broadcast_to(np.float32(0), array.shape))

    return {name: (jax.tree.map(concrete, sub, is_leaf=is_box) if name == "layers"
                   else _indexable(sub) if isinstance(sub, Mapping) else sub)
            for name, sub in tree.items()}


def _zoo_side(params: Params, at: str, *, abstract_ok: bool):
    """(flat unstacked leaves of the subtree at ``at``, their shapes, scanned nodes, where)."""
    if "layers" in at.split("/"):
        raise ValueError(f"at={at!r} points into a scanned stack ('layers', params [L, ...]); "
                         "convert the whole stack (at its parent), or unstack it first with "
                         "zoo.transformer.stack.unstack_layer_params")
    sub = _subtree(params, at)
    if not abstract_ok:
        for path, leaf in flatten(sub).items():
            if isinstance(leaf.value if is_box(leaf) else leaf, jax.ShapeDtypeStruct):
                raise ValueError(f"zoo param {path!r} at={at!r} is abstract (from "
                                 "jax.eval_shape?); to_torch needs arrays")
    flat = flatten(unstack_layer_params(_indexable(sub) if abstract_ok else sub))
    shapes = {p: tuple(np.shape(leaf.value if is_box(leaf) else leaf))
              for p, leaf in flat.items()}
    return flat, shapes, _scanned(sub), (at.rstrip("/") + "/" if at else "")


# ---------------------------------------------------------------- the API


def from_torch(source: Source, like: Params, *, at: str = "") -> Params:
    """Zoo params holding the weights of a torch module.

    Args:
      source: a supported torch module (``SUPPORTED``), its ``state_dict()``, or the path
        of a ``torch.save``d state_dict. A module is also checked for hyperparameters zoo
        cannot represent; a state_dict's kind is read from its keys, and its architecture
        (layer count, directions, final norm, biases) must match ``like``.
      like: the zoo params to fill -- ``variables['params']`` of the zoo model, or the
        ``variables`` dict itself -- giving the structure and shapes. Its leaves may be
        abstract (``jax.eval_shape`` of ``init``), so a model need not be initialised
        just to be loaded; leaves torch does not provide then stay abstract.
      at: '/'-joined path of the subtree of ``like`` that corresponds to the torch
        module: '' (the default) when ``like`` is that module's own params, e.g.
        'encoder/stack' to load an ``nn.LSTM`` into a ``zoo.rnn.Seq2Seq``'s encoder or
        'encoder' for an ``nn.TransformerEncoder`` into an ``EncoderDecoder``.

    Returns:
      A new tree shaped like ``like`` (the same boxes, scanned or not) in which every leaf
      the torch module has a counterpart for is a float32 numpy array of its weights;
      every other leaf (token embeddings, position tables, output layers, anything outside
      ``at``) is ``like``'s own, unchanged.

    Raises:
      TypeError: an unsupported module type (the message lists the supported ones).
      ValueError: a missing or unmatched key, a shape mismatch (key, expected shape, shape
        found), an architecture zoo cannot represent, or a file that is no state_dict.
    """
    state, module = _state_dict(source, "source")
    kind = _kind(state, module)
    params, wrapped = _params(like)
    flat, shapes, scanned, where = _zoo_side(params, at, abstract_ok=True)
    links = CONVERTERS[kind](shapes, {k: tuple(t.shape) for k, t in state.items()}, where)
    check_keys(links, state, f"the torch {kind} state_dict")
    arrays = {key: _numpy(tensor) for key, tensor in state.items()}
    out = dict(flat)
    for link in links:
        if link.torch:  # what torch should hold, from the zoo params it will replace
            expected = link.to_torch(*(probe(flat[p]) for p in link.zoo))
            for key, array in zip(link.torch, expected, strict=True):
                check_shape(key, array.shape, arrays[key].shape,
                            f"for zoo {[where + p for p in link.zoo]}", "in the state_dict")
        new = link.to_zoo(*(arrays[key] for key in link.torch))
        for path, array in zip(link.zoo, new, strict=True):
            out[path] = replaced(flat[path], array)
    result = _with_subtree(params, at, _restack(unflatten(out), scanned))
    return {"params": result} if wrapped else result


def to_torch(params: Params, like: Source, *, at: str = "") -> dict[str, torch.Tensor]:
    """A torch state_dict holding zoo params, for ``like.load_state_dict(sd, strict=True)``.

    Args:
      params: zoo params (or the ``variables`` dict), scanned or not.
      like: the torch module to fill, its ``state_dict()`` or a saved one's path; it gives
        the keys and shapes (its values are not used). ``torch.save`` the result to keep it.
      at: '/'-joined path of the subtree of ``params`` that corresponds to ``like`` (see
        ``from_torch``); zoo params outside it, and those torch has no place for (token
        embeddings, position tables), are not exported.

    Returns:
      {key: float32 CPU tensor} with exactly ``like``'s keys, in its order. Where torch
      has two biases and zoo one (RNN gates), the first gets zoo's bias and the second
      zeros: the same function, and ``from_torch`` gives back the same zoo params exactly.

    Raises:
      TypeError / ValueError: as ``from_torch``; also when a zoo bias is nonzero but the
      torch module has ``bias=False``.
    """
    template, module = _state_dict(like, "like")
    kind = _kind(template, module)
    flat, shapes, _, where = _zoo_side(_params(params)[0], at, abstract_ok=False)
    links = CONVERTERS[kind](shapes, {k: tuple(t.shape) for k, t in template.items()}, where)
    check_keys(links, template, f"the torch {kind} state_dict")
    out = {}
    for link in links:
        arrays = link.to_torch(*(value(flat[p]) for p in link.zoo))
        for key, array in zip(link.torch, arrays, strict=True):
            check_shape(key, tuple(template[key].shape), array.shape,
                        "in the torch module", f"from zoo {[where + p for p in link.zoo]}")
            out[key] = torch.from_numpy(np.array(array, np.float32, copy=True))
    return {key: out[key] for key in template}
