"""Text from a trained language model's checkpoint, from the command line or from Python.

    python train.py --workdir runs/lm --sample "a small " --sample "" --num_samples 3
    samples = sample_from_checkpoint("runs/lm", ["a small "], num_samples=3)

Glossary: B prompts x samples each, P longest prompt (with <bos>), T new tokens.

The run's own ``config.json`` (or a given config) rebuilds the model and the
tokenizer exactly as training built them -- the same data preparation, the
same vocabulary -- and the newest checkpoint that restores gives the
parameters. Restoring only reads: it never moves or deletes a checkpoint,
so it is safe beside a running job. The state is restored onto one device
(the model must fit there).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from zoo.data.reading import check_positive
from zoo.data.vocab import BOS_ID, EOS_ID, PAD_ID
from zoo.train import checkpoints, families, optim
from zoo.train import config as config_lib
from zoo.transformer.generate import generate_lm


class Samples(NamedTuple):
    step: int  # the checkpoint's step
    prompts: list[str]
    texts: list[list[str]]  # texts[i][j]: sample j continuing prompts[i] (prompt excluded)


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The validated config a run wrote to ``<workdir>/config.json``."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"workdir {workdir!r} has no config.json (the training job writes it); "
                         "train there first, or pass the run's --config")
    with open(path) as f:
        return config_lib.validate(ml_collections.ConfigDict(json.load(f)))


class Inference(NamedTuple):
    family: object  # zoo.train.families' handler of the run's config.family
    data: object  # the run's data pipeline: tokenizers, vocabulary, scoring
    model: nn.Module
    step: int  # the restored step; with averaging, the first of ``steps``
    params: object
    steps: tuple[int, ...]  # the steps whose parameters ``params`` are (one, or the averaged)


def restore_for_inference(workdir: str, config: ml_collections.ConfigDict, *,
                          best: bool = False, average: int = 1) -> Inference:
    """The model and parameters of a run's newest checkpoint that restores, on one device --
    or, with ``best``, of the step whose evaluation was best by the run's
    ``train.best_metric``. With ``average`` > 1 the parameters are the mean of that
    many saved steps, the newest (or the best) first: checkpoint averaging. Only
    reads the run's folder: safe beside a running job.

    Raises ValueError when there is no checkpoint that restores or ``average`` < 1,
    and ``CheckpointMismatchError`` (a ValueError) when the newest one does not fit
    ``config``'s model.
    """
    check_positive(average=average)
    folder = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(folder):
        raise ValueError(f"no checkpoint in {workdir!r} (no checkpoints/ folder); train first "
                         "(python train.py --config ... --workdir ...)")
    family = families.make(config)
    data = family.data(workdir)  # the training run's tokenizer and vocabulary
    model = family.build_model(data.vocab)
    tx, _ = optim.make_optimizer(config.optim)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.eval_shape(lambda r: nn.unbox(family.init_state(model, tx, r)),
                              jax.random.PRNGKey(config.seed))
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device),
                          abstract)
    order = {"best_metric": config.train.best_metric if best else None,
             "best_mode": config.train.best_mode}
    if average == 1:
        one = checkpoints.read_latest(folder, target, **order)
        restored = None if one is None else checkpoints.Averaged((one.step,), one.state.params)
    else:
        restored = checkpoints.read_average(folder, target, average, **order)
    if restored is None:
        raise ValueError(f"no checkpoint in {folder!r} restores; train first (python train.py "
                         "--config ... --workdir ...)")
    return Inference(family, data, model, restored.steps[0], restored.params, restored.steps)


def sample_from_checkpoint(workdir: str, prompts: Sequence[str] = ("",), *, num_samples: int = 1,
                           max_new_tokens: int | None = None, temperature: float = 0.8,
                           top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                           config: ml_collections.ConfigDict | None = None) -> Samples:
    """``num_samples`` continuations of each prompt from the newest good checkpoint of ``workdir``.

    Args:
      workdir: a training run's directory (``checkpoints/``, ``config.json``, ``data/``).
      prompts: texts to continue; ``""`` samples from scratch (from <bos> alone).
      num_samples: continuations per prompt, drawn independently.
      max_new_tokens: the longest continuation (default: the config's eval.max_decode_len).
      temperature, top_k, top_p: the sampling filters of ``zoo.decoding.sample``.
      seed: the sampling key; the same seed and checkpoint give the same texts.
      config: the run's config; default: ``<workdir>/config.json``.

    Raises:
      ValueError: the run is not a language model (family 'lm'), has no
        checkpoint that restores, or an argument is out of range.
    """
    config = load_config(workdir) if config is None else config_lib.validate(config)
    if config.family != "lm":
        raise ValueError(f"sampling text needs a language model (config family 'lm'); the run "
                         f"in {workdir!r} has family {config.family!r}")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    check_positive(num_samples=num_samples)
    max_new_tokens = config.eval.max_decode_len if max_new_tokens is None else max_new_tokens
    check_positive(max_new_tokens=max_new_tokens)
    _, data, model, step, params, _ = restore_for_inference(workdir, config)

    rows = [[BOS_ID, *data.tokenizer.encode(p)] for p in prompts for _ in range(num_samples)]
    lengths = np.asarray([len(r) for r in rows], np.int32)  # [B]
    tokens = np.full((len(rows), lengths.max()), PAD_ID, np.int32)  # [B, P]
    for i, row in enumerate(rows):
        tokens[i, : len(row)] = row
    out = generate_lm(model, params, tokens, lengths, max_new_tokens=max_new_tokens,
                      eos_id=EOS_ID, method="sample", key=jax.random.PRNGKey(seed),
                      temperature=temperature, top_k=top_k, top_p=top_p)
    texts = [data.detokenize(row) for row in np.asarray(out.tokens)]  # out.tokens [B, T]
    grouped = [texts[i * num_samples:(i + 1) * num_samples] for i in range(len(prompts))]
    return Samples(int(step), prompts, grouped)
