"""Decoding benchmark: greedy tokens/s with the KV cache against recomputing the prefix.

    python benchmarks/decode.py            # the full sweep (make bench)
    python benchmarks/decode.py --quick    # a tiny sweep in seconds (run by the tests)

Model: a DecoderLM preset (--model, default lm_small) with random weights;
batch --batch. Two ways to produce N new tokens after a P-token prompt:

  cache    ``zoo.transformer.generate.generate_lm``: one prefill of the prompt,
           then one token per step against the KV cache (a ``lax.while_loop``).
  no cache one jitted ``lax.fori_loop`` that, at every step, runs the whole
           model over a [B, P + N] buffer (the prompt and the tokens so far,
           zero-padded on the right; causal attention makes the padding inert)
           and takes the argmax at the last real position: O(N (P + N)) tokens
           of work instead of O(P + N).

EOS is set to an id the model cannot emit, so both loops run all N steps; the
two must produce the same tokens (checked at the smallest size before timing).
Time is end to end (prefill included), median of --repeats calls after a
warm-up call that compiles. Lengths sweep prompt P with N fixed and N with P
fixed; the no-cache loop is skipped where N x (P + N) exceeds --max-recompute
(it would run for minutes). Writes decode.{json,md,png} under --out.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics

import common
import jax
import jax.numpy as jnp
import numpy as np

from zoo import registry
from zoo.transformer.generate import generate_lm


@functools.cache
def recompute_loop(model, prompt_len: int, new_tokens: int):
    """A jitted greedy loop without a cache: (params, prompt [B, P]) -> tokens [B, N]."""

    def run(params, prompt):
        b = prompt.shape[0]
        buffer = jnp.zeros((b, prompt_len + new_tokens), jnp.int32)  # [B, P + N]
        buffer = buffer.at[:, :prompt_len].set(prompt)

        def step(i, buffer):
            logits = model.apply({"params": params}, buffer).logits  # [B, P + N, V]
            last = jax.lax.dynamic_index_in_dim(logits, prompt_len - 1 + i, axis=1,
                                                keepdims=False)  # [B, V]
            chosen = jnp.argmax(last, axis=-1).astype(jnp.int32)  # [B]
            return jax.lax.dynamic_update_index_in_dim(buffer, chosen, prompt_len + i, axis=1)

        buffer = jax.lax.fori_loop(0, new_tokens, step, buffer)
        return buffer[:, prompt_len:]  # [B, N]

    return jax.jit(run)


def cached(model, params, prompt, new_tokens):
    eos = model.config.vocab_size  # never emitted: every row runs all N steps
    return generate_lm(model, params, prompt, max_new_tokens=new_tokens, eos_id=eos).tokens


def setup(args, prompt_len: int, new_tokens: int):
    config = registry.make_config(args.model, max_len=max(registry.get(args.model).config.max_len,
                                                          prompt_len + new_tokens))
    model = registry.get(args.model).module(config=config)
    ks = jax.random.split(jax.random.key(0), 2)
    prompt = jax.random.randint(ks[0], (args.batch, prompt_len), 1, config.vocab_size,
                                jnp.int32)  # [B, P]
    params = jax.jit(model.init)(ks[1], prompt[:, :1])["params"]
    return model, params, prompt


def check_same_tokens(args) -> None:
    """The cache must not change what greedy decoding produces."""
    model, params, prompt = setup(args, 8, 8)
    want = np.asarray(recompute_loop(model, 8, 8)(params, prompt))
    got = np.asarray(cached(model, params, prompt, 8))
    if not np.array_equal(got, want):
        raise AssertionError(f"cached decoding differs from recomputation:\n{got}\n{want}")


def measure(args, prompt_len: int, new_tokens: int) -> dict:
    model, params, prompt = setup(args, prompt_len, new_tokens)
    row = dict(P=prompt_len, N=new_tokens, B=args.batch)
    contenders = {"cache": lambda: jax.block_until_ready(
        cached(model, params, prompt, new_tokens))}
    if new_tokens * (prompt_len + new_tokens) <= args.max_recompute:
        loop = recompute_loop(model, prompt_len, new_tokens)
        contenders["no_cache"] = lambda: jax.block_until_ready(loop(params, prompt))
    else:
        row["no_cache"] = {"skipped": f"N x (P + N) > {args.max_recompute}"}
    for name, fn in contenders.items():
        times = common.time_calls(fn, args.repeats, warmup=1)
        row[name] = {**common.spread(times),
                     "tokens_per_s": args.batch * new_tokens / statistics.median(times)}
    if "tokens_per_s" in row["no_cache"]:
        row["speedup"] = row["cache"]["tokens_per_s"] / row["no_cache"]["tokens_per_s"]
    print(f"decode P={prompt_len} N={new_tokens}: cache "
          f"{row['cache']['tokens_per_s']:,.0f} tokens/s, speedup {row.get('speedup')}",
          flush=True)
    return row


def markdown(meta, rows) -> list[str]:
    md = [f"# Decoding throughput ({meta['date']})", "", common.stamp_line(meta), "",
          f"Greedy decoding of N new tokens after a P-token prompt, {meta['model']} with random "
          f"weights, batch {meta['batch']}; time end to end (prefill included), median of "
          f"{meta['repeats']} calls after a compiling warm-up.", ""]
    body = []
    for r in rows:
        nc = r["no_cache"]
        body.append([r["P"], r["N"], f"{1e3 * r['cache']['median_s']:,.1f}",
                     f"{r['cache']['tokens_per_s']:,.0f}",
                     f"{1e3 * nc['median_s']:,.1f}" if "median_s" in nc else "skipped",
                     f"{nc['tokens_per_s']:,.0f}" if "median_s" in nc else nc["skipped"],
                     f"{r['speedup']:.1f}x" if "speedup" in r else ""])
    return md + common.table(["P", "N", "cache ms", "cache tokens/s", "no-cache ms",
                              "no-cache tokens/s", "speedup"], body)


def plot(path, rows, fixed_p, fixed_n):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    sweeps = ((axes[0], "P", "N", fixed_n), (axes[1], "N", "P", fixed_p))
    for ax, x, other, value in sweeps:
        for name in ("cache", "no_cache"):
            pts = sorted((r[x], r[name]["tokens_per_s"]) for r in rows
                         if r[other] == value and "tokens_per_s" in r[name])
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name.replace("_", " "))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(xlabel=f"{x} ({other} = {value})", ylabel="new tokens/s")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lm_small")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt-lengths", default="16,64,256,1024",
                   help="P values, each with N = --fixed-new")
    p.add_argument("--new-lengths", default="16,64,256,1024",
                   help="N values, each with P = --fixed-prompt")
    p.add_argument("--fixed-prompt", type=int, default=16)
    p.add_argument("--fixed-new", type=int, default=64)
    p.add_argument("--max-recompute", type=int, default=300_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=common.RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.model, args.batch, args.repeats = "lm_tiny", 2, 1
        args.prompt_lengths, args.new_lengths = "4,16", "4,16"
        args.fixed_prompt, args.fixed_new = 4, 4
    meta = {**common.environment(), "model": args.model, "batch": args.batch,
            "repeats": args.repeats, "args": vars(args)}
    check_same_tokens(args)
    cells = [(int(x), args.fixed_new) for x in args.prompt_lengths.split(",")]
    cells += [(args.fixed_prompt, int(x)) for x in args.new_lengths.split(",")]
    rows = [measure(args, prompt_len, n) for prompt_len, n in dict.fromkeys(cells)]
    stem = os.path.join(args.out, "decode_quick" if args.quick else "decode")
    common.write(stem, meta, dict(rows=rows), markdown(meta, rows))
    plot(stem + ".png", rows, args.fixed_prompt, args.fixed_new)


if __name__ == "__main__":
    main()
