"""A byte-level decoder-only LM (preset ``lm_small``) learns English from WordNet glosses.

    .venv/bin/python benchmarks/lm_text.py            # <= 4 CPU minutes
    .venv/bin/python benchmarks/lm_text.py --steps 50 --out /tmp/lm   # smoke run

Data: every synset gloss in the Debian package ``wordnet-base``
(/usr/share/wordnet/data.{noun,verb,adj,adv}; the gloss is the text after
' | '), ~117k definitions and example sentences. Each gloss is a line; its
bytes are the tokens (V = 256, so the model is the preset as registered; the
subword tokenizer comes with the data pipeline). The split is by a hash of the
synset id, so it does not depend on file order: 2% of the glosses validate.

Training: random 128-byte windows of the concatenated training lines, AdamW
with warmup + cosine decay, a fixed number of steps (and a CPU-time cap).
Evaluation: mean next-byte cross-entropy over non-overlapping windows of the
validation text, reported as perplexity next to the unigram baseline (byte
frequencies of the training text, add-one smoothed, on the same targets).
Samples: prompts continued by greedy decoding and by top-p sampling with the
KV cache (``zoo.transformer.generate``), stopping at the newline.
Results go to ``--out``.{md,json}, stamped with device, versions and date.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import sys
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import registry
from zoo.transformer import generate as gen  # also registers the transformer presets

WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
NEWLINE = 10  # the byte that ends every gloss: EOS when sampling
PROMPTS = ("a ", "the act of ", "a small ", "a person who ", "of or relating to ")


def read_glosses(wordnet_dir: str = WORDNET_DIR) -> tuple[list[str], list[str]]:
    """(train, validation) glosses; a gloss validates when its synset id hashes into 2%."""
    paths = [os.path.join(wordnet_dir, name) for name in WORDNET_FILES]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        sys.exit(f"lm_text: WordNet glosses not found ({', '.join(missing)}). They come with "
                 "the Debian package wordnet-base: run `apt-get install wordnet-base`.")
    train, valid = [], []
    for path in paths:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # the licence header
                    continue
                head, sep, gloss = line.partition(" | ")
                text = " ".join(gloss.split())
                if not (sep and text):
                    continue
                synset = f"{os.path.basename(path)}:{head.split(' ', 1)[0]}"
                bucket = hashlib.md5(synset.encode()).digest()[0] * 100 // 256
                (valid if bucket < 2 else train).append(text)
    return train, valid


def to_bytes(lines: list[str]) -> np.ndarray:
    """Lines -> one int32 stream of their bytes, each line ended by a newline."""
    return np.frombuffer("".join(t + "\n" for t in lines).encode("ascii", "replace"),
                         np.uint8).astype(np.int32)


def unigram_nll(train: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log p(byte) of ``targets`` under add-one smoothed byte counts of ``train``."""
    counts = np.bincount(train, minlength=256).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[targets].mean())


def make_train_step(model, optimizer):
    def loss_fn(params, windows):  # windows: [B, W + 1]
        logits = model.apply({"params": params}, windows[:, :-1]).logits  # [B, W, V]
        return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]).mean()

    @jax.jit
    def step(params, opt_state, windows):
        loss, grads = jax.value_and_grad(loss_fn)(params, windows)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def make_eval(model):
    @jax.jit
    def nll_sum(params, windows):  # [B, W + 1] -> summed next-byte NLL over [B, W]
        logits = model.apply({"params": params}, windows[:, :-1]).logits
        return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]).sum()

    return nll_sum


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=360)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--cpu_budget", type=float, default=200.0,
                        help="stop training after this many CPU seconds (all threads) even if "
                        "steps remain; CPU time, unlike wall time, does not depend on what "
                        "else the machine runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "lm_text"))
    args = parser.parse_args(argv)

    train_lines, valid_lines = read_glosses()
    train, valid = to_bytes(train_lines), to_bytes(valid_lines)
    model = registry.build("lm_small")
    w = args.window
    print(f"glosses: {len(train_lines)} train / {len(valid_lines)} validation; "
          f"{train.size:,} / {valid.size:,} bytes")

    rng = np.random.default_rng(args.seed)
    params = model.init(jax.random.key(args.seed), jnp.zeros((1, w), jnp.int32))["params"]
    n_params = sum(x.size for x in jax.tree.leaves(params))
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 5),
                                                  args.steps, end_value=args.lr / 20)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adamw(schedule, b2=0.98, weight_decay=0.01))
    opt_state = optimizer.init(params)
    train_step = make_train_step(model, optimizer)

    start, cpu_start, losses = time.perf_counter(), time.process_time(), []
    for step in range(args.steps):
        starts = rng.integers(0, train.size - w - 1, args.batch)
        windows = np.stack([train[s:s + w + 1] for s in starts])  # [B, W + 1]
        params, opt_state, loss = train_step(params, opt_state, jnp.asarray(windows))
        if step % 50 == 0 or step == args.steps - 1:
            losses.append((step, float(loss)))
            print(f"step {step:4d}  train loss {float(loss):.3f}  "
                  f"({time.perf_counter() - start:.0f}s)", flush=True)
        if time.process_time() - cpu_start > args.cpu_budget and step < args.steps - 1:
            print(f"CPU budget of {args.cpu_budget:.0f}s reached after {step + 1} steps")
            break
    steps_done, train_seconds = step + 1, time.perf_counter() - start
    train_cpu_seconds = time.process_time() - cpu_start

    # Validation: non-overlapping windows; each predicts its last W bytes from the previous.
    count = (valid.size - 1) // w
    windows = np.stack([valid[i * w:i * w + w + 1] for i in range(count)])  # [N, W + 1]
    nll_sum, total = make_eval(model), 0.0
    for i in range(0, count, 64):
        total += float(nll_sum(params, jnp.asarray(windows[i:i + 64])))
    val_nll = total / (count * w)
    base_nll = unigram_nll(train, windows[:, 1:].reshape(-1))

    samples = []
    prompts = [p.encode() for p in PROMPTS]
    prompt = np.zeros((len(prompts), max(map(len, prompts))), np.int32)
    for i, p in enumerate(prompts):
        prompt[i, :len(p)] = np.frombuffer(p, np.uint8)
    lengths = np.array([len(p) for p in prompts], np.int32)
    for method, kwargs in (("greedy", {}),
                           ("sample", dict(key=jax.random.key(1), temperature=0.8, top_p=0.95))):
        out = gen.generate_lm(model, params, prompt, lengths, max_new_tokens=100,
                              eos_id=NEWLINE, method=method, **kwargs)
        for p, tokens, n in zip(PROMPTS, np.asarray(out.tokens), np.asarray(out.lengths),
                                strict=True):
            text = p + bytes(tokens[:n].astype(np.uint8)).decode("ascii", "replace").rstrip("\n")
            samples.append({"method": method, "text": text})
            print(f"[{method}] {text}")

    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "jax": jax.__version__, "flax": flax.__version__, "optax": optax.__version__,
        "model": "lm_small", "params": int(n_params),
        "data": {"source": "wordnet-base glosses", "train_glosses": len(train_lines),
                 "valid_glosses": len(valid_lines), "train_bytes": int(train.size),
                 "valid_bytes": int(valid.size), "vocab": "bytes (256)"},
        "training": {"steps": steps_done, "batch": args.batch, "window": w, "lr": args.lr,
                     "seconds": round(train_seconds, 1),
                     "cpu_seconds": round(train_cpu_seconds, 1), "loss_curve": losses},
        "valid_ppl": float(np.exp(val_nll)), "unigram_ppl": float(np.exp(base_nll)),
        "valid_bits_per_byte": val_nll / np.log(2), "unigram_bits_per_byte": base_nll / np.log(2),
        "samples": samples,
    }
    print(f"validation perplexity {result['valid_ppl']:.2f} vs unigram {result['unigram_ppl']:.2f}"
          f" ({result['valid_bits_per_byte']:.2f} vs {result['unigram_bits_per_byte']:.2f} "
          f"bits/byte)")
    write_results(args.out, result)
    return result


def write_results(out: str, r: dict) -> None:
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(r, f, indent=2)
    t = r["training"]
    lines = [
        f"# Byte-level LM on WordNet glosses ({r['date']})", "",
        f"Device: {r['device']} ({r['platform']}, {r['cpu_count']} cores); python "
        f"{r['python']}, jax {r['jax']}, flax {r['flax']}, optax {r['optax']}.", "",
        f"Model `{r['model']}` ({r['params']:,} params), {t['steps']} steps of "
        f"{t['batch']} x {t['window']} bytes in {t['seconds']:.0f} s "
        f"({t['cpu_seconds']:.0f} CPU s); data: {r['data']['train_glosses']:,} train / "
        f"{r['data']['valid_glosses']:,} validation "
        f"glosses ({r['data']['valid_bytes']:,} validation bytes).", "",
        "| model | validation perplexity | bits / byte |", "| --- | --- | --- |",
        f"| unigram (byte frequencies) | {r['unigram_ppl']:.2f} | "
        f"{r['unigram_bits_per_byte']:.2f} |",
        f"| lm_small | {r['valid_ppl']:.2f} | {r['valid_bits_per_byte']:.2f} |", "",
        "Samples (prompt + continuation up to the newline):", "",
    ]
    lines += [f"- {s['method']}: `{s['text']}`" for s in r["samples"]]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
