"""Model registry: a preset name -> (config dataclass instance, module class).

Every model family registers its named presets here so that configs, tests and
benchmarks can build any model by name:

    model = zoo.registry.build("seq2seq_luong_lstm", vocab_size=64)
    params = model.init(rng, *model_inputs)

A model module takes exactly one constructor argument, ``config``.

The model packages (``zoo.rnn``, ``zoo.transformer``, ``zoo.generative``)
register their presets when they are imported; ``import zoo`` imports them
all, so every preset is here whatever part of zoo a program imports first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple


class Entry(NamedTuple):
    config: Any  # a frozen dataclass instance
    module: Callable[..., Any]  # the linen module class, called as module(config=...)


_REGISTRY: dict[str, Entry] = {}


def register(name: str, config: Any, module: Callable[..., Any]) -> None:
    """Registers preset ``name``; a name can be registered only once."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config for {name!r} must be a dataclass instance, got {config!r}")
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = Entry(config, module)


def names() -> list[str]:
    """All registered preset names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Entry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(names())}")
    return _REGISTRY[name]


def make_config(name: str, **overrides: Any) -> Any:
    """The preset's config with ``overrides`` applied; unknown fields raise."""
    config = get(name).config
    fields = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown config field(s) {unknown} for model {name!r}; allowed: {sorted(fields)}"
        )
    return dataclasses.replace(config, **overrides)


def build(name: str, **overrides: Any) -> Any:
    """The module for preset ``name`` with config ``overrides`` applied."""
    return get(name).module(config=make_config(name, **overrides))
