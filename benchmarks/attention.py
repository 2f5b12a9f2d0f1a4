"""Attention-throughput microbenchmark: every zoo kernel and its peers, side by side.

    python benchmarks/attention.py            # the full sweep (make bench)
    python benchmarks/attention.py --quick    # a tiny sweep in seconds (run by the tests)

Sweeps kernels x sequence length x causal x {forward, forward+backward} x dtype
x {MHA, GQA} at fixed B, N, H. To finish in bounded time on a CPU, the full
grid runs only at --grid-lengths; float32 MHA runs at every --lengths, and
forward+backward stops at --bwd-max-length. Kernels that hold the T x S
logits are skipped past --max-quadratic-bytes; peak memory at --rss-lengths
(B=1) is measured in a fresh process. Throughput follows the FlashAttention
convention: forward 4*B*N*T*S*H FLOPs (halved when causal), backward 2.5x the
forward. Each kernel is checked against the reference at a small size before
it is timed. The dense-matmul peak of this device is measured in the same run,
so percentages compare like with like. Writes JSON, a markdown table and a PNG
under --out, stamped with device, versions and date.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import common
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from common import torch

from zoo.attention import dot_product_attention, reference_attention

if torch is not None:
    import torch.nn.functional as torch_f

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def zoo_kernel(name):
    def run(q, k, v, causal):
        return dot_product_attention(q, k, v, is_causal=causal, implementation=name)
    return run


def flax_kernel(q, k, v, causal):
    n, kh = q.shape[2], k.shape[2]
    if kh != n:  # flax's function has no GQA: repeat heads, as a user would
        k, v = jnp.repeat(k, n // kh, axis=2), jnp.repeat(v, n // kh, axis=2)
    mask = nn.make_causal_mask(jnp.ones(q.shape[:2])) if causal else None
    return nn.dot_product_attention(q, k, v, mask=mask)


JAX_KERNELS = {
    "zoo.reference": zoo_kernel("reference"),
    "zoo.xla": zoo_kernel("xla"),
    "zoo.blockwise": zoo_kernel("blockwise"),
    "zoo.auto": zoo_kernel(None),
    "flax.dot_product_attention": flax_kernel,
}
# Kernels that hold the full T x S weights (skipped where they would not fit).
QUADRATIC = {"zoo.reference", "zoo.xla", "flax.dot_product_attention", "torch.sdpa"}


def flops(b, n, t, s, h, causal, mode):
    f = 4.0 * b * n * t * s * h
    if causal:
        f /= 2
    return f * (3.5 if mode == "fwd+bwd" else 1.0)


def matmul_peak(dtype, size=2048, repeats=5):
    """Dense matmul FLOP/s on this device (bfloat16 accumulates in float32)."""
    a = jnp.ones((size, size), dtype)
    f = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
    times = common.time_calls(lambda: f(a).block_until_ready(), repeats)
    return 2 * size**3 / min(times)


def jax_case(kernel, q, k, v, causal, mode):
    if mode == "fwd":
        f = jax.jit(lambda q, k, v: kernel(q, k, v, causal))
        compiled = f.lower(q, k, v).compile()
        return (lambda: f(q, k, v).block_until_ready()), compiled

    def loss(q, k, v):
        return jnp.sum(kernel(q, k, v, causal).astype(jnp.float32))

    g = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
    compiled = g.lower(q, k, v).compile()
    return (lambda: jax.block_until_ready(g(q, k, v))), compiled


def torch_case(q, k, v, causal, mode):
    dt = {jnp.float32: torch.float32, jnp.bfloat16: torch.bfloat16}[q.dtype.type]
    # torch wants [B, N, T, H]
    tq, tk, tv = (torch.from_numpy(np.asarray(x, np.float32)).to(dt).transpose(1, 2).contiguous()
                  for x in (q, k, v))
    gqa = tk.shape[1] != tq.shape[1]
    if mode == "fwd":
        def run():
            with torch.no_grad():
                torch_f.scaled_dot_product_attention(tq, tk, tv, is_causal=causal,
                                                     enable_gqa=gqa)
        return run
    tq.requires_grad_(True)
    tk.requires_grad_(True)
    tv.requires_grad_(True)

    def run():
        out = torch_f.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, enable_gqa=gqa)
        out.sum().backward()
    return run


def check_against_reference(kernel_name, dtype, kv_heads, n, h):
    """Each kernel must agree with the reference before it is timed."""
    b, t = 2, 128
    ks = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(ks[0], (b, t, n, h), dtype)
    k = jax.random.normal(ks[1], (b, t, kv_heads, h), dtype)
    v = jax.random.normal(ks[2], (b, t, kv_heads, h), dtype)
    tol = 2e-2 if dtype == jnp.bfloat16 else 2e-4
    for causal in (False, True):
        want = np.asarray(reference_attention(q, k, v, is_causal=causal), np.float32)
        if kernel_name == "torch.sdpa":
            tq, tk, tv = (torch.from_numpy(np.asarray(x, np.float32)).transpose(1, 2)
                          for x in (q, k, v))
            got = torch_f.scaled_dot_product_attention(
                tq, tk, tv, is_causal=causal, enable_gqa=kv_heads != n).transpose(1, 2).numpy()
        else:
            got = np.asarray(JAX_KERNELS[kernel_name](q, k, v, causal), np.float32)
        err = float(np.max(np.abs(got - want)))
        if not err <= tol:
            raise AssertionError(f"{kernel_name} differs from the reference by {err} "
                                 f"({dtype.__name__}, causal={causal})")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_probe(args) -> None:
    """Child mode: one compiled forward at --rss-length, B=1; prints JSON with the process's
    peak RSS and how far the call itself raised it above the RSS just before it (Linux's
    peak counter is reset after compiling, so compilation does not count)."""
    t, kernel = args.rss_length, JAX_KERNELS[args.rss_kernel]
    ks = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(key, (1, t, args.N, args.H), jnp.float32) for key in ks)
    f = jax.jit(lambda q, k, v: kernel(q, k, v, False)).lower(q, k, v).compile()
    analysis = f.memory_analysis()
    with open("/proc/self/clear_refs", "w") as c:
        c.write("5")  # resets VmHWM (peak RSS) to the current RSS
    before = _status_kib("VmRSS")
    jax.block_until_ready(f(q, k, v))
    peak = _status_kib("VmHWM")
    print(json.dumps({"max_rss_bytes": peak * 1024, "call_rss_bytes": (peak - before) * 1024,
                      "xla_temp_bytes": getattr(analysis, "temp_size_in_bytes", None)}))


def measure_rss(kernel, t, args) -> dict:
    cmd = [sys.executable, __file__, "--rss-kernel", kernel, "--rss-length", str(t),
           "--N", str(args.N), "--H", str(args.H)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        return {"error": str(e)[:200]}


def in_sweep(args, dtype: str, head_kind: str, t: int, mode: str) -> bool:
    """The bounded grid: see the module docstring."""
    if mode == "fwd+bwd" and t > args.bwd_max_length:
        return False
    if (dtype != "float32" or head_kind != "MHA") and t not in args.grid_lengths:
        return False
    return True


def time_cell(name, q, k, v, causal, mode, args, peak) -> dict:
    """Median of at least --repeats calls after warm-up, more for calls under ~20 ms (noise)."""
    temp, extra = None, {}
    if name == "torch.sdpa":
        fn = torch_case(q, k, v, causal, mode)
    else:
        fn, compiled = jax_case(JAX_KERNELS[name], q, k, v, causal, mode)
        temp = getattr(compiled.memory_analysis(), "temp_size_in_bytes", None)
    first = min(common.time_calls(fn, 1))
    repeats = max(args.repeats, min(20, int(0.06 / max(first, 1e-6))))
    times = common.time_calls(fn, repeats, warmup=0)
    if name == "torch.sdpa" and torch.get_num_threads() > 1:
        # OpenMP's spinning threads collapse when other processes share the cores;
        # the faster of default threads and one thread is torch's figure.
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            single = common.time_calls(fn, repeats)
        finally:
            torch.set_num_threads(before)
        extra["torch_threads"] = before
        if statistics.median(single) < statistics.median(times):
            times, extra["torch_threads"] = single, 1
    b, t, n, h = q.shape
    tflops = flops(b, n, t, k.shape[1], h, causal, mode) / statistics.median(times) / 1e12
    return {**common.spread(times), "tflops": tflops, "pct_peak": 100 * tflops * 1e12 / peak,
            "xla_temp_bytes": temp, **extra}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--B", type=int, default=4)
    p.add_argument("--N", type=int, default=8)
    p.add_argument("--H", type=int, default=64)
    p.add_argument("--gqa-kv-heads", type=int, default=2)
    p.add_argument("--lengths", default="128,256,512,1024,2048,4096,8192")
    p.add_argument("--grid-lengths", default="512,2048",
                   help="lengths at which bfloat16 and GQA run too (float32 MHA runs at all)")
    p.add_argument("--bwd-max-length", type=int, default=2048,
                   help="longest T = S timed forward+backward")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--modes", default="fwd,fwd+bwd")
    p.add_argument("--kernels", default=",".join([*JAX_KERNELS, "torch.sdpa"]))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-quadratic-bytes", type=float, default=6e9,
                   help="skip T x S kernels whose logits would exceed this")
    p.add_argument("--rss-lengths", default="16384",
                   help="lengths (B=1, float32) at which peak RSS is measured in a fresh process")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=common.RESULTS)
    p.add_argument("--rss-kernel", help=argparse.SUPPRESS)
    p.add_argument("--rss-length", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_kernel:
        return rss_probe(args)
    if args.quick:
        args.B, args.N, args.H, args.gqa_kv_heads = 1, 2, 16, 1
        args.lengths, args.grid_lengths, args.repeats = "64", "64", 1
        args.rss_lengths, args.bwd_max_length = "", 64
        args.dtypes, args.modes = "float32", "fwd,fwd+bwd"
        args.kernels = "zoo.reference,zoo.xla,zoo.blockwise,zoo.auto"
    args.grid_lengths = [int(x) for x in args.grid_lengths.split(",")]

    kernels = [k for k in args.kernels.split(",") if k]
    unknown = [k for k in kernels if k not in JAX_KERNELS and k != "torch.sdpa"]
    if unknown:
        raise SystemExit(f"--kernels: unknown {unknown}; allowed {[*JAX_KERNELS, 'torch.sdpa']}")
    if "torch.sdpa" in kernels and torch is None:
        print(common.TORCH_HINT)
        kernels.remove("torch.sdpa")
    lengths = [int(x) for x in args.lengths.split(",")]
    dtypes = args.dtypes.split(",")
    modes = args.modes.split(",")
    heads = {"MHA": args.N, "GQA": args.gqa_kv_heads}
    meta = {**common.environment(), "B": args.B, "N": args.N, "H": args.H,
            "gqa_kv_heads": args.gqa_kv_heads, "grid_lengths": args.grid_lengths,
            "bwd_max_length": args.bwd_max_length}

    peaks = {d: matmul_peak(DTYPES[d]) for d in dtypes}
    meta["matmul_peak_tflops"] = {d: p / 1e12 for d, p in peaks.items()}
    for name in kernels:
        for d in dtypes:
            for kv in heads.values():
                check_against_reference(name, DTYPES[d], kv, args.N, args.H)

    rows = []
    for d in dtypes:
        for head_kind, kv in heads.items():
            for t in lengths:
                if not any(in_sweep(args, d, head_kind, t, m) for m in modes):
                    continue
                ks = jax.random.split(jax.random.key(t), 3)
                q = jax.random.normal(ks[0], (args.B, t, args.N, args.H), DTYPES[d])
                k = jax.random.normal(ks[1], (args.B, t, kv, args.H), DTYPES[d])
                v = jax.random.normal(ks[2], (args.B, t, kv, args.H), DTYPES[d])
                logits_bytes = 4.0 * args.B * args.N * t * t
                for causal in (False, True):
                    for mode in modes:
                        if not in_sweep(args, d, head_kind, t, mode):
                            continue
                        for name in kernels:
                            row = dict(kernel=name, dtype=d, heads=head_kind, T=t, S=t,
                                       causal=causal, mode=mode)
                            if name in QUADRATIC and logits_bytes > args.max_quadratic_bytes:
                                row["skipped"] = "T x S logits exceed memory cap"
                            else:
                                row.update(time_cell(name, q, k, v, causal, mode, args,
                                                     peaks[d]))
                            rows.append(row)
                            print(json.dumps(row), flush=True)
                save(args, meta, rows, [])  # partial results survive an interrupted sweep
    rss = []
    for t in [int(x) for x in args.rss_lengths.split(",") if x]:
        for name in ("zoo.blockwise",):
            rss.append({"kernel": name, "T": t, "B": 1, **measure_rss(name, t, args),
                        "inputs_outputs_bytes": 4 * 4 * t * args.N * args.H})
            print(json.dumps(rss[-1]), flush=True)
    save(args, meta, rows, rss)


def save(args, meta, rows, rss) -> None:
    summary = targets(rows, rss)
    stem = os.path.join(args.out, "attention_quick" if args.quick else "attention")
    common.write(stem, meta, {"summary": summary, "rows": rows, "rss": rss},
                 markdown(meta, rows, rss, summary))
    plot(stem + ".png", rows)


def _median(rows, **where) -> float | None:
    for r in rows:
        if "median_s" in r and all(r[k] == v for k, v in where.items()):
            return r["median_s"]
    return None


def targets(rows, rss) -> list[dict]:
    """The issue's float32 MHA targets, one entry per (target, length) with the ratio."""
    out = []
    f32 = [r for r in rows if r["dtype"] == "float32" and r["heads"] == "MHA"]
    long = sorted({r["T"] for r in f32 if r["T"] >= 2048})

    def add(target, t, ratio, goal, higher_is_better=True):
        if ratio is not None:
            met = ratio >= goal if higher_is_better else ratio <= goal
            out.append(dict(target=target, T=t, ratio=ratio, goal=goal, met=met))

    def ratio(a, b):
        return None if a is None or b is None else a / b

    for t in long:
        for causal in (False, True):
            kind = "causal" if causal else "non-causal"
            fwd = dict(rows=f32, T=t, causal=causal, mode="fwd")
            blk = _median(kernel="zoo.blockwise", **fwd)
            add(f"blockwise fwd speed-up over xla ({kind})", t,
                ratio(_median(kernel="zoo.xla", **fwd), blk), 3.0)
            add(f"blockwise fwd speed-up over torch SDPA ({kind})", t,
                ratio(_median(kernel="torch.sdpa", **fwd), blk), 1.0)
            bwd = dict(fwd, mode="fwd+bwd")
            add(f"blockwise fwd+bwd speed-up over xla ({kind})", t,
                ratio(_median(kernel="zoo.xla", **bwd), _median(kernel="zoo.blockwise", **bwd)),
                2.0)
        for mode in ("fwd", "fwd+bwd"):
            add(f"blockwise causal / non-causal time ({mode})", t,
                ratio(_median(f32, kernel="zoo.blockwise", T=t, causal=True, mode=mode),
                      _median(f32, kernel="zoo.blockwise", T=t, causal=False, mode=mode)),
                0.6, higher_is_better=False)
    # auto against the best kernel it could have picked (the zoo's), in every measured cell
    worst = None
    for r in rows:
        if r["kernel"] != "zoo.auto" or "median_s" not in r:
            continue
        cell = {k: r[k] for k in ("dtype", "heads", "T", "causal", "mode")}
        best = min(x["median_s"] for x in rows if "median_s" in x
                   and x["kernel"].startswith("zoo.") and x["kernel"] != "zoo.auto"
                   and all(x[k] == v for k, v in cell.items()))
        slowdown = r["median_s"] / best
        if worst is None or slowdown > worst[0]:
            worst = (slowdown, cell)
    if worst is not None:
        out.append(dict(target="auto time / best zoo kernel's time (worst cell)",
                        T=worst[1]["T"], cell=worst[1], ratio=worst[0], goal=1.1,
                        met=worst[0] <= 1.1))
    for r in rss:
        if "call_rss_bytes" in r:
            # inputs are resident before the call; the call adds outputs and temporaries
            inputs = 3 * r["inputs_outputs_bytes"] // 4
            peak = (inputs + r["call_rss_bytes"]) / r["inputs_outputs_bytes"]
            out.append(dict(target="blockwise peak memory / (inputs + outputs), B=1",
                            T=r["T"], ratio=peak, goal=1.5, met=peak <= 1.5))
    return out


def markdown(meta, rows, rss, summary) -> list[str]:
    lines = [f"# Attention throughput ({meta['date']})", "", common.stamp_line(meta), "",
             f"B={meta['B']}, N={meta['N']}, H={meta['H']}; GQA uses K={meta['gqa_kv_heads']}. "
             f"bfloat16 and GQA run at T=S in {meta['grid_lengths']} only; forward+backward up "
             f"to T=S={meta['bwd_max_length']}. Matmul peak (TFLOP/s): "
             + ", ".join(f"{d} {p:.3f}" for d, p in meta["matmul_peak_tflops"].items()) + ".",
             *(["", f"**Note:** {meta['note']}"] if meta.get("note") else []),
             "", "## Targets (float32, MHA)", ""]
    lines += common.table(
        ["target", "T=S", "measured", "goal", "met"],
        [[s["target"] + (f" {s['cell']}" if "cell" in s else ""), s["T"], f"{s['ratio']:.2f}",
          ("<= " if "time" in s["target"] or "memory" in s["target"] else ">= ")
          + f"{s['goal']}", "yes" if s["met"] else "**no**"] for s in summary])
    lines += ["", "## Every cell", ""]
    body = []
    for r in rows:
        if "skipped" in r:
            cells = ["skipped", "", "", ""]
        else:
            temp = r["xla_temp_bytes"]
            cells = [f"{1e3 * r['median_s']:.1f}", f"{r['tflops']:.3f}", f"{r['pct_peak']:.0f}",
                     "" if temp is None else f"{temp / 2**20:.0f}"]
        body.append([r["dtype"], r["heads"], r["mode"], r["causal"], r["T"], r["kernel"],
                     *cells])
    lines += common.table(["dtype", "heads", "mode", "causal", "T=S", "kernel", "median ms",
                           "TFLOP/s", "% peak", "XLA temp MiB"], body)
    if rss:
        lines += ["", "## Peak memory in a fresh process (float32 forward, B=1)", ""]
        lines += common.table(
            ["kernel", "T=S", "process max RSS MiB", "RSS added by the call MiB",
             "XLA temp MiB", "inputs+outputs MiB"],
            [[r["kernel"], r["T"], _mib(r.get("max_rss_bytes")), _mib(r.get("call_rss_bytes")),
              _mib(r.get("xla_temp_bytes")), _mib(r["inputs_outputs_bytes"])] for r in rss])
    return lines


def _mib(x) -> str:
    return "n/a" if x is None else f"{x / 2**20:.0f}"


def plot(path, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if "tflops" in r and r["heads"] == "MHA"]
    panels = sorted({(r["dtype"], r["mode"], r["causal"]) for r in timed
                     if r["dtype"] == "float32"})
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 3.4),
                             squeeze=False)
    names = sorted({r["kernel"] for r in timed})
    for ax, (d, mode, causal) in zip(axes[0], panels, strict=False):
        for name in names:
            pts = sorted((r["T"], r["tflops"]) for r in timed if r["kernel"] == name
                         and r["dtype"] == d and r["mode"] == mode and r["causal"] == causal)
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{d} {mode} {'causal' if causal else 'full'}", fontsize=9)
        ax.set_xlabel("T = S")
        ax.set_ylabel("TFLOP/s")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    ax = axes[0][-1]  # memory: XLA temporaries of the float32 forward
    for name in names:
        pts = sorted((r["T"], r["xla_temp_bytes"] / 2**20) for r in timed
                     if r["kernel"] == name and r["dtype"] == "float32" and r["mode"] == "fwd"
                     and not r["causal"] and r.get("xla_temp_bytes"))
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="T = S", ylabel="MiB",
           title="XLA temp memory, float32 fwd")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
