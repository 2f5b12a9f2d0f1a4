"""Name-and-layout rules between a Hugging Face state dict and a zoo params tree.

Glossary: D model width, N heads, H head dim, F feed-forward width, V vocabulary.

A ``Rule`` ties one checkpoint tensor to the zoo parameters it holds, with
the conversion each way. Both directions read the same list of rules, so an
importer and an exporter cannot drift apart. Torch stores ``nn.Linear``
weights as [out, in]; zoo stores kernels as [in, out], with attention
projections split into heads ([D, N, H] in, [N, H, D] out). GPT-2's
``Conv1D`` already stores [in, out], and fuses the query, key and value
projections into one [D, 3D] matrix.

Every conversion is written with array methods (``.T``, ``.reshape``,
slicing) and ``jnp.concatenate``, so it runs on numpy arrays and also under
``jax.eval_shape``: the checkpoint shape a config expects is derived from the
zoo shapes by the same function that writes the tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # a numpy array, or a tracer under jax.eval_shape


class Rule(NamedTuple):
    hf: str  # the checkpoint's tensor name
    zoo: tuple[str, ...]  # the zoo parameter paths it fills, '/'-joined
    to_zoo: Callable[[Array], tuple[Array, ...]]
    to_hf: Callable[..., Array]  # (*the zoo arrays, in the order of ``zoo``) -> the tensor
    # Names under which a checkpoint may also store this tensor (tied copies); when present
    # they must hold the same values.
    aliases: tuple[str, ...] = ()
    # Transformers fills this tensor with zeros when a checkpoint lacks it (so do we).
    zeros_if_missing: bool = False


def same(hf: str, zoo: str, **options: Any) -> Rule:
    """A tensor stored as it is (norm scales and biases, embedding tables, Conv1D kernels)."""
    return Rule(hf, (zoo,), lambda w: (w,), lambda x: x, **options)


def linear(hf: str, zoo: str, **options: Any) -> Rule:
    """torch ``nn.Linear`` weight [out, in] <-> zoo kernel [in, out]."""
    return Rule(hf, (zoo,), lambda w: (w.T,), lambda k: k.T, **options)


def heads_in(hf: str, zoo: str, n: int, h: int) -> Rule:
    """torch Linear [N*H, D] <-> zoo query/key/value kernel [D, N, H]."""
    return Rule(hf, (zoo,), lambda w: (w.T.reshape(w.shape[1], n, h),),
                lambda k: k.reshape(k.shape[0], n * h).T)


def heads_bias(hf: str, zoo: str, n: int, h: int) -> Rule:
    """[N*H] <-> zoo query/key/value bias [N, H]."""
    return Rule(hf, (zoo,), lambda b: (b.reshape(n, h),), lambda b: b.reshape(n * h))


def heads_out(hf: str, zoo: str, n: int, h: int) -> Rule:
    """torch Linear [D, N*H] <-> zoo output kernel [N, H, D]."""
    return Rule(hf, (zoo,), lambda w: (w.T.reshape(n, h, w.shape[0]),),
                lambda k: k.reshape(n * h, k.shape[-1]).T)


def fused_heads_in(hf: str, zoo: tuple[str, str, str], n: int, h: int) -> Rule:
    """Conv1D [D, 3*N*H] (query | key | value) <-> three zoo kernels [D, N, H]; also the
    fused bias [3*N*H] <-> three [N, H] when the tensor is 1-D."""
    width = n * h

    def split(w: Array) -> tuple[Array, ...]:
        if w.ndim == 1:  # [3*N*H]
            return tuple(w[i * width:(i + 1) * width].reshape(n, h) for i in range(3))
        return tuple(w[:, i * width:(i + 1) * width].reshape(w.shape[0], n, h)  # [D, N, H]
                     for i in range(3))

    def join(*parts: Array) -> Array:
        if parts[0].ndim == 2:  # [N, H] biases
            return jnp.concatenate([p.reshape(width) for p in parts])  # [3*N*H]
        return jnp.concatenate([p.reshape(p.shape[0], width) for p in parts], axis=1)

    return Rule(hf, zoo, split, join)


def checkpoint_shape(rule: Rule, zoo_shapes: Mapping[str, jax.ShapeDtypeStruct]) -> tuple:
    """The shape a checkpoint stores ``rule.hf`` in, given the zoo parameter shapes."""
    return tuple(jax.eval_shape(rule.to_hf, *(zoo_shapes[p] for p in rule.zoo)).shape)


def to_zoo(rules: list[Rule], tensors: Mapping[str, np.ndarray],
           zoo_shapes: Mapping[str, jax.ShapeDtypeStruct], *, where: str,
           known_extra: Callable[[str, np.ndarray], bool]) -> dict[str, np.ndarray]:
    """The flat zoo params the rules read from ``tensors``.

    Every tensor must be used by a rule (or be a tied copy of one, or a buffer
    ``known_extra`` accepts). Errors name ``where``, the tensor and what was expected.
    """
    out: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for rule in rules:
        expected = checkpoint_shape(rule, zoo_shapes)
        present = [name for name in (rule.hf, *rule.aliases) if name in tensors]
        if not present and not rule.zeros_if_missing:
            names = " or ".join(repr(n) for n in (rule.hf, *rule.aliases))
            raise ValueError(f"{where}: tensor {names} is missing; the config needs it with "
                             f"shape {list(expected)}")
        value = tensors[present[0]] if present else np.zeros(expected, np.float32)
        for name in present:
            found = tuple(tensors[name].shape)
            if found != expected:
                raise ValueError(f"{where}: tensor {name!r} has shape {list(found)}; the config "
                                 f"needs {list(expected)}")
            if not np.array_equal(tensors[name], value):
                raise ValueError(f"{where}: tensors {present[0]!r} and {name!r} should be tied "
                                 "(one shared matrix) but hold different values")
        used.update(present)
        parts = rule.to_zoo(value)
        for path, part in zip(rule.zoo, parts, strict=True):
            out[path] = np.asarray(part, zoo_shapes[path].dtype)
    unknown = sorted(name for name in tensors
                     if name not in used and not known_extra(name, tensors[name]))
    if unknown:
        raise ValueError(f"{where}: unexpected tensors {unknown[:8]}"
                         f"{' ...' if len(unknown) > 8 else ''}; this architecture has no place "
                         "for them")
    missing = sorted(set(zoo_shapes) - set(out))
    if missing:  # the rules do not cover the model: a bug here, not in the checkpoint
        raise RuntimeError(f"no rule fills the zoo parameters {missing}")
    return out


def to_hf(rules: list[Rule], flat: Mapping[str, Any], *, what: str) -> dict[str, np.ndarray]:
    """The checkpoint tensors of flat zoo params; every parameter must have a place."""
    missing = sorted({p for rule in rules for p in rule.zoo} - set(flat))
    if missing:
        raise ValueError(f"params lack {missing[:5]}, which the config's {what} has")
    extra = sorted(set(flat) - {p for rule in rules for p in rule.zoo})
    if extra:
        raise ValueError(f"params have {extra[:5]}, which a {what} checkpoint has no place for")
    return {rule.hf: np.asarray(rule.to_hf(*(np.asarray(flat[p]) for p in rule.zoo)))
            for rule in rules}
