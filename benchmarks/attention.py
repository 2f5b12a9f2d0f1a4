"""Attention-throughput microbenchmark: every zoo kernel and its peers, side by side.

    python benchmarks/attention.py            # the full sweep (make bench)
    python benchmarks/attention.py --quick    # a tiny sweep in seconds (run by the tests)

Sweeps kernels x sequence length x causal x {forward, forward+backward} x dtype
x {MHA, GQA} at fixed B, N, H. Throughput follows the FlashAttention
convention: forward 4*B*N*T*S*H FLOPs (halved when causal), backward 2.5x the
forward. Each kernel is checked against the reference at a small size before
it is timed. The dense-matmul peak of this device is measured in the same run,
so percentages compare like with like. Writes JSON, a markdown table and a PNG
under --out, stamped with device, versions and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zoo.attention import dot_product_attention, reference_attention

try:  # optional peer
    import torch
    import torch.nn.functional as torch_f
except ImportError:  # pragma: no cover - depends on the environment
    torch = None

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


def _time(fn, repeats):
    fn()  # warm-up (and compile)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def matmul_peak(dtype, size=2048, repeats=5):
    """Dense matmul FLOP/s on this device (bfloat16 accumulates in float32)."""
    a = jnp.ones((size, size), dtype)
    f = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
    times = _time(lambda: f(a).block_until_ready(), repeats)
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


def rss_probe(args) -> None:
    """Child mode: run one forward at --rss-length and print max RSS (bytes)."""
    dtype = DTYPES[args.dtypes.split(",")[0]]
    t = args.rss_length
    q = jnp.ones((1, t, args.N, args.H), dtype)
    kernel = JAX_KERNELS[args.rss_kernel]
    jax.block_until_ready(jax.jit(lambda q: kernel(q, q, q, False))(q))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def measure_rss(kernel, t, args) -> int | None:
    cmd = [sys.executable, __file__, "--rss-kernel", kernel, "--rss-length", str(t),
           "--N", str(args.N), "--H", str(args.H), "--dtypes", "float32"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True)
        return int(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--B", type=int, default=4)
    p.add_argument("--N", type=int, default=8)
    p.add_argument("--H", type=int, default=64)
    p.add_argument("--gqa-kv-heads", type=int, default=2)
    p.add_argument("--lengths", default="128,256,512,1024,2048,4096,8192")
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--modes", default="fwd,fwd+bwd")
    p.add_argument("--kernels", default=",".join([*JAX_KERNELS, "torch.sdpa"]))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-quadratic-bytes", type=float, default=6e9,
                   help="skip T x S kernels whose logits would exceed this")
    p.add_argument("--rss-lengths", default="16384",
                   help="lengths (B=1) at which peak RSS is measured in a fresh process")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    p.add_argument("--rss-kernel", help=argparse.SUPPRESS)
    p.add_argument("--rss-length", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rss_kernel:
        return rss_probe(args)
    if args.quick:
        args.B, args.N, args.H, args.gqa_kv_heads = 1, 2, 16, 1
        args.lengths, args.repeats, args.rss_lengths = "64,200", 1, ""
        args.dtypes, args.modes = "float32", "fwd,fwd+bwd"
        args.kernels = "zoo.reference,zoo.xla,zoo.blockwise,zoo.auto"

    kernels = [k for k in args.kernels.split(",") if k]
    unknown = [k for k in kernels if k not in JAX_KERNELS and k != "torch.sdpa"]
    if unknown:
        raise SystemExit(f"--kernels: unknown {unknown}; allowed {[*JAX_KERNELS, 'torch.sdpa']}")
    if "torch.sdpa" in kernels and torch is None:
        print("torch is not installed: skipping torch.sdpa (pip install torch==2.13.0)")
        kernels.remove("torch.sdpa")
    lengths = [int(x) for x in args.lengths.split(",")]
    dtypes = args.dtypes.split(",")
    modes = args.modes.split(",")
    heads = {"MHA": args.N, "GQA": args.gqa_kv_heads}

    peaks = {d: matmul_peak(DTYPES[d]) for d in dtypes}
    for name in kernels:
        for d in dtypes:
            for kv in heads.values():
                check_against_reference(name, DTYPES[d], kv, args.N, args.H)

    rows = []
    for d in dtypes:
        for head_kind, kv in heads.items():
            for t in lengths:
                ks = jax.random.split(jax.random.key(t), 3)
                q = jax.random.normal(ks[0], (args.B, t, args.N, args.H), DTYPES[d])
                k = jax.random.normal(ks[1], (args.B, t, kv, args.H), DTYPES[d])
                v = jax.random.normal(ks[2], (args.B, t, kv, args.H), DTYPES[d])
                logits_bytes = 4.0 * args.B * args.N * t * t
                for causal in (False, True):
                    for mode in modes:
                        for name in kernels:
                            row = dict(kernel=name, dtype=d, heads=head_kind, T=t, S=t,
                                       causal=causal, mode=mode)
                            if name in QUADRATIC and logits_bytes > args.max_quadratic_bytes:
                                rows.append({**row, "skipped": "T x S logits exceed memory cap"})
                                continue
                            temp = None
                            if name == "torch.sdpa":
                                fn = torch_case(q, k, v, causal, mode)
                            else:
                                fn, compiled = jax_case(JAX_KERNELS[name], q, k, v, causal, mode)
                                analysis = compiled.memory_analysis()
                                temp = getattr(analysis, "temp_size_in_bytes", None)
                            times = _time(fn, args.repeats)
                            med = statistics.median(times)
                            tflops = flops(args.B, args.N, t, t, args.H, causal, mode) / med / 1e12
                            rows.append({**row, "median_s": med, "min_s": min(times),
                                         "max_s": max(times), "tflops": tflops,
                                         "pct_peak": 100 * tflops * 1e12 / peaks[d],
                                         "xla_temp_bytes": temp})
                            print(json.dumps(rows[-1]), flush=True)
    rss = []
    for t in [int(x) for x in args.rss_lengths.split(",") if x]:
        for name in ("zoo.blockwise",):
            rss.append({"kernel": name, "T": t, "B": 1, "max_rss_bytes": measure_rss(name, t, args),
                        "inputs_outputs_bytes": 4 * 4 * t * args.N * args.H})
    meta = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": str(jax.devices()[0].device_kind), "platform": jax.default_backend(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
        "torch": getattr(torch, "__version__", None),
        "B": args.B, "N": args.N, "H": args.H, "gqa_kv_heads": args.gqa_kv_heads,
        "matmul_peak_tflops": {d: p / 1e12 for d, p in peaks.items()},
    }
    write_results(args, meta, rows, rss)


def write_results(args, meta, rows, rss):
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "attention_quick" if args.quick else "attention")
    with open(stem + ".json", "w") as f:
        json.dump({"meta": meta, "rows": rows, "rss": rss}, f, indent=1)
    lines = [f"# Attention throughput ({meta['date']})", "",
             f"Device: {meta['device']} ({meta['platform']}, {meta['cpu_count']} cores), "
             f"jax {meta['jax']}, flax {meta['flax']}, torch {meta['torch']}. "
             f"B={meta['B']}, N={meta['N']}, H={meta['H']}; GQA uses K={meta['gqa_kv_heads']}. "
             f"Matmul peak (TFLOP/s): {meta['matmul_peak_tflops']}.", "",
             "| dtype | heads | mode | causal | T=S | kernel | median ms | TFLOP/s | % peak |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "skipped" in r:
            cells = ["skipped", "", ""]
        else:
            cells = [f"{1e3 * r['median_s']:.1f}", f"{r['tflops']:.3f}", f"{r['pct_peak']:.0f}"]
        lines.append(f"| {r['dtype']} | {r['heads']} | {r['mode']} | {r['causal']} | {r['T']} "
                     f"| {r['kernel']} | " + " | ".join(cells) + " |")
    if rss:
        lines += ["", "| kernel | T=S (B=1) | max RSS MiB | inputs+outputs MiB |",
                  "| --- | --- | --- | --- |"]
        for r in rss:
            got = "n/a" if r["max_rss_bytes"] is None else f"{r['max_rss_bytes'] / 2**20:.0f}"
            lines.append(f"| {r['kernel']} | {r['T']} | {got} | "
                         f"{r['inputs_outputs_bytes'] / 2**20:.0f} |")
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(stem + ".png", rows)


def plot(path, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if "tflops" in r]
    panels = sorted({(r["dtype"], r["mode"], r["causal"]) for r in timed})
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4), squeeze=False)
    for ax, (d, mode, causal) in zip(axes[0], panels, strict=True):
        for name in sorted({r["kernel"] for r in timed}):
            pts = sorted((r["T"], r["tflops"]) for r in timed if r["kernel"] == name
                         and r["dtype"] == d and r["mode"] == mode and r["causal"] == causal
                         and r["heads"] == "MHA")
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{d} {mode} {'causal' if causal else 'full'}", fontsize=9)
        ax.set_xlabel("T = S")
        ax.set_ylabel("TFLOP/s")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()

