"""Plain vs attention seq2seq: held-out accuracy against input length.

    python benchmarks/seq2seq_length.py            # the full run (~5 CPU minutes)
    python benchmarks/seq2seq_length.py --quick    # a smoke run in seconds

The motivation for attention (Bahdanau et al., 2015, fig. 2; Luong et al., 2015,
fig. 6): a plain encoder-decoder must squeeze the whole source into one fixed
vector, so its accuracy falls with the input length, while an attention
decoder reads every encoder state and does not. Here both models are the same
one-layer LSTM encoder-decoder (same widths, steps, batch, optimizer and data);
the only difference is Luong 'dot' attention. The task is string reversal over
10 letters with lengths drawn uniformly from [--min-len, --max-len]; the
held-out sources never appear in training. Training is the one core train step
(``zoo.train.state``) on the token cross-entropy (``zoo.train.losses``).
Accuracy is measured on greedy decodes (``zoo.seq2seq.generate``): exact match
(the whole string right) and token accuracy (positions of target + <eos> that
are right).

Writes seq2seq_length.{json,md,png} under --out, stamped with device, versions
and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo.data import reverse_pairs, seq2seq_arrays, task_vocab
from zoo.rnn import Seq2Seq, Seq2SeqConfig
from zoo.seq2seq import generate
from zoo.train.losses import token_loss
from zoo.train.state import TrainState, make_train_step

ALPHABET = "abcdefghij"
MODELS = {
    "plain LSTM": dict(attention=None),
    "attention LSTM (Luong dot)": dict(attention="dot"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--min-len", type=int, default=2)
    p.add_argument("--max-len", type=int, default=30)
    p.add_argument("--eval-per-length", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.hidden, args.max_len, args.eval_per_length = 30, 32, 8, 8
    return args


def held_out_sets(args, vocab):
    """Per source length: (pairs, arrays); every set padded to the same widths."""
    sets = {}
    for n in range(args.min_len, args.max_len + 1):
        pairs = reverse_pairs(args.eval_per_length, seed=1_000_000 + n, length_range=(n, n),
                              alphabet=ALPHABET)
        sets[n] = seq2seq_arrays(pairs, vocab, src_len=args.max_len, tgt_len=args.max_len + 1)
    return sets


def loss_fn_of(model):
    """Mean cross-entropy over the real target tokens (the core step's loss signature)."""

    def loss_fn(params, batch, rng, deterministic):
        logits = model.apply({"params": params}, batch["src"], batch["tgt_in"],
                             src_lengths=batch["src_lengths"], deterministic=deterministic,
                             rngs={"dropout": rng}).logits  # [B, T, V]
        t = batch["tgt_out"].shape[1]
        weights = (jnp.arange(t)[None, :] < batch["tgt_lengths"][:, None]).astype(
            jnp.float32)  # [B, T]
        return token_loss(logits, batch["tgt_out"], weights)

    return loss_fn


def train(name, config, args, vocab, held_sources):
    model = Seq2Seq(config)
    lengths = (args.min_len, args.max_len)

    def batch(i):
        pairs = reverse_pairs(args.batch + 8, seed=args.seed * 1_000_003 + i,
                              length_range=lengths, alphabet=ALPHABET)
        pairs = [p for p in pairs if p[0] not in held_sources][: args.batch]
        return seq2seq_arrays(pairs, vocab, src_len=args.max_len,
                              tgt_len=args.max_len + 1)._asdict()

    first = batch(0)
    params = jax.jit(model.init)(jax.random.key(args.seed), first["src"], first["tgt_in"],
                                 src_lengths=first["src_lengths"])["params"]
    # Gradient clipping as in Sutskever et al. (2014); the same for both models.
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(args.lr))
    state = TrainState.create(params, optimizer, jax.random.PRNGKey(args.seed))
    train_step = make_train_step(loss_fn_of(model), optax.constant_schedule(args.lr))
    # Compiled ahead (the warm-up): calling it would consume the donated state.
    step = jax.jit(train_step, donate_argnums=0).lower(state, first).compile()
    start, losses = time.perf_counter(), []
    for i in range(1, args.steps + 1):
        state, metrics = step(state, batch(i))
        if i % 250 == 0 or i == args.steps:
            losses.append((i, float(metrics["loss"])))
            print(f"{name}: step {i} loss {losses[-1][1]:.4f}", flush=True)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    return model, state.params, {"train_seconds": seconds, "losses": losses, "params": n_params}


def evaluate(model, params, sets):
    """{length: (exact match, token accuracy)} of greedy decodes."""
    result = {}
    for n, arrays in sets.items():
        out = generate(model, params, arrays.src, arrays.src_lengths,
                       max_len=arrays.tgt_out.shape[1])
        tokens, target = np.asarray(out.tokens), arrays.tgt_out  # [B, T]
        real = np.arange(target.shape[1])[None, :] < arrays.tgt_lengths[:, None]  # [B, T]
        exact = np.all(tokens == target, axis=1).mean()
        token_acc = ((tokens == target) & real).sum() / real.sum()
        result[n] = (float(exact), float(token_acc))
    return result


def main(argv=None):
    args = parse_args(argv)
    vocab = task_vocab("reverse", ALPHABET)
    sets = held_out_sets(args, vocab)
    held_sources = {vocab.decode(row) for arrays in sets.values() for row in arrays.src}
    runs = {}
    for name, overrides in MODELS.items():
        config = Seq2SeqConfig(src_vocab_size=vocab.size, tgt_vocab_size=vocab.size,
                               cell="lstm", num_layers=1, embed_dim=args.embed,
                               hidden_dim=args.hidden, **overrides)
        model, params, info = train(name, config, args, vocab, held_sources)
        info["by_length"] = evaluate(model, params, sets)
        info["config"] = {k: str(v) for k, v in vars(config).items()}
        runs[name] = info
        print(name, json.dumps({n: v for n, v in info["by_length"].items()}), flush=True)
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
        **{k: v for k, v in vars(args).items() if k != "out"},
    }
    write_results(args, meta, runs)


def _bucket(by_length, lo, hi, index):
    values = [v[index] for n, v in by_length.items() if lo <= n <= hi]
    return sum(values) / len(values)


def _extra_params(runs):
    plain, attention = (r["params"] for r in runs.values())
    return f"{100 * (attention / plain - 1):.0f}%"


def write_results(args, meta, runs):
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "seq2seq_length_quick" if args.quick else "seq2seq_length")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)

    names = list(runs)
    lengths = np.arange(args.min_len, args.max_len + 1)
    groups = np.array_split(lengths, min(7, len(lengths)))  # ~4 lengths per column
    buckets = [(int(g[0]), int(g[-1])) for g in groups]
    lines = [
        f"# Plain vs attention seq2seq: accuracy against input length ({meta['date']})", "",
        f"Reversal of {args.min_len}-{args.max_len} letters (10-letter alphabet), "
        f"{args.eval_per_length} held-out strings per length, greedy decoding. Both models: "
        f"1-layer LSTM encoder-decoder, embed {args.embed}, hidden {args.hidden}, "
        f"{args.steps} Adam steps (lr {args.lr}, clip 1.0) of batch {args.batch}. "
        f"Device: {meta['device']} ({meta['platform']}, {meta['cpu_count']} cores), "
        f"jax {meta['jax']}, flax {meta['flax']}, optax {meta['optax']}.", "",
        f"The attention model has {_extra_params(runs)} more parameters (Luong's W_c [2H, H]). "
        "Columns average the per-length accuracies.", "",
        "| model | params | train s | " + " | ".join(f"len {lo}-{hi}" for lo, hi in buckets)
        + " | all |",
        "| --- | --- | --- | " + " | ".join("---" for _ in buckets) + " | --- |",
    ]
    for index, metric in ((0, "exact match"), (1, "token acc.")):
        for name in names:
            r = runs[name]
            cells = [f"{_bucket(r['by_length'], lo, hi, index):.3f}" for lo, hi in buckets]
            overall = _bucket(r["by_length"], args.min_len, args.max_len, index)
            lines.append(f"| {name}, {metric} | {r['params']:,} | {r['train_seconds']:.0f} | "
                         + " | ".join(cells) + f" | {overall:.3f} |")
    lines += ["", "Per length (exact match / token accuracy):", "",
              "| length | " + " | ".join(names) + " |",
              "| --- | " + " | ".join("---" for _ in names) + " |"]
    for n in range(args.min_len, args.max_len + 1):
        lines.append(f"| {n} | " + " | ".join(
            "{:.2f} / {:.3f}".format(*runs[name]["by_length"][n]) for name in names) + " |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(stem + ".png", runs, args)


def plot(path, runs, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, (index, label) in zip(axes, ((0, "exact match"), (1, "token accuracy")),
                                  strict=True):
        for name, r in runs.items():
            lengths = sorted(r["by_length"])
            ax.plot(lengths, [r["by_length"][n][index] for n in lengths], marker="o",
                    markersize=3, label=name)
        ax.set_xlabel("source length (characters)")
        ax.set_ylabel(f"held-out {label}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"String reversal, equal budgets ({args.steps} steps x batch {args.batch})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
