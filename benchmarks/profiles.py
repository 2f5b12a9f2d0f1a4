"""Profiles of the cases where zoo trails its peer: time per op class, zoo against the peer.

    python benchmarks/profiles.py                       # every case (about 5 minutes)
    python benchmarks/profiles.py --cases lstm,attention_fwd
    python benchmarks/profiles.py --quick               # tiny shapes, seconds (the tests)

Each case builds the same step as benchmarks/train_step.py or benchmarks/attention.py
(the same shapes and peers), times zoo and the peer in alternating rounds without
a profiler, then profiles each for --steps steps: zoo with ``jax.profiler`` and
the optimised HLO, the peer with ``torch.profiler`` (or, for scan against
unrolled layers, the unrolled zoo step with ``jax.profiler``). The op classes are
those of benchmarks/op_classes.py. Writes profiles.{json,md} under --out.
"""

from __future__ import annotations

import argparse
import os
import statistics

import attention as attention_bench
import common
import jax
import jax.numpy as jnp
import op_classes
import train_step
from common import torch

from zoo import registry

CASES = ("transformer", "lstm", "lstm_feeding", "scan", "attention_fwd", "attention_fwd_bwd")


def transformer_case(args):
    d, heads, ff, layers, vocab, b, s, t = args.tf_shape
    config = registry.make_config(
        "transformer_small", vocab_size=vocab, d_model=d, num_heads=heads, d_ff=ff,
        num_encoder_layers=layers, num_decoder_layers=layers, dropout_rate=0.0,
        max_len=max(s, t))
    zoo_run, _, _ = train_step.encoder_decoder_step("transformer_small", config, b, s, t)
    torch.manual_seed(0)
    peer = train_step.torch_step(train_step.torch_transformer(vocab, d, heads, ff, layers,
                                                              max(s, t)),
                                 train_step.torch_batch(b, s, t, vocab))
    what = (f"Transformer train step vs torch.nn.Transformer (D={d}, N={heads}, F={ff}, "
            f"L={layers}+{layers}, V={vocab}, B={b}, S={s}, T={t})")
    return what, zoo_run, zoo_run.compiled.as_text(), peer, None


def lstm_case(args, feeding: bool):
    h, vocab, b, s, t = args.rnn_shape
    config = registry.make_config(
        "seq2seq_luong_lstm", num_layers=1, embed_dim=h, hidden_dim=h, src_vocab_size=vocab,
        tgt_vocab_size=vocab, attention="general", input_feeding=feeding)
    zoo_run, _, _ = train_step.seq2seq_step("seq2seq_luong_lstm", config, b, s, t)
    torch.manual_seed(0)
    peer = train_step.torch_step(train_step.torch_luong(vocab, h, h, feeding),
                                 train_step.torch_batch(b, s, t, vocab))
    peer_name = "nn.LSTMCell loop" if feeding else "nn.LSTM + batched attention"
    what = (f"Luong LSTM seq2seq train step, input feeding {'on' if feeding else 'off'}, vs "
            f"torch {peer_name} (E=H={h}, V={vocab}, B={b}, S={s}, T={t})")
    return what, zoo_run, zoo_run.compiled.as_text(), peer, None


def scan_case(args):
    runs = {}
    for scan in (True, False):
        config = registry.make_config("lm_small", num_decoder_layers=args.scan_layers,
                                      scan_layers=scan, max_len=max(256, args.scan_len))
        runs[scan], _, _ = train_step.lm_step("lm_small", config, args.scan_batch, 0,
                                              args.scan_len)
    what = (f"lm_small train step, {args.scan_layers} layers scanned vs unrolled "
            f"(B={args.scan_batch}, T={args.scan_len})")
    return what, runs[True], runs[True].compiled.as_text(), runs[False], \
        runs[False].compiled.as_text()


def attention_case(args, mode: str):
    b, n, h, t = args.attention_shape
    ks = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(key, (b, t, n, h), jnp.float32) for key in ks)  # [B, T, N, H]
    run, compiled = attention_bench.jax_case(attention_bench.zoo_kernel("blockwise"), q, k, v,
                                             False, mode)
    peer = attention_bench.torch_case(q, k, v, False, mode)
    what = (f"`blockwise` attention {mode} vs torch SDPA, float32, not causal "
            f"(B={b}, N={n}, H={h}, T=S={t})")
    return what, run, compiled.as_text(), peer, None


BUILDERS = {
    "transformer": transformer_case,
    "lstm": lambda args: lstm_case(args, feeding=False),
    "lstm_feeding": lambda args: lstm_case(args, feeding=True),
    "scan": scan_case,
    "attention_fwd": lambda args: attention_case(args, "fwd"),
    "attention_fwd_bwd": lambda args: attention_case(args, "fwd+bwd"),
}


def profile_case(name: str, args) -> dict:
    what, zoo_run, zoo_hlo, peer_run, peer_hlo = BUILDERS[name](args)
    times = common.interleaved({"zoo": zoo_run, "peer": peer_run}, args.rounds, args.repeats)
    wall = {who: statistics.median(ts) for who, ts in times.items()}
    zoo = op_classes.xla_profile(zoo_run, zoo_hlo, args.steps, wall["zoo"])
    if peer_hlo is None:
        peer = op_classes.torch_profile(peer_run, args.steps, wall["peer"])
        peer_label = f"torch ({torch.get_num_threads()} threads)"
    else:
        peer = op_classes.xla_profile(peer_run, peer_hlo, args.steps, wall["peer"])
        peer_label = "zoo, unrolled"
    print(f"{name}: zoo {wall['zoo'] * 1e3:.1f} ms, peer {wall['peer'] * 1e3:.1f} ms", flush=True)
    return dict(case=name, what=what, peer_label=peer_label, zoo=zoo, peer=peer,
                speed_ratio=wall["peer"] / wall["zoo"])


def _ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def case_markdown(row: dict) -> list[str]:
    zoo, peer = row["zoo"], row["peer"]
    lines = [f"## {row['case']}: {row['what']}", "",
             f"Wall per step without a profiler: zoo {_ms(zoo['wall_ms'])} ms, "
             f"{row['peer_label']} {_ms(peer['wall_ms'])} ms: zoo runs at "
             f"**{row['speed_ratio']:.2f}x** the peer's speed.", ""]
    body, gaps = [], []
    for cls in op_classes.CLASSES:
        a, b = zoo["classes"].get(cls, 0.0), peer["classes"].get(cls, 0.0)
        if a < 0.005 and b < 0.005:
            continue
        body.append([cls, _ms(a), f"{100 * a / zoo['wall_ms']:.0f}%", _ms(b),
                     f"{100 * b / peer['wall_ms']:.0f}%", f"{a - b:+.2f}"])
        gaps.append((a - b, cls))
    lines += common.table(["op class", "zoo ms", "zoo share", "peer ms", "peer share",
                           "zoo - peer ms"], body)
    worst = max(gaps)
    lines += ["", f"Largest excess of zoo over the peer: **{worst[1]}**, {worst[0]:+.2f} ms "
              "a step.", ""]
    for who, prof in (("zoo", zoo), (row["peer_label"], peer)):
        lines += [f"Top ops, {who}:", ""]
        lines += common.table(["op", "class", "ms / step"],
                              [[f"`{n[:60]}`", c, _ms(ms)] for n, c, ms in prof["top"]])
        lines.append("")
    return lines


def markdown(meta: dict, rows: list[dict]) -> list[str]:
    lines = ["# Profiles: where each slow case spends its step", "", common.stamp_line(meta), "",
             "Time per op class, in ms per step, from one profiled run of each side after the "
             "unprofiled timing (benchmarks/op_classes.py says how ops are classed). "
             "zoo: `jax.profiler` thunk times classed by the optimised HLO; torch: "
             "`torch.profiler` self CPU time per aten op. `framework` is the step's wall time "
             "outside every op (dispatch, Python, autograd bookkeeping, idle threads); "
             "profiling adds some overhead to both sides, so the classes can sum past the wall "
             "time, and XLA thunks that run concurrently count once each.", ""]
    for row in rows:
        lines += case_markdown(row)
    return lines


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--tf-shape", type=ints, default=[256, 4, 1024, 3, 1024, 32, 64, 64],
                   help="D,N,F,L,V,B,S,T as in train_step.py")
    p.add_argument("--rnn-shape", type=ints, default=[512, 1024, 64, 32, 32],
                   help="H(=E),V,B,S,T as in train_step.py")
    p.add_argument("--scan-layers", type=int, default=8)
    p.add_argument("--scan-batch", type=int, default=8)
    p.add_argument("--scan-len", type=int, default=64)
    p.add_argument("--attention-shape", type=ints, default=[4, 8, 64, 2048], help="B,N,H,T")
    p.add_argument("--steps", type=int, default=5, help="profiled steps per side")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=common.RESULTS)
    args = p.parse_args(argv)
    if torch is None:
        raise SystemExit(common.TORCH_HINT + " (every case but scan needs it)")
    if args.quick:
        args.tf_shape, args.rnn_shape = [32, 2, 64, 1, 64, 4, 8, 8], [32, 64, 4, 8, 8]
        args.scan_layers, args.scan_batch, args.scan_len = 2, 2, 16
        args.attention_shape = [1, 2, 16, 256]
        args.steps, args.repeats, args.rounds = 2, 1, 1
    cases = args.cases.split(",")
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; allowed: {', '.join(CASES)}")
    meta = {**common.environment(), "args": vars(args)}
    stem = os.path.join(args.out, "profiles_quick" if args.quick else "profiles")
    rows = []
    for name in cases:
        rows.append(profile_case(name, args))
        common.write(stem, meta, dict(cases=rows), markdown(meta, rows))


if __name__ == "__main__":
    main()
