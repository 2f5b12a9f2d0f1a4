"""XLA's CPU options against the training-step peers: does a flag close a gap to torch?

    python benchmarks/xla_flags.py            # every flag set (about 2 minutes each)
    python benchmarks/xla_flags.py --quick    # tiny shapes, two flag sets (the tests)

XLA reads ``XLA_FLAGS`` once, when the backend starts, so each flag set runs
``benchmarks/train_step.py --parts transformer,rnn`` in a fresh process. Each
process times zoo and torch in alternating rounds, so every row's zoo / torch
ratio is measured within one run, whatever the load between rows. Writes
xla_flags.{json,md} under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import common

HERE = os.path.dirname(os.path.abspath(__file__))
FLAG_SETS = {  # label -> XLA_FLAGS
    "default": "",
    "oneDNN matmuls": "--xla_cpu_use_onednn=true",
    "no XNNPACK/YNNPACK": "--xla_cpu_use_xnnpack=false",
    "512-bit vectors": "--xla_cpu_prefer_vector_width=512",
    "fast math (changes numerics)": "--xla_cpu_enable_fast_math=true",
}


def run_flags(flags: str, args) -> list[dict]:
    out = tempfile.mkdtemp(prefix="zoo_xla_flags_")
    env = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()}
    cmd = [sys.executable, os.path.join(HERE, "train_step.py"), "--parts", "transformer,rnn",
           "--rounds", str(args.rounds), "--repeats", str(args.repeats), "--out", out]
    if args.quick:
        cmd.append("--quick")
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, timeout=args.timeout)
    stem = "train_step_quick" if args.quick else "train_step"
    with open(os.path.join(out, stem + ".json")) as f:
        return json.load(f)["peers"]


def markdown(meta: dict, results: dict[str, list[dict]]) -> list[str]:
    comparisons = [row["comparison"] for row in next(iter(results.values()))]
    header = ["XLA_FLAGS"] + [c.split(" vs ")[0] for c in comparisons]
    rows = []
    for label, peers in results.items():
        rows.append([f"{label} (`{FLAG_SETS[label] or 'none'}`)"] + [
            f"{p['ratio']:.2f}x ({p['zoo']['tokens_per_s']:,.0f} tok/s)" for p in peers])
    return (["# XLA CPU options against the training-step peers", "", common.stamp_line(meta), "",
             "zoo / torch tokens per second of one Adam step, each flag set in its own process "
             "(zoo and torch alternated within it). Peers: "
             + "; ".join(comparisons) + ".", ""] + common.table(header, rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flag-sets", default=",".join(FLAG_SETS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=common.RESULTS)
    args = p.parse_args(argv)
    labels = args.flag_sets.split(",")
    if args.quick:
        labels, args.rounds, args.repeats = ["default", "no XNNPACK/YNNPACK"], 1, 1
    unknown = sorted(set(labels) - set(FLAG_SETS))
    if unknown:
        raise SystemExit(f"--flag-sets: unknown {unknown}; allowed: {', '.join(FLAG_SETS)}")
    if common.torch is None:
        raise SystemExit(common.TORCH_HINT)
    meta = {**common.environment(), "args": vars(args)}
    stem = os.path.join(args.out, "xla_flags_quick" if args.quick else "xla_flags")
    results = {}
    for label in labels:
        results[label] = run_flags(FLAG_SETS[label], args)
        print(label, [round(p["ratio"], 2) for p in results[label]], flush=True)
        common.write(stem, meta, dict(flag_sets={k: FLAG_SETS[k] for k in results},
                                      results=results), markdown(meta, results))


if __name__ == "__main__":
    main()
