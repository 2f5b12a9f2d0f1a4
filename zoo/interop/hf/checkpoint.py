"""Hugging Face checkpoint directories in and out: ``load_hf`` and ``save_hf``.

    ckpt = load_hf("opus-mt-de-en")        # config.json + model.safetensors
    out = zoo.seq2seq.generate(ckpt.model, ckpt.params, src, max_len=64, **ckpt.decode_ids)
    save_hf(ckpt.model, ckpt.params, "exported", hf_config=ckpt.hf_config)

A directory is dispatched on its config.json's ``model_type`` through
``ARCHITECTURES``. Loading reads the tensors with the ``safetensors``
package alone (no torch), checks every tensor's name and shape against the
model the config describes, and rejects tensors it has no place for, so a
checkpoint either loads completely or fails naming what is wrong. Saving
writes the layout transformers itself writes, so ``MarianMTModel.from_pretrained``
or ``GPT2LMHeadModel.from_pretrained`` reads the directory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any, NamedTuple

import flax.linen as nn
import jax

from zoo.interop.hf import files
from zoo.interop.hf import rules as rules_lib
from zoo.interop.hf.architecture import Architecture
from zoo.interop.hf.gpt2 import GPT2
from zoo.interop.hf.marian import MARIAN
from zoo.seq2seq import check_params
from zoo.transformer import (
    DecoderLM,
    EncoderDecoder,
    TransformerConfig,
    stack_layer_params,
    unstack_layer_params,
)

ARCHITECTURES: dict[str, Architecture] = {a.model_type: a for a in (MARIAN, GPT2)}
CONFIG = "config.json"
GENERATION_CONFIG = "generation_config.json"
# TransformerConfig fields load_hf may change: how the model runs, never what its weights are.
RUNTIME_FIELDS = ("dtype", "scan_layers", "remat", "attention_implementation", "dropout_rate",
                  "attention_dropout_rate", "ffn_dropout_rate")


class HFCheckpoint(NamedTuple):
    model: EncoderDecoder | DecoderLM
    params: dict  # the model's 'params' collection
    hf_config: dict  # config.json as read: token ids and settings zoo does not use
    generation_config: dict | None  # generation_config.json, if the directory has one

    @property
    def decode_ids(self) -> dict:
        """The token-id keywords of the model's generate function (``zoo.seq2seq.generate``
        or ``generate_lm``): Marian's start / end / pad ids, GPT-2's end / pad ids."""
        return ARCHITECTURES[self.hf_config["model_type"]].decode_ids(self.hf_config)


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path!r} is not valid JSON ({what}): {e}") from e
    if not isinstance(value, dict):
        raise ValueError(f"{path!r} must hold a JSON object ({what}), got {type(value).__name__}")
    return value


def architecture_of(hf_config: dict, where: str) -> Architecture:
    """The entry of ``ARCHITECTURES`` for a config.json; unsupported ones raise, naming it."""
    model_type = hf_config.get("model_type")
    classes = hf_config.get("architectures") or []
    supported = {t: a.class_name for t, a in ARCHITECTURES.items()}
    if model_type not in ARCHITECTURES:
        raise ValueError(f"{where}: model_type {model_type!r} (architectures {classes}) is not "
                         f"supported; supported model types: {supported}")
    arch = ARCHITECTURES[model_type]
    if classes and arch.class_name not in classes:
        raise ValueError(f"{where}: architectures {classes} is not supported for model_type "
                         f"{model_type!r}; zoo loads {arch.class_name}")
    return arch


@functools.lru_cache(maxsize=16)
def _shapes(module: nn.Module, model_type: str) -> dict[str, jax.ShapeDtypeStruct]:
    """{path: shape} of the module's params, from shapes alone (nothing is initialised).
    Tracing a model takes a while, so each config's shapes are kept."""
    inputs = ARCHITECTURES[model_type].example_inputs()
    variables = jax.eval_shape(module.init, jax.random.key(0), *inputs)
    return files.flatten(nn.unbox(variables["params"]))


def load_hf(path: str, **runtime: Any) -> HFCheckpoint:
    """A Hugging Face checkpoint directory as a zoo model and its params.

    Args:
      path: a directory with ``config.json`` and ``model.safetensors`` (or a sharded
        ``model.safetensors.index.json``), as ``save_pretrained`` writes it.
      **runtime: TransformerConfig fields that change how the model runs, not its weights
        (``RUNTIME_FIELDS``: ``dtype``, ``scan_layers``, ``remat``, ...).

    Raises:
      FileNotFoundError: no directory, no config.json or no safetensors weights.
      ValueError: an unsupported architecture, a missing or unexpected tensor, a wrong
        shape, or a file that is not JSON / safetensors; each names the file and the tensor.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path!r} is not a directory (a Hugging Face checkpoint "
                                f"directory holds {CONFIG} and {files.WEIGHTS})")
    config_path = os.path.join(path, CONFIG)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{path!r} has no {CONFIG}")
    hf_config = _read_json(config_path, "a model config")
    arch = architecture_of(hf_config, config_path)
    unknown = sorted(set(runtime) - set(RUNTIME_FIELDS))
    if unknown:
        raise ValueError(f"load_hf does not change {unknown}: the checkpoint decides them; "
                         f"allowed: {list(RUNTIME_FIELDS)}")
    config = arch.config_from_hf(hf_config)
    unrolled = arch.module(config=config)  # checkpoints store one tensor per layer
    tensors = {arch.rename(name): value for name, value in files.read_checkpoint(path).items()}
    flat = rules_lib.to_zoo(arch.rules(config), tensors, _shapes(unrolled, arch.model_type),
                            where=os.path.join(path, files.WEIGHTS),
                            known_extra=arch.known_extra(config))
    params = files.unflatten(flat)
    config = dataclasses.replace(config, **runtime)
    if config.scan_layers:
        params = stack_layer_params(params)
    generation = os.path.join(path, GENERATION_CONFIG)
    return HFCheckpoint(
        model=arch.module(config=config), params=jax.device_put(params), hf_config=hf_config,
        generation_config=(_read_json(generation, "a generation config")
                           if os.path.isfile(generation) else None))


def _architecture_for(model: Any) -> tuple[Architecture, TransformerConfig]:
    if isinstance(model, EncoderDecoder | DecoderLM):
        config = model.config
    elif isinstance(model, TransformerConfig):
        config = model
    else:
        raise TypeError(f"model must be an EncoderDecoder, a DecoderLM or a TransformerConfig, "
                        f"got {type(model).__name__}")
    return (GPT2 if config.num_encoder_layers == 0 else MARIAN), config


def save_hf(model: EncoderDecoder | DecoderLM | TransformerConfig, params: Any, path: str, *,
            hf_config: dict | None = None, generation_config: dict | None = None) -> str:
    """Writes a Hugging Face checkpoint directory (config.json + model.safetensors) that
    transformers loads: an ``EncoderDecoder`` as ``MarianMTModel``, a ``DecoderLM`` as
    ``GPT2LMHeadModel``.

    Args:
      model: the zoo module (or its config); its config must be one the architecture can
        hold (e.g. Marian: post-LN, 'concat' sinusoids, epsilon 1e-5).
      params: the model's 'params' collection (boxed or not, scanned or unrolled).
      path: the directory to write (created if needed).
      hf_config: a config.json to keep the settings zoo does not decide from (token ids,
        generation settings); default: zoo's special ids (pad 0, <bos> 1, </s> 2).
      generation_config: written as generation_config.json when given.

    Returns:
      ``path``.

    Raises:
      ValueError: a config the architecture cannot hold (naming the field), or params that
        do not fit the config (naming the path).
    """
    arch, config = _architecture_for(model)
    check_params(params)
    hf = arch.config_to_hf(config)
    kept = {k: v for k, v in (hf_config or {}).items() if k not in hf}
    hf = {**arch.default_ids, **kept, **hf, "dtype": jax.numpy.dtype(config.param_dtype).name}
    params = nn.unbox(params)
    if config.scan_layers:
        params = unstack_layer_params(params)
    tensors = rules_lib.to_hf(arch.rules(config), files.flatten(params), what=arch.class_name)
    os.makedirs(path, exist_ok=True)
    # transformers reads a safetensors file only when its header names a framework.
    files.write(tensors, os.path.join(path, files.WEIGHTS), {"format": "pt"})
    with open(os.path.join(path, CONFIG), "w") as f:
        json.dump(hf, f, indent=2, sort_keys=True)
    if generation_config is not None:
        with open(os.path.join(path, GENERATION_CONFIG), "w") as f:
            json.dump(generation_config, f, indent=2, sort_keys=True)
    return path
