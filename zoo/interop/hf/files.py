"""safetensors files: any zoo params tree in and out, and reading a checkpoint's tensors.

A params tree is stored flat: each leaf under its path joined with '/'
(``decoder/layers_0/ffn/wi``), in its own dtype (bfloat16 included), so a tree
saved and loaded again is bit-for-bit the same. The file says nothing about
the tree's structure beyond those names; ``load_safetensors(path, like=...)``
checks the names, shapes and dtypes against a tree you already have (a model's
``init`` or ``jax.eval_shape`` of it) and returns the loaded tree in its
structure, re-boxed where ``like`` holds ``nn.Partitioned`` leaves.

Only the ``safetensors`` package is used (its numpy backend): no torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import safetensors
import safetensors.numpy
from flax import traverse_util

SEPARATOR = "/"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"  # sharded checkpoints: key -> shard file


def _is_box(x: Any) -> bool:
    return isinstance(x, nn.Partitioned)


def flatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """A nested dict of leaves -> {'a/b/c': leaf}. Boxed leaves stay boxed."""
    flat: dict[str, Any] = {}

    def walk(tree: Any, prefix: str) -> None:
        if isinstance(tree, Mapping):
            for key, value in tree.items():
                if not isinstance(key, str) or SEPARATOR in key or not key:
                    raise ValueError(f"params keys must be non-empty strings without "
                                     f"{SEPARATOR!r}, got {key!r} under {prefix or 'the root'!r}")
                walk(value, f"{prefix}{SEPARATOR}{key}" if prefix else key)
        else:
            flat[prefix] = tree

    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a nested dict of arrays, got {type(params).__name__}")
    walk(params, "")
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a/b/c': leaf} -> a nested dict."""
    return traverse_util.unflatten_dict(dict(flat), sep=SEPARATOR)


def _host(leaf: Any) -> np.ndarray:
    """A leaf as a contiguous numpy array (safetensors writes raw little-endian bytes)."""
    value = leaf.value if _is_box(leaf) else leaf
    return np.asarray(jax.device_get(value), order="C")  # (ascontiguousarray makes 0-d 1-d)


def write(tensors: Mapping[str, Any], path: str, metadata: Mapping[str, str] | None = None) -> None:
    """Writes {name: array} to ``path`` atomically (beside it, then renamed)."""
    arrays = {name: _host(value) for name, value in tensors.items()}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = f"{path}.partial"
    safetensors.numpy.save_file(arrays, partial, metadata=dict(metadata or {}))
    os.replace(partial, path)


def read(path: str) -> dict[str, np.ndarray]:
    """Every tensor of one safetensors file, as numpy arrays."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no safetensors file at {path!r}")
    try:
        with safetensors.safe_open(path, framework="np") as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    except (safetensors.SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path!r} is not a readable safetensors file: {e}") from e


def read_checkpoint(directory: str) -> dict[str, np.ndarray]:
    """The tensors of a Hugging Face checkpoint directory: ``model.safetensors``, or the shards
    named by ``model.safetensors.index.json``."""
    single = os.path.join(directory, WEIGHTS)
    if os.path.isfile(single):
        return read(single)
    index = os.path.join(directory, WEIGHTS_INDEX)
    if os.path.isfile(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors: dict[str, np.ndarray] = {}
        for shard in shards:
            tensors.update(read(os.path.join(directory, shard)))
        return tensors
    present = sorted(os.listdir(directory))
    hint = (" (torch pickles: convert them once with transformers' save_pretrained, whose "
            "default is safetensors)" if any(p.endswith(".bin") for p in present) else "")
    raise FileNotFoundError(f"{directory!r} has no {WEIGHTS} or {WEIGHTS_INDEX}; it holds "
                            f"{present}{hint}")


def save_safetensors(params: Mapping[str, Any], path: str, *,
                     metadata: Mapping[str, str] | None = None) -> None:
    """Writes a zoo params tree (plain or boxed leaves, any dtype) to one safetensors file,
    each leaf under its '/'-joined path. ``metadata``: extra text entries for the header."""
    write(flatten(params), path, {"format": "zoo", **(metadata or {})})


def load_safetensors(path: str, like: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A params tree saved by :func:`save_safetensors`.

    Without ``like``: the nested dict of numpy arrays the file's names describe.
    With ``like`` (a params tree of arrays, ``jax.ShapeDtypeStruct`` or ``nn.Partitioned``
    leaves): the same structure filled from the file, boxes kept.

    Raises:
      ValueError: a name missing from the file or not in ``like``, or a shape or dtype
        that differs from ``like``'s; each names the path.
    """
    tensors = read(path)
    if like is None:
        return unflatten(tensors)
    expected = flatten(like)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"{path!r} does not hold the tree of `like`: missing "
                         f"{missing[:5]}{' ...' if len(missing) > 5 else ''}, unexpected "
                         f"{extra[:5]}{' ...' if len(extra) > 5 else ''}")
    out = {}
    for name, leaf in expected.items():
        value = leaf.value if _is_box(leaf) else leaf
        found = tensors[name]
        if tuple(found.shape) != tuple(np.shape(value)) or found.dtype != value.dtype:
            raise ValueError(f"{path!r}: {name!r} is {found.dtype}{list(found.shape)}; `like` "
                             f"has {np.dtype(value.dtype)}{list(np.shape(value))}")
        out[name] = leaf.replace(value=found) if _is_box(leaf) else found
    return unflatten(out)
