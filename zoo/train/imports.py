"""A Hugging Face Marian (Opus-MT) directory as a zoo run: translate with it, or fine-tune it.

    import_marian("opus-mt-de-en", "runs/opus_de_en")
    zoo.train.translate("runs/opus_de_en", ["Guten Morgen."])
    python train.py --workdir runs/opus_de_en --translate "Guten Morgen."

Glossary: V the checkpoint's vocabulary, D model width.

The workdir gets what a training run leaves behind, so everything that reads
runs reads it: ``config.json`` (family 'seq2seq', the model's fields,
``data.tokenizer='marian'`` and no dataset), the tokenizer files under
``tokenizer/`` and a step-0 checkpoint. Training with ``data.dataset`` set
fine-tunes it.

zoo's pipelines and decoding use fixed special ids (pad 0, <bos> 1, </s> 2,
<unk> 3), so the vocabulary is renumbered (``zoo.data.marian``): embeddings
and logit biases are reordered to match, and the vocabulary grows by one row,
zoo's <pad>, separate from Marian's <pad>, which stays the decoder's first
input (zoo's <bos>). The new row's logit bias is ``NEVER``, so it is never
predicted and the softmax over the real rows is unchanged (its exp is 0 in
float32). Marian's <pad> gets the same bias when the checkpoint forbids
generating it (Opus-MT's ``bad_words_ids``), as transformers then does.
``NEVER`` is large enough for that and small enough to add only a negligible
constant to a label-smoothed loss over V + 1 classes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import ml_collections
import numpy as np

from zoo.data.marian import MarianTokenizer, ZooOrderTokenizer
from zoo.interop.hf import load_hf
from zoo.train import checkpoints, optim
from zoo.train import config as config_lib
from zoo.train.state import TrainState

NEVER = -1e4  # a logit bias no real logit overcomes
TOKENIZER_FILES = ("source.spm", "target.spm", "vocab.json")
PRESET = "transformer_base"  # the registry entry whose fields the import overrides
# TransformerConfig fields a run's config leaves to the preset (how to run, not what to run).
_RUNTIME = ("dtype", "param_dtype", "attention_implementation", "scan_layers", "remat")


def _copy_tokenizer(hf_dir: str, folder: str) -> tuple[ZooOrderTokenizer, ZooOrderTokenizer]:
    os.makedirs(folder, exist_ok=True)
    for name in (*TOKENIZER_FILES, "target_vocab.json"):
        if os.path.isfile(os.path.join(hf_dir, name)):
            shutil.copyfile(os.path.join(hf_dir, name), os.path.join(folder, name))
    return tuple(ZooOrderTokenizer(MarianTokenizer(folder, side)) for side in ("source", "target"))


def _banned(hf_config: dict, generation: dict | None, pad: int) -> bool:
    """Whether the checkpoint forbids generating <pad> (``bad_words_ids`` holds [pad])."""
    words = (generation or {}).get("bad_words_ids") or hf_config.get("bad_words_ids") or []
    return [pad] in words


def _reorder(params: dict, src: ZooOrderTokenizer, tgt: ZooOrderTokenizer,
             ban_pad: bool) -> dict:
    """Marian's params with every vocabulary axis in zoo's order (V + 1 rows)."""
    params = jax.tree.map(np.asarray, params)
    params["embed"]["embedding"] = params["embed"]["embedding"][tgt.order]  # [V + 1, D]
    if "src_embed" in params:
        params["src_embed"]["embedding"] = params["src_embed"]["embedding"][src.order]
    decoder = params["decoder"]
    if "output_kernel" in decoder:
        decoder["output_kernel"] = decoder["output_kernel"][:, tgt.order]  # [D, V + 1]
    bias = decoder["output_bias"][tgt.order].copy()  # [V + 1]
    bias[0] = NEVER  # zoo's own <pad>: the row Marian does not have
    if ban_pad:
        bias[1] = NEVER
    decoder["output_bias"] = bias
    return params


def import_marian(hf_dir: str, workdir: str, *,
                  max_decode_len: int | None = None) -> ml_collections.ConfigDict:
    """Writes a zoo run of a Hugging Face Marian checkpoint directory to ``workdir``.

    Args:
      hf_dir: config.json, model.safetensors, source.spm, target.spm, vocab.json.
      workdir: the run's directory (created; must not hold a run already).
      max_decode_len: the longest translation ``translate`` writes by default (default: the
        model's max_position_embeddings).

    Returns:
      The run's validated config (also written to ``<workdir>/config.json``).

    Raises:
      ValueError: not a Marian checkpoint, tokenizer files that do not fit the model, or a
        workdir that already holds a run; as ``load_hf`` for the weights.
    """
    if os.path.exists(os.path.join(workdir, "config.json")):
        raise ValueError(f"{workdir!r} already holds a run (config.json); import into a new "
                         "directory")
    ckpt = load_hf(hf_dir)
    if ckpt.hf_config["model_type"] != "marian":
        raise ValueError(f"{hf_dir!r} holds a {ckpt.hf_config['model_type']!r} model; "
                         "import_marian imports 'marian' (MarianMTModel) checkpoints")
    model = ckpt.model.config
    src, tgt = _copy_tokenizer(hf_dir, os.path.join(workdir, "tokenizer"))
    for side, tok, size in (("source", src, model.source_vocab_size),
                            ("target", tgt, model.vocab_size)):
        if tok.marian.size != size:
            raise ValueError(f"{hf_dir!r}: the {side} vocabulary has {tok.marian.size} pieces "
                             f"but the model's {side} embedding has {size} rows")
    ids = ckpt.decode_ids
    if (ids["bos_id"], ids["eos_id"]) != (tgt.marian.pad_id, tgt.marian.eos_id):
        raise ValueError(f"{hf_dir!r}: decoding starts from id {ids['bos_id']} and stops at "
                         f"{ids['eos_id']}; vocab.json has <pad> = {tgt.marian.pad_id} and "
                         f"</s> = {tgt.marian.eos_id}, which Marian decoding uses")
    ban_pad = _banned(ckpt.hf_config, ckpt.generation_config, tgt.marian.pad_id)
    params = _reorder(ckpt.params, src, tgt, ban_pad)

    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)
              if f.name not in _RUNTIME}
    fields.update(vocab_size=tgt.size, src_vocab_size=None if model.share_embeddings
                  else src.size)
    config = config_lib.validate(ml_collections.ConfigDict({
        "family": "seq2seq",
        "model": {"name": PRESET, **fields},
        "data": {"dataset": "", "tokenizer": "marian", "max_src_len": model.max_len,
                 "max_tgt_len": model.max_len},
        "eval": {"method": "greedy", "max_decode_len": max_decode_len or model.max_len},
        "train": {"best_metric": "bleu"},
    }))
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))

    tx, _ = optim.make_optimizer(config.optim)
    # The key a run of this config would start from (Family.init_state's third split).
    rng = jax.random.split(jax.random.PRNGKey(config.seed), 3)[2]
    state = TrainState.create(jax.device_put(params), tx, rng)
    saver = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), async_save=False)
    saver.save(0, state, config=json.loads(config.to_json_best_effort()))
    saver.wait()
    saver.close()
    return config
