"""Translation benchmark: beam-search sentences/s, zoo against Hugging Face MarianMT.

    python benchmarks/translate.py            # the full run (make bench)
    python benchmarks/translate.py --quick    # a tiny run in seconds (run by the tests)

One model, two implementations with the same weights: a MarianMT (transformers,
torch) of the small recipe's size -- d_model 256, 3 + 3 layers, 4 heads, FFN
1024, an 8,000-token vocabulary -- initialised at random in this process,
saved with ``save_pretrained`` and loaded into zoo by ``zoo.interop.hf``
(nothing is downloaded). Both translate the same --sentences random source
sentences of 8-40 tokens (right-padded into one batch) with beam search of
width --beam, exactly --new tokens each: transformers' ``generate`` with
``min_new_tokens = max_new_tokens`` and zoo's ``seq2seq.generate`` with an EOS
id the model never emits, so both do the same number of decoder steps whatever
the random weights prefer. Timed end to end (the encoder included), zoo's call
compiled once beforehand; the two alternate for --rounds rounds of --repeats
calls, and the table gives medians and their ratio. Writes
translate.{json,md} under --out.

zoo decodes with its key/value caches: the decoder's own keys and values grow
by one position a step, and every layer's projection of the encoder output is
computed once per sentence (MultiHeadAttention's cross-attention cache) rather
than at every step; beam search reorders only what differs between beams (the
encoder output and its cached projections are left in place).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import common
import jax
import numpy as np
from common import torch

from zoo import seq2seq
from zoo.interop import hf

EOS = 0  # Marian's </s> is the first token, <pad> the last (args.vocab - 1)


def marian(args):
    """(transformers model, zoo HFCheckpoint) with the same random weights."""
    import transformers

    torch.manual_seed(0)
    config = transformers.MarianConfig(
        vocab_size=args.vocab, d_model=args.d_model, encoder_layers=args.layers,
        decoder_layers=args.layers, encoder_attention_heads=args.heads,
        decoder_attention_heads=args.heads, encoder_ffn_dim=args.ffn, decoder_ffn_dim=args.ffn,
        max_position_embeddings=256, pad_token_id=args.vocab - 1,
        decoder_start_token_id=args.vocab - 1, eos_token_id=EOS, forced_eos_token_id=None)
    reference = transformers.MarianMTModel(config).eval()
    with tempfile.TemporaryDirectory() as path:
        reference.save_pretrained(path)
        ours = hf.load_hf(path)
    return reference, ours


def sources(args) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded random sentences [B, S] (each ending in </s>) and their lengths [B]."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, args.max_src + 1, args.sentences)
    src = np.full((args.sentences, args.max_src), args.vocab - 1, np.int64)
    for i, n in enumerate(lengths):
        src[i, :n - 1] = rng.integers(1, args.vocab - 1, n - 1)
        src[i, n - 1] = EOS
    return src, lengths


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--new", type=int, default=32, help="tokens generated per sentence")
    p.add_argument("--max-src", type=int, default=40)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=common.RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.sentences, args.new, args.max_src, args.vocab = 4, 4, 10, 64
        args.d_model, args.layers, args.heads, args.ffn = 16, 1, 2, 32
        args.repeats, args.rounds = 1, 1
    if torch is None:
        raise SystemExit(common.TORCH_HINT)
    meta = {**common.environment(), "args": vars(args)}
    reference, ours = marian(args)
    src, lengths = sources(args)
    ids = ours.decode_ids  # zoo's spelling of Marian's start, end and pad ids
    never = args.vocab  # an id past the vocabulary: no row ends early
    src_j, lengths_j = jax.numpy.asarray(src, jax.numpy.int32), jax.numpy.asarray(lengths)
    input_ids = torch.tensor(src)
    mask = torch.tensor(np.arange(args.max_src)[None] < lengths[:, None])

    def zoo_call():  # compiled on the first call (the warm-up), one program after
        out = seq2seq.generate(ours.model, ours.params, src_j, lengths_j, max_len=args.new,
                               method="beam", beam_size=args.beam, length_penalty=1.0,
                               bos_id=ids["bos_id"], eos_id=never, pad_id=ids["pad_id"])
        return jax.block_until_ready(out.tokens)

    def hf_call():
        with torch.no_grad():
            return reference.generate(input_ids=input_ids, attention_mask=mask,
                                      num_beams=args.beam, max_new_tokens=args.new,
                                      min_new_tokens=args.new, length_penalty=1.0,
                                      early_stopping=False, do_sample=False)

    shapes = {"zoo": tuple(zoo_call().shape), "transformers": tuple(hf_call().shape)}
    assert shapes == {"zoo": (args.sentences, args.beam, args.new),
                      "transformers": (args.sentences, 1 + args.new)}, shapes
    times = common.interleaved({"zoo": zoo_call, "transformers": hf_call}, args.rounds,
                               args.repeats, warmup=1)
    rows = []
    for name, t in times.items():
        rows.append(dict(implementation=name, **common.spread(t),
                         sentences_per_s=args.sentences / statistics.median(t)))
        print(f"{name}: {rows[-1]['sentences_per_s']:.1f} sentences/s", flush=True)
    ratio = rows[0]["sentences_per_s"] / rows[1]["sentences_per_s"]
    md = [f"# Beam-search translation ({meta['date']})", "", common.stamp_line(meta), "",
          f"{args.sentences} random sentences of 8-{args.max_src} tokens in one batch, beam "
          f"{args.beam}, exactly {args.new} new tokens each; a MarianMT of d_model "
          f"{args.d_model}, {args.layers} + {args.layers} layers, {args.heads} heads, FFN "
          f"{args.ffn}, vocabulary {args.vocab}, random weights shared through "
          f"zoo.interop.hf. Median of {args.rounds} alternated rounds of {args.repeats} calls "
          "after a warm-up call each (zoo's compiles).", ""]
    md += common.table(["implementation", "median s", "sentences/s"],
                       [[r["implementation"], f"{r['median_s']:.3f}",
                         f"{r['sentences_per_s']:.1f}"] for r in rows])
    md += ["", f"zoo / transformers: **{ratio:.2f}x**"]
    stem = os.path.join(args.out, "translate_quick" if args.quick else "translate")
    common.write(stem, meta, dict(rows=rows, ratio=ratio), md)


if __name__ == "__main__":
    main()
