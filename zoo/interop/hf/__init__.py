"""Hugging Face checkpoints and safetensors files, with no torch needed.

    from zoo.interop import hf
    ckpt = hf.load_hf("path/to/opus-mt-de-en")    # -> HFCheckpoint(model, params, ...)
    hf.save_hf(ckpt.model, ckpt.params, "out")     # MarianMTModel.from_pretrained("out")
    hf.save_safetensors(params, "params.safetensors")
    params = hf.load_safetensors("params.safetensors", like=params)

Supported architectures (``ARCHITECTURES``, by config.json's ``model_type``):
'marian' (``MarianMTModel`` <-> ``EncoderDecoder``) and 'gpt2'
(``GPT2LMHeadModel`` <-> ``DecoderLM``). The tensor layouts are in
``marian.py`` and ``gpt2.py``; ``rules.py`` converts them both ways.
"""

from zoo.interop.hf.checkpoint import (
    ARCHITECTURES,
    RUNTIME_FIELDS,
    HFCheckpoint,
    architecture_of,
    load_hf,
    save_hf,
)
from zoo.interop.hf.files import load_safetensors, save_safetensors

__all__ = [
    "ARCHITECTURES",
    "HFCheckpoint",
    "RUNTIME_FIELDS",
    "architecture_of",
    "load_hf",
    "load_safetensors",
    "save_hf",
    "save_safetensors",
]
