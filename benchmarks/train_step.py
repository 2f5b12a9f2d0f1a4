"""Training-step benchmark: tokens/s and compile time of every registered model, and peers.

    python benchmarks/train_step.py            # the full sweep (make bench)
    python benchmarks/train_step.py --quick    # a tiny sweep in seconds (run by the tests)

Four parts, each one Adam step (optax here, torch.optim.Adam for torch) on
random tokens, timed as the median of steps after warm-up:

1. registry: every registered preset at its own width, batch --batch with
   --src-len + --tgt-len tokens (the paper-size Transformers at --paper-batch
   and --paper-len, since one step of transformer_big at full batch takes a
   minute on two cores). Transformers also run scan vs unrolled layers, remat
   on/off and float32 vs bfloat16; RNNs float32 vs bfloat16. The generative
   models (VAE, GAN) count examples, not tokens; their step is the training
   core's (``zoo.train.state.make_train_step`` on the family's phases: the
   VAE's loss, the GAN's discriminator then generator update), as train.py runs it.
2. transformer: zoo EncoderDecoder against torch.nn.Transformer at d=256,
   3+3 layers, 4 heads, F=1024, V=1024, batch 32, 64+64 tokens, no dropout.
3. rnn: zoo Luong-attention LSTM seq2seq (1 layer, E=H=512, V=1024, B=64,
   S=T=32) against torch, without input feeding (nn.LSTM over the whole target,
   then batched attention) and with it (an nn.LSTMCell loop).
4. depth: compile time and step time of a decoder-only LM (lm_small's width)
   with 2..24 layers, scanned against unrolled.

Tokens per step are B x (S + T) for encoder-decoders (every token the step
reads) and B x T for the LM; the same count for the zoo model and its peer.
Peers are timed in alternating rounds with the zoo model so the ratios survive
load from other processes. Writes train_step.{json,md,png} under --out.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import common
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from common import torch

from zoo import registry
from zoo.train import config as config_lib
from zoo.train import families
from zoo.train.state import make_train_step

LR = 1e-3
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
PAPER_SIZES = ("transformer_base", "transformer_big")


# ----------------------------------------------------------------------------- JAX steps


def cross_entropy(logits, targets):
    """logits [B, T, V] float32, targets [B, T] -> mean over tokens."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def compile_step(loss_fn: Callable, params: Any, batch: Any) -> tuple[Callable, float]:
    """A jitted Adam step on ``loss_fn(params, batch)``; returns (run one step, compile s).

    The step donates params and optimizer state, as a training loop would.
    """
    tx = optax.adam(LR)
    opt_state = tx.init(params)

    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, batch).compile()
    compile_s = time.perf_counter() - start
    state = [params, opt_state]

    def run():
        params, opt_state, loss = compiled(state[0], state[1], batch)
        jax.block_until_ready((params, opt_state, loss))
        state[:] = [params, opt_state]

    run.compiled = compiled  # benchmarks/profiles.py reads its HLO
    return run, compile_s


def random_tokens(key, shape, vocab):
    return jax.random.randint(key, shape, 1, vocab, jnp.int32)


def seq2seq_step(name: str, config, b: int, s: int, t: int):
    """RNN Seq2Seq: (run, compile s, tokens per step)."""
    model = registry.get(name).module(config=config)
    ks = jax.random.split(jax.random.key(0), 3)
    src = random_tokens(ks[0], (b, s), config.src_vocab_size)  # [B, S]
    tgt = random_tokens(ks[1], (b, t + 1), config.tgt_vocab_size)  # [B, T + 1]
    batch = (src, jnp.full((b,), s, jnp.int32), tgt[:, :-1], tgt[:, 1:])
    params = nn.meta.unbox(jax.jit(model.init)(ks[2], src, batch[2], src_lengths=batch[1]))

    def loss_fn(params, batch):
        src, src_lengths, tgt_in, tgt_out = batch
        logits = model.apply(params, src, tgt_in, src_lengths=src_lengths).logits
        return cross_entropy(logits, tgt_out)

    return (*compile_step(loss_fn, params, batch), b * (s + t))


def encoder_decoder_step(name: str, config, b: int, s: int, t: int):
    model = registry.get(name).module(config=config)
    ks = jax.random.split(jax.random.key(0), 3)
    src = random_tokens(ks[0], (b, s), config.source_vocab_size)  # [B, S]
    tgt = random_tokens(ks[1], (b, t + 1), config.vocab_size)  # [B, T + 1]
    batch = (src, tgt[:, :-1], tgt[:, 1:])
    params = nn.meta.unbox(jax.jit(model.init)(ks[2], src, batch[1]))

    def loss_fn(params, batch):
        src, tgt_in, tgt_out = batch
        return cross_entropy(model.apply(params, src, tgt_in).logits, tgt_out)

    return (*compile_step(loss_fn, params, batch), b * (s + t))


def lm_step(name: str, config, b: int, s: int, t: int):
    model = registry.get(name).module(config=config)
    ks = jax.random.split(jax.random.key(0), 2)
    tokens = random_tokens(ks[0], (b, s + t + 1), config.vocab_size)  # [B, S + T + 1]
    batch = (tokens[:, :-1], tokens[:, 1:])
    params = nn.meta.unbox(jax.jit(model.init)(ks[1], batch[0]))

    def loss_fn(params, batch):
        return cross_entropy(model.apply(params, batch[0]).logits, batch[1])

    return (*compile_step(loss_fn, params, batch), b * (s + t))


def _images(config, b):
    return jax.random.bernoulli(jax.random.key(1), 0.5, (b, *config.data_shape)).astype(
        jnp.float32)  # [B, ...] in {0, 1}, valid for both likelihoods and tanh outputs


def _family_batch(kind: str, config, b: int) -> dict:
    """A batch as the data pipeline feeds family ``kind``: float32 'x' [B, ...] (grey
    levels 0..255 for the 8-bit likelihoods, points for the EBM), int32 'label' [B]."""
    key = jax.random.key(1)
    if kind in ("pixelcnn", "flow"):
        return {"x": jax.random.randint(key, (b, *config.data_shape), 0, 256).astype(
            jnp.float32)}
    if kind == "ebm":
        return {"x": jax.random.normal(key, (b, *config.data_shape))}  # [B, 2]
    batch = {"x": _images(config, b)}
    if kind == "classifier":
        batch["label"] = jax.random.randint(key, (b,), 0, config.num_classes)  # [B]
    return batch


def family_step(kind: str, name: str, config, b: int):
    """The training core's step of family ``kind`` ('vae', 'gan', ...) on preset ``name``:
    (run, compile s, examples per step). State in, state out, donated, as the loop runs it."""
    run_config = config_lib.base_config()  # the family reads only its model's name
    run_config.family = kind
    run_config.model = ml_collections.ConfigDict({"name": name})
    if kind == "diffusion":  # the family checks its (unused here) sampler against T
        run_config.eval.sample_steps = min(run_config.eval.sample_steps, config.timesteps)
    family = families.make(config_lib.validate(run_config))
    model = registry.get(name).module(config=config)
    state = jax.jit(lambda rng: family.init_state(model, optax.adam(LR), rng))(
        jax.random.PRNGKey(0))
    step = make_train_step(family.phases(model), optax.constant_schedule(LR))
    batch = _family_batch(kind, config, b)
    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
    compile_s = time.perf_counter() - start
    box = [state]

    def run():
        box[0], metrics = compiled(box[0], batch)
        jax.block_until_ready((box[0], metrics))

    return run, compile_s, b


def _family(kind: str) -> Callable:
    """A step builder for the training core's family ``kind``."""
    return lambda name, config, b, s, t: family_step(kind, name, config, b)


# module class name -> (step builder, unit of throughput); every registered module class
# has a row (tests/benchmarks/test_train_step_bench.py checks).
FAMILIES: dict[str, tuple[Callable, str]] = {
    "Seq2Seq": (seq2seq_step, "tokens"),
    "EncoderDecoder": (encoder_decoder_step, "tokens"),
    "DecoderLM": (lm_step, "tokens"),
    "VAE": (_family("vae"), "examples"),
    "GAN": (_family("gan"), "examples"),
    "Classifier": (_family("classifier"), "examples"),
    "PixelCNN": (_family("pixelcnn"), "examples"),
    "RealNVP": (_family("flow"), "examples"),
    "DDPM": (_family("diffusion"), "examples"),
    "EBM": (_family("ebm"), "examples"),
}


def variants(family: str, quick: bool) -> list[dict]:
    """Config overrides to time for one preset: the default first."""
    if family in ("EncoderDecoder", "DecoderLM"):
        grid = [dict(scan_layers=scan, remat=remat, dtype=d)
                for d in ("float32", "bfloat16") for scan in (False, True)
                for remat in ("none", "full")]
        return grid[:1] if quick else grid
    if family == "Seq2Seq":
        return [dict(dtype="float32")] if quick else [dict(dtype=d) for d in DTYPES]
    return [{}]


def registry_rows(args) -> list[dict]:
    rows = []
    names = args.models.split(",") if args.models else registry.names()
    for name in names:
        family = registry.get(name).module.__name__
        build, unit = FAMILIES[family]
        paper = name in PAPER_SIZES
        b = args.paper_batch if paper else args.batch
        s, t = (args.paper_len, args.paper_len) if paper else (args.src_len, args.tgt_len)
        for overrides in variants(family, args.quick) if not paper else [{}]:
            over = {k: DTYPES.get(v, v) if k == "dtype" else v for k, v in overrides.items()}
            if family == "DecoderLM":  # rotary LMs have no table; others must fit max_len
                over["max_len"] = max(registry.get(name).config.max_len, s + t)
            elif family == "EncoderDecoder":
                over["max_len"] = max(registry.get(name).config.max_len, s, t)
            config = registry.make_config(name, **over)
            run, compile_s, per_step = build(name, config, b, s, t)
            times = common.time_calls(run, args.repeats, warmup=2)
            med = statistics.median(times)
            rows.append(dict(model=name, family=family, variant=overrides, B=b,
                             S=s if unit == "tokens" else None,
                             T=t if unit == "tokens" else None, unit=unit,
                             compile_s=compile_s, **common.spread(times),
                             per_s=per_step / med))
            print(f"registry {name} {overrides}: {per_step / med:,.0f} {unit}/s, "
                  f"compile {compile_s:.1f} s", flush=True)
    return rows


# ----------------------------------------------------------------------------- torch peers


def sinusoids(length: int, d: int) -> np.ndarray:
    """[length, d] sinusoidal positions (sin on even, cos on odd channels)."""
    pos = np.arange(length)[:, None]
    rates = np.exp(-math.log(10000.0) * np.arange(0, d, 2) / d)[None, :]
    table = np.zeros((length, d), np.float32)
    table[:, 0::2], table[:, 1::2] = np.sin(pos * rates), np.cos(pos * rates)
    return table


def torch_step(model, batch: tuple) -> Callable[[], None]:
    """One torch.optim.Adam step on cross-entropy of model(*inputs) against the targets."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    *inputs, targets = batch

    def run():
        opt.zero_grad(set_to_none=True)
        logits = model(*inputs)  # [B, T, V]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        opt.step()

    return run


def torch_transformer(vocab: int, d: int, heads: int, ff: int, layers: int, max_len: int):
    class Model(torch.nn.Module):
        """Shared, tied embedding + sinusoids + nn.Transformer (post-LN, ReLU)."""

        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, d)
            self.register_buffer("pos", torch.from_numpy(sinusoids(max_len, d)))
            self.core = torch.nn.Transformer(d, heads, layers, layers, ff, dropout=0.0,
                                             batch_first=True)

        def forward(self, src, tgt):  # src [B, S], tgt [B, T] -> logits [B, T, V]
            s, t = src.shape[1], tgt.shape[1]
            x = self.embed(src) * d**0.5 + self.pos[:s]
            y = self.embed(tgt) * d**0.5 + self.pos[:t]
            causal = torch.nn.Transformer.generate_square_subsequent_mask(t)
            h = self.core(x, y, tgt_mask=causal, tgt_is_causal=True)
            return h @ self.embed.weight.T

    return Model()


def torch_luong(vocab: int, e: int, h: int, feeding: bool):
    class Model(torch.nn.Module):
        """LSTM encoder, LSTM decoder started from its final state, Luong 'general' score."""

        def __init__(self):
            super().__init__()
            self.src_embed = torch.nn.Embedding(vocab, e)
            self.tgt_embed = torch.nn.Embedding(vocab, e)
            self.encoder = torch.nn.LSTM(e, h, batch_first=True)
            if feeding:
                self.cell = torch.nn.LSTMCell(e + h, h)
            else:
                self.decoder = torch.nn.LSTM(e, h, batch_first=True)
            self.w_a = torch.nn.Linear(h, h, bias=False)
            self.w_c = torch.nn.Linear(2 * h, h, bias=False)
            self.out = torch.nn.Linear(h, vocab)

        def attend(self, q, memory):  # q [B, T, H], memory [B, S, H] -> [B, T, H]
            weights = torch.softmax(torch.bmm(self.w_a(q), memory.transpose(1, 2)), dim=-1)
            context = torch.bmm(weights, memory)  # [B, T, H]
            return torch.tanh(self.w_c(torch.cat([context, q], dim=-1)))

        def forward(self, src, tgt):  # src [B, S], tgt [B, T] -> logits [B, T, V]
            memory, (h0, c0) = self.encoder(self.src_embed(src))  # [B, S, H]
            y = self.tgt_embed(tgt)  # [B, T, E]
            if not feeding:
                states, _ = self.decoder(y, (h0, c0))  # [B, T, H]
                return self.out(self.attend(states, memory))
            hc, feed, outs = (h0[0], c0[0]), torch.zeros_like(h0[0]), []
            for i in range(y.shape[1]):
                hc = self.cell(torch.cat([y[:, i], feed], dim=-1), hc)
                feed = self.attend(hc[0][:, None], memory)[:, 0]  # [B, H]
                outs.append(feed)
            return self.out(torch.stack(outs, dim=1))

    return Model()


def torch_batch(b: int, s: int, t: int, vocab: int):
    g = torch.Generator().manual_seed(0)
    src = torch.randint(1, vocab, (b, s), generator=g)
    tgt = torch.randint(1, vocab, (b, t + 1), generator=g)
    return src, tgt[:, :-1], tgt[:, 1:]


def with_threads(run: Callable[[], None], threads: int) -> Callable[[], None]:
    def wrapped():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            run()
        finally:
            torch.set_num_threads(before)

    return wrapped


def peer_row(what: str, zoo_run, torch_run, tokens: int, args, **extra) -> dict:
    """Times zoo and torch in alternating rounds. Torch runs with its default threads and
    with one thread (OpenMP's spinning threads collapse when other processes share the
    cores); the faster of the two is the peer."""
    fns = {"zoo": zoo_run}
    if torch_run is not None:
        fns["torch"] = torch_run
        if torch.get_num_threads() > 1:
            fns["torch_1thread"] = with_threads(torch_run, 1)
    times = common.interleaved(fns, args.rounds, args.repeats)
    row = dict(comparison=what, tokens_per_step=tokens, **extra)
    for name, ts in times.items():
        row[name] = {**common.spread(ts), "tokens_per_s": tokens / statistics.median(ts)}
    if torch_run is not None:
        best = max((n for n in fns if n != "zoo"), key=lambda n: row[n]["tokens_per_s"])
        row["torch_best"] = best
        row["ratio"] = row["zoo"]["tokens_per_s"] / row[best]["tokens_per_s"]
    print(f"{what}: zoo {row['zoo']['tokens_per_s']:,.0f} tokens/s, ratio to torch "
          f"{row.get('ratio')}", flush=True)
    return row


def transformer_peer(args) -> list[dict]:
    d, heads, ff, layers, vocab, b, s, t = args.tf_shape
    rows = []
    for dtype in ("float32",):
        config = registry.make_config(
            "transformer_small", vocab_size=vocab, d_model=d, num_heads=heads, d_ff=ff,
            num_encoder_layers=layers, num_decoder_layers=layers, dropout_rate=0.0,
            max_len=max(s, t), dtype=DTYPES[dtype])
        zoo_run, compile_s, tokens = encoder_decoder_step("transformer_small", config, b, s, t)
        torch_run = None
        if torch is not None:
            torch.manual_seed(0)
            torch_run = torch_step(torch_transformer(vocab, d, heads, ff, layers, max(s, t)),
                                   torch_batch(b, s, t, vocab))
        rows.append(peer_row("Transformer vs torch.nn.Transformer", zoo_run, torch_run, tokens,
                             args, dtype=dtype, zoo_compile_s=compile_s,
                             shape=dict(D=d, N=heads, F=ff, L=layers, V=vocab, B=b, S=s, T=t)))
    return rows


def rnn_peer(args) -> list[dict]:
    h, vocab, b, s, t = args.rnn_shape
    rows = []
    for feeding in (False, True):
        config = registry.make_config(
            "seq2seq_luong_lstm", num_layers=1, embed_dim=h, hidden_dim=h, src_vocab_size=vocab,
            tgt_vocab_size=vocab, attention="general", input_feeding=feeding)
        zoo_run, compile_s, tokens = seq2seq_step("seq2seq_luong_lstm", config, b, s, t)
        torch_run = None
        if torch is not None:
            torch.manual_seed(0)
            torch_run = torch_step(torch_luong(vocab, h, h, feeding), torch_batch(b, s, t, vocab))
        peer = "nn.LSTMCell loop" if feeding else "nn.LSTM + batched attention"
        rows.append(peer_row(f"Luong LSTM seq2seq, input feeding {'on' if feeding else 'off'} "
                             f"vs torch {peer}", zoo_run, torch_run, tokens, args,
                             input_feeding=feeding, zoo_compile_s=compile_s,
                             shape=dict(E=h, H=h, V=vocab, B=b, S=s, T=t)))
    return rows


# ----------------------------------------------------------------------------- depth


def depth_rows(args) -> list[dict]:
    b, t = args.depth_batch, args.depth_len
    rows = []
    for depth in [int(x) for x in args.depths.split(",")]:
        runs, row = {}, dict(layers=depth)
        for scan in (True, False):
            config = registry.make_config("lm_small", num_decoder_layers=depth, scan_layers=scan,
                                          max_len=max(256, t))
            run, compile_s, tokens = lm_step("lm_small", config, b, 0, t)
            runs["scan" if scan else "unrolled"] = run
            row[f"{'scan' if scan else 'unrolled'}_compile_s"] = compile_s
        times = common.interleaved(runs, args.rounds, args.repeats)
        for name, ts in times.items():
            row[f"{name}_step"] = common.spread(ts)
        row["step_ratio"] = (row["scan_step"]["median_s"] / row["unrolled_step"]["median_s"])
        rows.append(row)
        print(f"depth {row}", flush=True)
    return rows


# ----------------------------------------------------------------------------- output


def _fmt(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def variant_name(v: dict) -> str:
    if not v:
        return "default"
    parts = [v.get("dtype", "float32")]
    if "scan_layers" in v:
        parts.append("scan" if v["scan_layers"] else "unrolled")
        parts.append(f"remat {v['remat']}")
    return ", ".join(parts)


def markdown(meta, rows, peers, depth) -> list[str]:
    md = [f"# Training-step throughput ({meta['date']})", "", common.stamp_line(meta), "",
          "One Adam step on random tokens; median of timed steps after two warm-up steps. "
          "Tokens per step: B x (S + T) for encoder-decoders, B x T for the LM (whose T is "
          "S + T here). Compile time is `jit(...).lower(...).compile()` of the whole step.", ""]
    if peers:
        md += ["## Against torch (same shapes, alternating rounds)", ""]
        body = []
        for r in peers:
            best = r.get("torch_best")
            torch_s = r[best]["tokens_per_s"] if best else None
            body.append([r["comparison"], ", ".join(f"{k}={v}" for k, v in r["shape"].items()),
                         _fmt(r["zoo"]["tokens_per_s"]),
                         "n/a" if best is None else f"{_fmt(torch_s)} ({best})",
                         "n/a" if "ratio" not in r else f"{r['ratio']:.2f}x",
                         _fmt(r["zoo_compile_s"], 1)])
        md += common.table(["comparison", "shape", "zoo tokens/s", "torch tokens/s",
                            "zoo / torch", "zoo compile s"], body) + [""]
    if depth:
        md += ["## Scanned vs unrolled layers (lm_small width, compile and step time)", ""]
        body = [[r["layers"], _fmt(r["scan_compile_s"], 1), _fmt(r["unrolled_compile_s"], 1),
                 _fmt(1e3 * r["scan_step"]["median_s"], 1),
                 _fmt(1e3 * r["unrolled_step"]["median_s"], 1), f"{r['step_ratio']:.2f}"]
                for r in depth]
        md += common.table(["layers", "scan compile s", "unrolled compile s", "scan step ms",
                            "unrolled step ms", "scan / unrolled step"], body) + [""]
    if rows:
        md += ["## Every registered preset", ""]
        body = [[r["model"], variant_name(r["variant"]), r["B"],
                 "" if r["S"] is None else f"{r['S']}+{r['T']}", _fmt(r["compile_s"], 1),
                 _fmt(1e3 * r["median_s"], 1), f"{_fmt(r['per_s'])} {r['unit']}"]
                for r in rows]
        md += common.table(["model", "variant", "B", "S+T", "compile s", "step ms",
                            "throughput /s"], body)
    return md


def plot(path, depth):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not depth:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    layers = [r["layers"] for r in depth]
    for kind in ("scan", "unrolled"):
        a.plot(layers, [r[f"{kind}_compile_s"] for r in depth], marker="o", label=kind)
        b.plot(layers, [1e3 * r[f"{kind}_step"]["median_s"] for r in depth], marker="o",
               label=kind)
    a.set(xlabel="layers", ylabel="compile s", title="train-step compile time")
    b.set(xlabel="layers", ylabel="step ms", title="train-step time")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="transformer,rnn,depth,registry")
    p.add_argument("--models", default="", help="registry presets (default: all)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--src-len", type=int, default=64)
    p.add_argument("--tgt-len", type=int, default=64)
    p.add_argument("--paper-batch", type=int, default=4)
    p.add_argument("--paper-len", type=int, default=32)
    p.add_argument("--tf-shape", type=ints, default=[256, 4, 1024, 3, 1024, 32, 64, 64],
                   help="D,N,F,L,V,B,S,T of the torch.nn.Transformer comparison")
    p.add_argument("--rnn-shape", type=ints, default=[512, 1024, 64, 32, 32],
                   help="H(=E),V,B,S,T of the RNN seq2seq comparison")
    p.add_argument("--depths", default="2,4,8,16,24")
    p.add_argument("--depth-batch", type=int, default=8)
    p.add_argument("--depth-len", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=common.RESULTS)
    args = p.parse_args(argv)
    if args.quick:
        args.models = "transformer_tiny,vae_tiny"
        args.batch, args.src_len, args.tgt_len = 4, 8, 8
        args.tf_shape, args.rnn_shape = [32, 2, 64, 1, 64, 4, 8, 8], [32, 64, 4, 8, 8]
        args.depths, args.depth_batch, args.depth_len = "2", 2, 16
        args.repeats, args.rounds = 2, 1
    if torch is None:
        print(common.TORCH_HINT)
    parts = set(args.parts.split(","))
    meta = {**common.environment(), "args": vars(args)}
    stem = os.path.join(args.out, "train_step_quick" if args.quick else "train_step")
    peers, depth, rows = [], [], []

    def save():  # after every part, so an interrupted sweep keeps what it measured
        common.write(stem, meta, dict(peers=peers, depth=depth, registry=rows),
                     markdown(meta, rows, peers, depth))
        plot(stem + ".png", depth)

    for part, run, into in (("transformer", transformer_peer, peers), ("rnn", rnn_peer, peers),
                            ("depth", depth_rows, depth), ("registry", registry_rows, rows)):
        if part in parts:
            into += run(args)
            save()


if __name__ == "__main__":
    main()
