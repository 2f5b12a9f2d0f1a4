"""The README's training results: each one a plain ``train.py`` run of a config, recorded.

    .venv/bin/python benchmarks/config_runs.py vae_fashion_mnist gan_fashion_mnist gan_toy
    .venv/bin/python benchmarks/config_runs.py lm_wordnet --collect_only   # a finished run

For every config name it runs (unless ``--collect_only``)

    .venv/bin/python train.py --config configs/<name>.py --workdir runs/<name>

exactly as the README tells a user to, timing the whole command (start-up, data
preparation, compilation, training and every evaluation; wall and CPU time).
Then it reads the run's ``metrics.jsonl`` and writes
``benchmarks/results/runs/<name>.json``: the command, the times, every
evaluation, the last train window, and the machine, versions and date; the
last evaluation's pictures are copied beside it (``<name>/*.png``). There is
no second training path: the numbers are the config's.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results", "runs")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train(name: str, workdir: str, flags: list[str]) -> dict:
    """Runs train.py on configs/<name>.py; returns the command and its wall and CPU time."""
    command = [sys.executable, "train.py", "--config", f"configs/{name}.py", "--workdir",
               workdir, *flags]
    cpu, start = _children_cpu_seconds(), time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return {"wall_seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(_children_cpu_seconds() - cpu, 1)}


def collect(name: str, workdir: str, flags: list[str], timing: dict | None) -> dict:
    """The run's record from its metrics.jsonl (and config.json), and its last pictures."""
    path = os.path.join(ROOT, workdir)
    with open(os.path.join(path, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    evals = [{k: v for k, v in r.items() if k not in ("split", "time")}
             for r in records if r["split"] == "eval"]
    train = [r for r in records if r["split"] == "train"]
    shown = " ".join(flags)
    env = common.environment()
    record = {
        "date": datetime.date.today().isoformat(),
        "device": f"{env['platform']} ({env['cpu']}, {env['cpu_count']} cores); "
                  "1 JAX CPU device",
        "versions": {k: env[k] for k in ("python", "jax", "flax", "optax")},
        "command": f".venv/bin/python train.py --config configs/{name}.py --workdir {workdir}"
                   + (f" {shown}" if shown else ""),
        **(timing or {}),
        "steps": config["train"]["num_train_steps"],
        "batch_size": config["data"]["batch_size"],
        "model": config["model"],
        "eval": evals,
        "last_train_window": {k: v for k, v in train[-1].items() if k not in ("split", "time")}
        if train else None,
        "train_seconds_between_first_and_last_log": round(train[-1]["time"] - train[0]["time"], 1)
        if len(train) > 1 else None,
    }
    folder = os.path.join(RESULTS, name)
    os.makedirs(folder, exist_ok=True)
    final = evals[-1]["step"] if evals else None
    for picture in glob.glob(os.path.join(path, "images", f"*_step{final}.png")):
        kind = re.sub(r"_step\d+\.png$", ".png", os.path.basename(picture))
        shutil.copy(picture, os.path.join(folder, kind))
    for picture in glob.glob(os.path.join(path, "attention", "example*.png")) + \
            glob.glob(os.path.join(path, "curves.png")):
        shutil.copy(picture, os.path.join(folder, os.path.basename(picture)))
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(record, f, indent=2)
    return record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+", help="config names (configs/<name>.py)")
    parser.add_argument("--collect_only", action="store_true",
                        help="do not train; record the runs already in runs/<name>")
    parser.add_argument("--flag", action="append", default=[],
                        help="an extra train.py flag for every run (e.g. --config.seed=1)")
    args = parser.parse_args(argv)
    for name in args.names:
        if not os.path.exists(os.path.join(ROOT, "configs", f"{name}.py")):
            raise SystemExit(f"no config configs/{name}.py")
        workdir = os.path.join("runs", name)
        if not args.collect_only and os.path.exists(os.path.join(ROOT, workdir)):
            raise SystemExit(f"{workdir} exists: a timed run starts from an empty workdir "
                             "(move it away, or pass --collect_only to record it as it is)")
        timing = None if args.collect_only else train(name, workdir, args.flag)
        record = collect(name, workdir, args.flag, timing)
        print(f"{name}: {record.get('wall_seconds', '?')} s; last eval {record['eval'][-1]}")


if __name__ == "__main__":
    main()
