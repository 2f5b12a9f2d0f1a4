"""The 'lm' family: decoder-only language models (``DecoderLM``).

Glossary: B batch, T sequence length, V vocabulary.

Batches are dicts with ``inputs [B, T]``, ``targets [B, T]`` (inputs shifted
by one), ``weights [B, T]`` and, for packed rows, ``segment_ids [B, T]``.
Evaluation reports perplexity and token accuracy on the held-out text and
prints a few samples.
"""

from __future__ import annotations

import jax
import numpy as np

from zoo.data.vocab import BOS_ID, EOS_ID
from zoo.train import data as data_lib
from zoo.train import losses
from zoo.train.families.base import TokenFamily
from zoo.train.state import TrainState
from zoo.transformer import DecoderLM
from zoo.transformer.generate import generate_lm

NUM_SAMPLES = 3  # samples printed per evaluation
SAMPLE_TEMPERATURE = 0.8


class LMFamily(TokenFamily):
    name = "lm"
    modules = (DecoderLM,)

    def data(self, workdir: str) -> data_lib.Bundle:
        return data_lib.lm_data(self.config, workdir)

    def model_fields(self, module, info: dict) -> dict:
        return {"vocab_size": info["tgt"]} if "tgt" in info else {}

    def init_params(self, model, rngs):
        tokens = np.full((2, self.config.data.max_tgt_len), 4, np.int32)  # [2, T] shapes only
        return model.init(rngs, tokens)["params"]

    def loss_fn(self, model):
        smoothing = self.config.optim.label_smoothing

        def loss_fn(params, batch, rng, deterministic):
            segments = {"segment_ids": batch["segment_ids"]} if "segment_ids" in batch else {}
            logits = model.apply({"params": params}, batch["inputs"],
                                 deterministic=deterministic, rngs={"dropout": rng},
                                 **segments).logits  # [B, T, V]
            weights = batch["weights"].astype(np.float32)  # [B, T]
            return losses.token_loss(logits, batch["targets"], weights, smoothing)

        return loss_fn

    def evaluate(self, model, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        result = self.token_metrics(model, state, data)
        samples = self.samples(model, state.params, data, step)  # every process takes part
        for text in samples if jax.process_index() == 0 else ():
            print(f"  sample: {text!r}")
        log.text(step, "eval/samples", "\n\n".join(f"{i}. {t}" for i, t in enumerate(samples, 1)))
        return result

    def samples(self, model, params, data, step: int) -> list[str]:
        """A few samples from <bos> alone, keyed by the step."""
        prompt = np.full((NUM_SAMPLES, 1), BOS_ID, np.int32)  # [B, 1]
        key = jax.random.fold_in(jax.random.PRNGKey(self.config.seed), step)
        out = generate_lm(model, params, prompt, max_new_tokens=self.config.eval.max_decode_len,
                          eos_id=EOS_ID, method="sample", temperature=SAMPLE_TEMPERATURE, key=key)
        return [data.detokenize(row) for row in np.asarray(out.tokens)]
