"""Training families by name: ``config.family`` picks one; each is a ``Family`` subclass.

    family = families.make(config)        # checks that config.model fits the family
    family.data(workdir), family.phases(model), family.evaluate(...)

Built in: 'seq2seq' (``seq2seq.py``: RNN and Transformer encoder–decoders),
'lm' (``lm.py``: decoder-only LMs), 'vae' and 'gan' (``generative.py``).
``register`` adds another.
"""

from __future__ import annotations

import ml_collections

from zoo.train.families.base import Family, eval_key
from zoo.train.families.classifier import ClassifierFamily
from zoo.train.families.diffusion import DiffusionFamily
from zoo.train.families.ebm import EBMFamily
from zoo.train.families.flow import FlowFamily
from zoo.train.families.generative import GANFamily, VAEFamily
from zoo.train.families.lm import LMFamily
from zoo.train.families.pixelcnn import PixelCNNFamily
from zoo.train.families.seq2seq import Seq2SeqFamily

_FAMILIES: dict[str, type[Family]] = {}


def register(family: type[Family]) -> None:
    """Adds a family under its ``name``; a taken name raises."""
    if not (isinstance(family, type) and issubclass(family, Family)):
        raise TypeError(f"a family must be a Family subclass, got {family!r}")
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered")
    _FAMILIES[family.name] = family


for _family in (Seq2SeqFamily, LMFamily, VAEFamily, GANFamily, ClassifierFamily,
                EBMFamily, FlowFamily, DiffusionFamily, PixelCNNFamily):
    register(_family)


def names() -> list[str]:
    return sorted(_FAMILIES)


def get(name: str) -> type[Family]:
    if name not in _FAMILIES:
        raise ValueError(f"config key 'family' is {name!r}; allowed: {names()}")
    return _FAMILIES[name]


def make(config: ml_collections.ConfigDict) -> Family:
    """The family of a validated config, holding it."""
    return get(config.family)(config)


__all__ = ["ClassifierFamily", "DiffusionFamily", "EBMFamily", "Family", "FlowFamily",
           "GANFamily", "LMFamily", "PixelCNNFamily", "Seq2SeqFamily", "VAEFamily", "eval_key",
           "get", "make", "names", "register"]
