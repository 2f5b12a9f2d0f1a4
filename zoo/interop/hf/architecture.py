"""What each supported Hugging Face architecture tells zoo: one ``Architecture`` record.

An architecture maps a ``config.json`` to a ``TransformerConfig`` and back,
lists the tensor rules of that config (``rules.py``), names the tensors a
checkpoint may carry that zoo rebuilds instead of loading (fixed position
tables, causal-mask buffers), and knows which token ids drive its decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from zoo.interop.hf.rules import Rule
from zoo.transformer import TransformerConfig

# Hugging Face activation names (transformers' ACT2FN) -> zoo's; only exact equivalents.
FROM_HF_ACTIVATION = {
    "relu": "relu",
    "gelu": "gelu",  # the erf form in both
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "swish": "silu",
    "silu": "silu",
}
TO_HF_ACTIVATION = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "silu": "swish"}


class Architecture(NamedTuple):
    model_type: str  # config.json's 'model_type'
    class_name: str  # the transformers class, written to 'architectures'
    module: type  # the zoo module class (called with config=...)
    example_inputs: Callable[[], tuple]  # arguments of module.init, for parameter shapes
    config_from_hf: Callable[[dict], TransformerConfig]
    config_to_hf: Callable[[TransformerConfig], dict]  # raises if Hugging Face cannot hold it
    rules: Callable[[TransformerConfig], list[Rule]]
    # (config) -> (tensor name, tensor) -> True for a known tensor zoo does not load; raises
    # when such a tensor holds something zoo would not reproduce.
    known_extra: Callable[[TransformerConfig], Callable[[str, np.ndarray], bool]]
    rename: Callable[[str], str]  # a checkpoint's tensor name -> the name the rules use
    decode_ids: Callable[[dict], dict]  # config.json -> keyword ids of zoo's generate function
    default_ids: dict  # token ids a model trained in zoo is written with (zoo.data.vocab)


def activation_from_hf(name: Any, where: str) -> str:
    if name not in FROM_HF_ACTIVATION:
        raise ValueError(f"{where}: activation_function {name!r} is not supported; supported: "
                         f"{sorted(FROM_HF_ACTIVATION)}")
    return FROM_HF_ACTIVATION[name]


def require(config: TransformerConfig, what: str, **allowed: tuple) -> None:
    """Raises unless every named config field holds one of its allowed values."""
    for field, values in allowed.items():
        value = getattr(config, field)
        if value not in values:
            raise ValueError(f"a {what} checkpoint cannot hold this model: config.{field} is "
                             f"{value!r}; {what} needs one of {list(values)}")


def single_id(value: Any, name: str) -> int:
    """A token id from config.json; a list (several end tokens) must hold exactly one."""
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"config.json's {name} is {value}; zoo's decoding stops at one id")
        value = value[0]
    if not isinstance(value, int):
        raise ValueError(f"config.json's {name} must be a token id, got {value!r}")
    return value
