"""The 'seq2seq' family: every encoder–decoder (RNN ``Seq2Seq``, Transformer ``EncoderDecoder``).

Glossary: B batch, S source length, T target length, V vocabulary.

Batches are dicts with ``src [B, S]``, ``src_lengths [B]``, ``tgt_in [B, T]``
(<bos> y1 .. yn), ``tgt_out [B, T]`` (y1 .. yn <eos>) and ``tgt_lengths [B]``.
Both model classes share the interface of ``zoo.seq2seq``, so nothing here
depends on which one is trained. Evaluation reports the loss-based metrics,
decodes the held-out sources for real (greedy or beam) and scores exact match
(generated tasks) or sacreBLEU (translation), and draws the attention of the
model over its own output: the RNNs' one alignment, or each head of the
Transformer's last encoder-decoder attention.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from zoo import seq2seq
from zoo.attention.masks import padding_mask
from zoo.data.vocab import BOS_ID, EOS_ID
from zoo.rnn import Seq2Seq
from zoo.train import data as data_lib
from zoo.train import losses, plots
from zoo.train.families.base import TokenFamily
from zoo.train.state import TrainState
from zoo.transformer import EncoderDecoder, cross_attention_weights

NUM_PRINTED = 3  # decoded examples printed per evaluation


@functools.lru_cache(maxsize=8)
def _attention(model):
    """(params, src, tgt_in, src_lengths) -> what to draw, jitted: an RNN's one alignment
    [B, T, S], or every head of a Transformer's last decoder layer's encoder-decoder
    attention [B, N, T, S]."""
    if isinstance(model, EncoderDecoder):
        return jax.jit(lambda params, src, tgt_in, src_lengths: cross_attention_weights(
            model, params, src, tgt_in, src_lengths=src_lengths)[-1])
    return jax.jit(lambda params, src, tgt_in, src_lengths: model.apply(
        {"params": params}, src, tgt_in, src_lengths=src_lengths).attention)


class Seq2SeqFamily(TokenFamily):
    name = "seq2seq"
    modules = (Seq2Seq, EncoderDecoder)

    def data(self, workdir: str) -> data_lib.Bundle:
        return data_lib.seq2seq_data(self.config, workdir)

    def model_fields(self, module, info: dict) -> dict:
        return module.vocab_fields(info["src"], info["tgt"]) if "src" in info else {}

    def init_params(self, model, rngs):
        s, t = self.config.data.max_src_len, self.config.data.max_tgt_len
        src, tgt_in = np.full((2, s), 4, np.int32), np.full((2, t), 4, np.int32)  # shapes only
        return model.init(rngs, src, tgt_in, src_lengths=np.asarray([s, 1], np.int32))["params"]

    def loss_fn(self, model):
        smoothing = self.config.optim.label_smoothing

        def loss_fn(params, batch, rng, deterministic):
            logits = model.apply({"params": params}, batch["src"], batch["tgt_in"],
                                 src_lengths=batch["src_lengths"], deterministic=deterministic,
                                 rngs={"dropout": rng}).logits  # [B, T, V]
            weights = padding_mask(batch["tgt_lengths"], batch["tgt_out"].shape[1])  # [B, T]
            return losses.token_loss(logits, batch["tgt_out"], weights.astype(jnp.float32),
                                     smoothing)

        return loss_fn

    def decode(self, model, params, src, src_lengths) -> np.ndarray:
        """The configured search on src [B, S] -> tokens [B, T] (the best hypothesis)."""
        ev = self.config.eval
        options = ({"beam_size": ev.beam_size, "length_penalty": ev.length_penalty}
                   if ev.method == "beam" else {})
        out = seq2seq.generate(model, params, src, src_lengths, method=ev.method,
                               max_len=ev.max_decode_len, bos_id=BOS_ID, eos_id=EOS_ID,
                               **options)
        return np.asarray(out.best().tokens if ev.method == "beam" else out.tokens)

    def evaluate(self, model, state: TrainState, data, *, workdir: str, step: int,
                 log) -> dict:
        result = self.token_metrics(model, state, data)

        hypotheses, references, sources, first = [], [], [], None
        for src, src_lengths, refs, src_texts in data.eval_decode_batches(
                self.config.eval.num_examples):
            tokens = self.decode(model, state.params, src, src_lengths)  # [B, T]
            hypotheses += [data.detokenize(row) for row in tokens]
            references += refs
            sources += src_texts
            if first is None:
                first = (src, src_lengths, tokens)
        main = jax.process_index() == 0  # every process decodes; one prints and draws
        if hypotheses:
            result.update(data.score(hypotheses, references, sources))
            shown = range(min(NUM_PRINTED, len(hypotheses)) if main else 0)
            for i in shown:
                print(f"  src: {sources[i]!r}\n  ref: {references[i]!r}\n"
                      f"  hyp: {hypotheses[i]!r}")
            log.text(step, "eval/examples", "\n\n".join(
                f"**source** {sources[i]}  \n**reference** {references[i]}  \n"
                f"**hypothesis** {hypotheses[i]}" for i in shown))
        if self.config.eval.num_heatmaps and first is not None:
            paths = self._heatmaps(model, state.params, data, first, workdir, step, draw=main)
            for i, path in enumerate(paths):
                log.image_file(step, f"attention/example{i}", path)
        return result

    def _heatmaps(self, model, params, data, first, workdir: str, step: int, *, draw: bool):
        """Attention of the model over its own decoded outputs, as in Bahdanau et al. Fig. 3
        (for a Transformer: each head of the last layer's encoder-decoder attention).

        Every process computes the weights (the parameters may span all of them);
        only a process with ``draw`` writes the pictures. Returns their paths."""
        src, src_lengths, tokens = first
        # The longest sources of the batch make the most telling pictures.
        count = min(self.config.eval.num_heatmaps, len(src))
        pick = np.argsort(-np.asarray(src_lengths), kind="stable")[:count]
        drawn = self.alignments(model, params, data, np.asarray(src)[pick],
                                np.asarray(src_lengths)[pick], np.asarray(tokens)[pick])
        if drawn is None or not draw:
            return []
        folder = os.path.join(workdir, "attention")
        os.makedirs(folder, exist_ok=True)
        return [plots.plot_attention(os.path.join(folder, f"example{i}.png"), weights,
                                     src_tokens, tgt_tokens, title=f"step {step}")
                for i, (src_tokens, tgt_tokens, weights) in enumerate(drawn)]

    @staticmethod
    def alignments(model, params, data, src, src_lengths, tokens):
        """The attention of the model over its own outputs, one entry a sentence, or None for
        a model without attention.

        src [B, S], src_lengths [B], tokens [B, T] (decoded outputs, <eos>-terminated or
        full) -> [(source pieces, output pieces up to <eos>, weights)], the weights
        [T', S'] for an RNN's one alignment or [N, T', S'] for each head of a
        Transformer's last encoder-decoder attention, cut to the real pieces.
        """
        tgt_in = np.concatenate([np.full((len(src), 1), BOS_ID, np.int32),
                                 np.asarray(tokens)[:, :-1]], axis=1)  # [B, T]
        weights = _attention(model)(params, src, tgt_in, src_lengths)  # [B, (N,) T, S] or None
        if weights is None:
            return None
        weights = np.asarray(weights)
        out = []
        for i in range(len(src)):
            src_tokens = [data.src_tokenizer.decode([int(t)]) or "·"
                          for t in src[i, : src_lengths[i]]]
            out_ids = [int(t) for t in tokens[i]]
            end = out_ids.index(EOS_ID) + 1 if EOS_ID in out_ids else len(out_ids)
            # A piece that decodes to nothing alone (<eos>, or sentencepiece's bare word
            # boundary) still needs a label: its own name, or the source side's '·'.
            tgt_tokens = [data.tokenizer.decode([t]) or ("</s>" if t == EOS_ID else "·")
                          for t in out_ids[:end]]
            out.append((src_tokens, tgt_tokens,
                         weights[i][..., :end, : len(src_tokens)]))
        return out
